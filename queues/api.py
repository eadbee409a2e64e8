"""Eventhub's own queue routes (not Conductor's): publish a message to a configured queue.

`POST /api/eventhub/queues/publish` goes through `queues.outbox.send`, like the admin's "publish a test
message" action: the message is committed to the outbox, then published at once; if the broker is
unavailable it stays PENDING and the relay publishes it later. Needs the `queues.add_outboxmessage`
permission (writing a message to the outbox is exactly what it does).
"""

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from eventhub.lib.api.errors import ErrorSerializer  # the API's one error shape (its exception handler's)

from .models import OutboxMessage
from .outbox import InvalidDestination, send


class CanPublish(BasePermission):
    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm("queues.add_outboxmessage"))


class PublishRequestSerializer(serializers.Serializer):
    event = serializers.CharField(max_length=1040, help_text="A configured queue's event, e.g. sqs:orders.")
    payload = serializers.JSONField(help_text="Any JSON value; sent as the message body.")
    messageId = serializers.CharField(max_length=255, required=False,
                                      help_text="Optional; a fresh id when absent. Travels as the broker's message "
                                                "id / deduplication id, so repeating one is deduplicated downstream.")


class PublishResultSerializer(serializers.Serializer):
    messageId = serializers.CharField()
    event = serializers.CharField()
    status = serializers.ChoiceField(choices=OutboxMessage.Status.choices,
                                     help_text="SENT, or PENDING when the relay will publish it later.")
    outboxId = serializers.IntegerField(required=False, allow_null=True,
                                        help_text="The outbox row (none for the internal conductor queue).")
    lastError = serializers.CharField(required=False)


class PublishView(APIView):
    permission_classes = [CanPublish]

    @extend_schema(
        operation_id="publishMessage", tags=["eventhub"], request=PublishRequestSerializer,
        responses={200: PublishResultSerializer, **{code: ErrorSerializer for code in (400, 401, 403)}},
        description="Publish a JSON payload to a configured queue (any kind), through the outbox. "
                    "Needs the queues.add_outboxmessage permission.",
        examples=[OpenApiExample("signed", request_only=True, value={
            "event": "sqs:docusign_completed", "payload": {"status": "signed", "workflowInstanceId": "..."}})],
    )
    def post(self, request):
        data = PublishRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        event = data.validated_data["event"]
        try:
            sent = send(event, data.validated_data["payload"], message_id=data.validated_data.get("messageId"),
                        source=f"api: {request.user.get_username()}")
        except InvalidDestination as exc:
            raise serializers.ValidationError({"event": [str(exc)]}) from None
        body = {"messageId": sent.message_id, "event": event, "status": sent.status,
                "outboxId": sent.outbox.pk if sent.outbox else None}
        if sent.outbox is not None and sent.outbox.last_error:
            body["lastError"] = sent.outbox.last_error
        return Response(body)
