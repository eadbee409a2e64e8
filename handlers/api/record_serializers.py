"""Wire shapes of Eventhub's own routes (/api/eventhub/...): records, filters, replay and dry-run."""


from rest_framework import serializers

from queues.models import ReceivedMessage

from ..models import ActionExecution, ExecutionStatus

MAX_TEXT = 1040  # the longest event; no filter value is longer than a stored one


def _text(help_text: str) -> serializers.CharField:
    # Blank is allowed and means "no filter", as an omitted parameter does (DRF reads `?x=` so anyway).
    return serializers.CharField(required=False, allow_blank=True, max_length=MAX_TEXT, help_text=help_text)


class TimeRangeFilter(serializers.Serializer):
    """`from` (inclusive) and `to` (exclusive), ISO-8601; `from` is a Python keyword, hence get_fields."""

    def get_fields(self) -> dict:
        fields = super().get_fields()
        fields["from"] = serializers.DateTimeField(
            required=False, help_text="ISO-8601, inclusive, e.g. 2026-11-23T06:00:00Z."
        )
        fields["to"] = serializers.DateTimeField(required=False, help_text="ISO-8601, exclusive.")
        return fields

    def validate(self, attrs: dict) -> dict:
        # DRF takes `?to=` for an omitted optional field; an empty time is a mistake worth saying so.
        blank = {name: "must be an ISO-8601 date-time, not empty" for name in ("from", "to")
                 if self.initial_data.get(name) == ""}
        if blank:
            raise serializers.ValidationError(blank)
        if "from" in attrs and "to" in attrs and attrs["from"] > attrs["to"]:
            raise serializers.ValidationError({"to": "must not be before from"})
        return attrs


class ExecutionFilter(TimeRangeFilter):
    handler = _text("Handler name, exactly.")
    event = _text("Event, exactly, e.g. sqs:shipping_start.")
    status = serializers.ChoiceField(choices=ExecutionStatus.choices, required=False, allow_blank=True)
    messageId = _text("Message id, exactly.")  # noqa: N815
    workflowId = _text("Workflow id, exactly.")  # noqa: N815


class MessageFilter(ExecutionFilter):
    handler = _text("Messages with an execution of this handler.")
    status = serializers.ChoiceField(
        choices=ExecutionStatus.choices, required=False, allow_blank=True,
        help_text="Messages with an execution in this status.",
    )
    workflowId = _text("Messages with an execution on this workflow.")  # noqa: N815
    outcome = serializers.ChoiceField(choices=ReceivedMessage.Outcome.choices, required=False, allow_blank=True)


class ExecutionSerializer(serializers.ModelSerializer):
    executionId = serializers.CharField(source="execution_id")  # noqa: N815
    messageId = serializers.CharField(source="message_id")  # noqa: N815
    handler = serializers.CharField(source="handler_name")
    handlerRevision = serializers.IntegerField(  # noqa: N815
        source="revision.number", allow_null=True, help_text="The handler revision that ran."
    )
    conditionValue = serializers.CharField(source="condition_value")  # noqa: N815
    input = serializers.JSONField(allow_null=True)
    output = serializers.JSONField(allow_null=True)
    workflowId = serializers.CharField(source="workflow_id")  # noqa: N815
    duplicateOf = serializers.IntegerField(source="duplicate_of_id", allow_null=True)  # noqa: N815
    deliveryId = serializers.IntegerField(source="delivery_id", allow_null=True)  # noqa: N815
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)  # noqa: N815
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)  # noqa: N815
    createdAt = serializers.DateTimeField(source="created_at")  # noqa: N815

    class Meta:
        model = ActionExecution
        fields = ["id", "executionId", "messageId", "event", "handler", "handlerRevision", "index", "action",
                  "status", "conditionValue", "reason", "input", "output", "error", "retryable", "attempts",
                  "workflowId", "duplicateOf", "deliveryId", "startedAt", "finishedAt", "createdAt"]
        read_only_fields = fields


class MessageSerializer(serializers.ModelSerializer):
    messageId = serializers.CharField(source="message_id")  # noqa: N815
    queueId = serializers.IntegerField(source="config_id", allow_null=True)  # noqa: N815
    payload = serializers.JSONField(allow_null=True)
    rawBody = serializers.CharField(source="raw_body")  # noqa: N815
    deliveryCount = serializers.IntegerField(source="delivery_count")  # noqa: N815
    receivedAt = serializers.DateTimeField(source="received_at")  # noqa: N815
    replayOf = serializers.IntegerField(source="replay_of_id", allow_null=True)  # noqa: N815
    replayedBy = serializers.CharField(source="replayed_by.username", allow_null=True)  # noqa: N815
    replayReason = serializers.CharField(source="replay_reason")  # noqa: N815
    executions = ExecutionSerializer(many=True)

    class Meta:
        model = ReceivedMessage
        fields = ["id", "messageId", "event", "queueId", "payload", "rawBody", "deliveryCount", "receivedAt",
                  "outcome", "detail", "replayOf", "replayedBy", "replayReason", "executions"]
        read_only_fields = fields


class ReplayRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=10_000, help_text="Why the message is replayed (kept on the record).")
    payload = serializers.JSONField(
        required=False, allow_null=True,
        help_text="Replay this payload instead of the stored one; null or absent "
        "means the stored payload.",
    )


class ReplayResultSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(
        choices=["ack", "nack", "quarantine"],
        help_text="What a broker delivery would have been told: ack (done), nack (a transient failure: the "
        "replay's executions are FAILED and it can be replayed again), quarantine (no handler matched).",
    )
    reason = serializers.CharField(help_text="Why, when not ack.")
    summary = serializers.CharField()
    message = MessageSerializer(help_text="The replay's own record.")


class DryRunRequestSerializer(serializers.Serializer):
    name = serializers.CharField(
        required=False, max_length=255, help_text="A saved handler's name; or send `handler` instead."
    )
    handler = serializers.JSONField(
        required=False,
        help_text="An unsaved handler in Conductor JSON, validated as on registration.",
    )
    payload = serializers.JSONField(
        allow_null=True, help_text="The sample message payload."
    )
    messageId = serializers.CharField(  # noqa: N815
        required=False, max_length=255, help_text="Used for conductor.event.messageId; default dry-run."
    )

    def validate(self, attrs: dict) -> dict:
        if ("name" in attrs) == ("handler" in attrs):
            raise serializers.ValidationError({"name": "give exactly one of name (a saved handler) or handler"})
        return attrs


class ResolvedActionSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    action = serializers.CharField()
    expandInlineJSON = serializers.BooleanField()  # noqa: N815
    input = serializers.JSONField(allow_null=True, help_text="The body after substitution, with the event keys.")
    wouldRun = serializers.BooleanField(help_text="Whether the condition lets it run.")  # noqa: N815
    error = serializers.CharField(allow_null=True, help_text="Why its input could not be built, or null.")


class DryRunSerializer(serializers.Serializer):
    handler = serializers.CharField()
    event = serializers.CharField()
    active = serializers.BooleanField(help_text="An inactive handler would not run at all.")
    condition = serializers.CharField(allow_null=True)
    evaluatorType = serializers.CharField(allow_null=True)  # noqa: N815
    matched = serializers.BooleanField(help_text="Whether the condition held.")
    value = serializers.CharField(help_text="What the condition returned, as JSON text.")
    error = serializers.CharField(allow_null=True, help_text="Why the condition failed, if it did.")
    actions = ResolvedActionSerializer(many=True)
