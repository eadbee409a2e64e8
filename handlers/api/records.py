"""Eventhub's own routes (ours), under /api/eventhub/ so they never meet Conductor's:

- `GET executions`, `GET executions/{id}`: what handlers did, filtered and paginated;
- `GET messages`, `GET messages/{id}`: every delivery, each with its executions inline;
- `POST messages/{id}/replay`: run a stored message through the current handlers again;
- `POST handlers/dry-run`: a handler and a sample payload in, its condition and resolved actions out.

Reads need the model's view permission (the global ModelPermission); a replay the change permission
on received messages; a dry-run, which runs and writes nothing, the view permission on handlers.
"""

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.exceptions import APIException
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from eventhub.lib.api.errors import ConductorValidationError, ErrorSerializer, NotFound
from eventhub.lib.api.permissions import ModelPermission
from queues.models import ReceivedMessage

from ..conditions import IsolatesBusy
from ..dryrun import DRY_RUN_MESSAGE_ID, dry_run, stored_message
from ..models import ActionExecution, EventHandler
from ..replay import ReplayError, replay
from .record_serializers import (
    DryRunRequestSerializer,
    DryRunSerializer,
    ExecutionFilter,
    ExecutionSerializer,
    MessageFilter,
    MessageSerializer,
    ReplayRequestSerializer,
    ReplayResultSerializer,
)
from .serializers import EventHandlerSerializer

ERRORS = {code: ErrorSerializer for code in (400, 401, 403)}
MAX_ID = 2**63 - 1
MAX_OFFSET = 10**9  # far past any real table, and inside every database's OFFSET range
ID = OpenApiParameter("id", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, OpenApiParameter.PATH)


class RecordPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500

    def get_limit(self, request) -> int:
        return self._bounded(request, self.limit_query_param, 1, self.max_limit, self.default_limit)

    def get_offset(self, request) -> int:
        return self._bounded(request, self.offset_query_param, 0, MAX_OFFSET, 0)

    @staticmethod
    def _bounded(request, name: str, low: int, high: int, default: int) -> int:
        # Strict where DRF falls back silently: a wrong page size is the client's mistake, said so.
        raw = request.query_params.get(name)
        if raw is None:
            return default
        field = serializers.IntegerField(min_value=low, max_value=high)
        try:
            return field.run_validation(raw)
        except serializers.ValidationError as exc:
            raise ConductorValidationError([(name, str(message)) for message in exc.detail]) from None

    def get_schema_operation_parameters(self, view) -> list:
        parameters = super().get_schema_operation_parameters(view)
        bounds = {"limit": (1, self.max_limit), "offset": (0, MAX_OFFSET)}
        for parameter in parameters:
            low, high = bounds[parameter["name"]]
            parameter["schema"].update(minimum=low, maximum=high)
        return parameters


def executions() -> QuerySet:
    return ActionExecution.objects.select_related("revision").order_by("-created_at", "-id")


def messages() -> QuerySet:
    return ReceivedMessage.objects.select_related("replayed_by").prefetch_related(
        Prefetch("executions", queryset=executions().order_by("handler_name", "index", "id"))
    ).order_by("-received_at", "-id")


def filter_executions(queryset: QuerySet, params: dict) -> QuerySet:
    fields = {"handler": "handler_name", "event": "event", "status": "status", "messageId": "message_id",
              "workflowId": "workflow_id", "from": "created_at__gte", "to": "created_at__lt"}
    return queryset.filter(**_given(params, fields))


def filter_messages(queryset: QuerySet, params: dict) -> QuerySet:
    own = {"event": "event", "outcome": "outcome", "messageId": "message_id", "from": "received_at__gte",
           "to": "received_at__lt"}
    queryset = queryset.filter(**_given(params, own))
    through = {"handler": "handler_name", "status": "status", "workflowId": "workflow_id"}
    wanted = _given(params, through)
    if wanted:
        # A subquery rather than a join: no duplicate rows, no DISTINCT over JSON columns.
        queryset = queryset.filter(pk__in=ActionExecution.objects.filter(**wanted).values("delivery_id"))
    return queryset


def _given(params: dict, fields: dict) -> dict:
    return {lookup: params[name] for name, lookup in fields.items() if params.get(name) not in (None, "")}


class FilteredListView(generics.ListAPIView):
    pagination_class = RecordPagination
    filter_serializer: type
    apply_filters: staticmethod

    def get_queryset(self) -> QuerySet:
        query = self.request.query_params
        repeated = [(name, "is given more than once") for name in query if len(query.getlist(name)) > 1]
        if repeated:
            raise ConductorValidationError(repeated)  # which one was meant? say so rather than guess
        params = self.filter_serializer(data=query)
        params.is_valid(raise_exception=True)
        return type(self).apply_filters(self.queryset.all(), params.validated_data)


class ObjectView(generics.RetrieveAPIView):
    def get_object(self):
        pk = int(self.kwargs["id"])
        item = self.get_queryset().filter(pk=pk).first() if pk <= MAX_ID else None
        if item is None:
            raise NotFound(f"No {self.queryset.model._meta.verbose_name} with id {pk}.")
        return item


@extend_schema_view(get=extend_schema(operation_id="listExecutions", parameters=[ExecutionFilter], responses={
    200: ExecutionSerializer(many=True), **ERRORS}))
class ExecutionListView(FilteredListView):
    """Executions, newest first."""

    queryset = executions()
    serializer_class = ExecutionSerializer
    filter_serializer = ExecutionFilter
    apply_filters = staticmethod(filter_executions)


@extend_schema_view(get=extend_schema(operation_id="getExecution", parameters=[ID], responses={
    200: ExecutionSerializer, 404: ErrorSerializer, **ERRORS}))
class ExecutionView(ObjectView):
    queryset = executions()
    serializer_class = ExecutionSerializer


@extend_schema_view(get=extend_schema(operation_id="listReceivedMessages", parameters=[MessageFilter], responses={
    200: MessageSerializer(many=True), **ERRORS}))
class MessageListView(FilteredListView):
    """Received messages (one per delivery), newest first, each with its executions."""

    queryset = messages()
    serializer_class = MessageSerializer
    filter_serializer = MessageFilter
    apply_filters = staticmethod(filter_messages)


@extend_schema_view(get=extend_schema(operation_id="getReceivedMessage", parameters=[ID], responses={
    200: MessageSerializer, 404: ErrorSerializer, **ERRORS}))
class MessageView(ObjectView):
    queryset = messages()
    serializer_class = MessageSerializer


class ReplayView(APIView):
    permission_model = ReceivedMessage  # POST: the change permission

    @extend_schema(operation_id="replayReceivedMessage", parameters=[ID], request=ReplayRequestSerializer,
                   responses={201: ReplayResultSerializer, 404: ErrorSerializer, **ERRORS})
    def post(self, request, **kwargs):
        body = ReplayRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        pk = int(kwargs["id"])
        record = ReceivedMessage.objects.filter(pk=pk).first() if pk <= MAX_ID else None
        if record is None:
            raise NotFound(f"No received message with id {pk}.")
        try:
            result = replay(record, user=request.user, reason=body.validated_data["reason"],
                            payload=body.validated_data.get("payload"))
        except ReplayError as exc:
            raise ConductorValidationError([("payload", str(exc))]) from None
        data = {"decision": result.decision.action, "reason": result.decision.reason, "summary": result.summary,
                "message": MessageSerializer(messages().get(pk=result.record.pk)).data}
        return Response(data, status=status.HTTP_201_CREATED)


class DryRunPermission(ModelPermission):
    """A dry-run writes nothing: whoever may read handlers may try them."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm("handlers.view_eventhandler"))


class ConditionsBusy(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE  # (retryable in Conductor's error body)


class DryRunView(APIView):
    permission_classes = [DryRunPermission]

    @extend_schema(operation_id="dryRunEventHandler", request=DryRunRequestSerializer,
                   responses={200: DryRunSerializer, 404: ErrorSerializer, **ERRORS})
    def post(self, request):
        body = DryRunRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        handler = _saved_handler(data["name"]) if "name" in data else _unsaved_handler(data["handler"])
        sample = None if "payload" in data else _sample(handler, data.get("message"))
        payload = data["payload"] if sample is None else sample.payload
        message_id = data.get("messageId") or (sample.message_id if sample else DRY_RUN_MESSAGE_ID)
        try:
            result = dry_run(handler, payload, message_id=message_id, sample=sample)
        except IsolatesBusy as exc:
            raise ConditionsBusy(f"{exc}; try again shortly") from None
        return Response(result.as_dict())


def _sample(handler: EventHandler, pk: int | None):
    """The stored message a dry-run without payload uses: the one asked for, or the event's latest."""
    sample = stored_message(handler.event, pk)
    if sample is None and pk is not None:
        raise NotFound(f"No stored message with id {pk} on {handler.event}.")
    if sample is None:
        raise ConductorValidationError([("payload", f"is required: no message on {handler.event} is stored to "
                                                    "dry-run with")])
    return sample


def _saved_handler(name: str) -> EventHandler:
    handler = EventHandler.objects.filter(name=name).first()
    if handler is None:
        raise NotFound(f"EventHandler with name {name} not found!")
    return handler


def _unsaved_handler(data) -> EventHandler:
    try:
        return EventHandlerSerializer().to_internal_value(data)
    except ConductorValidationError as exc:
        raise ConductorValidationError([(f"handler.{path}", message) for path, message in exc.problems]) from None
