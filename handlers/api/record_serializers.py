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
        required=False, allow_null=True,
        help_text="The sample message payload. Absent: a stored message of the handler's event (`message`, else "
        "the latest).",
    )
    message = serializers.IntegerField(
        required=False, min_value=1,
        help_text="Without `payload`: the id of a stored message of the handler's event to use "
        "(GET /api/eventhub/messages); absent means the latest.",
    )
    messageId = serializers.CharField(  # noqa: N815
        required=False, max_length=255,
        help_text="Used for conductor.event.messageId; default dry-run, or the stored message's id.",
    )

    def validate(self, attrs: dict) -> dict:
        if ("name" in attrs) == ("handler" in attrs):
            raise serializers.ValidationError({"name": "give exactly one of name (a saved handler) or handler"})
        if "payload" in attrs and "message" in attrs:
            raise serializers.ValidationError({"message": "give one of payload or message (a stored message's "
                                                          "payload), not both"})
        return attrs


class ResolvedActionSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    action = serializers.CharField()
    expandInlineJSON = serializers.BooleanField()  # noqa: N815
    input = serializers.JSONField(allow_null=True, help_text="The body after substitution, with the event keys.")
    wouldRun = serializers.BooleanField(help_text="Whether the condition lets it run.")  # noqa: N815
    error = serializers.CharField(allow_null=True, help_text="Why its input could not be built, or null.")


class WarningSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="unseenPath (no message sampled on the event had it), unresolved (it "
                                 "resolved to nothing for this payload) or actionWouldFail.")
    where = serializers.CharField(help_text='"condition" or the place in the actions, e.g. '
                                  "actions[0].complete_task.workflowId.")
    expression = serializers.CharField(help_text="As written, e.g. ${workflowInstanceId} or $.status.")
    message = serializers.CharField()


class SampleSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    messageId = serializers.CharField()  # noqa: N815
    receivedAt = serializers.DateTimeField()  # noqa: N815


class DryRunSerializer(serializers.Serializer):
    handler = serializers.CharField()
    event = serializers.CharField()
    active = serializers.BooleanField(help_text="An inactive handler would not run at all.")
    mode = serializers.ChoiceField(choices=["live", "shadow"], help_text="A handler in shadow mode would run "
                                   "nothing: what it matches is recorded as SHADOW (`wouldRun` says it matched).")
    condition = serializers.CharField(allow_null=True)
    evaluatorType = serializers.CharField(allow_null=True)  # noqa: N815
    matched = serializers.BooleanField(help_text="Whether the condition held.")
    value = serializers.CharField(help_text="What the condition returned, as JSON text.")
    error = serializers.CharField(allow_null=True, help_text="Why the condition failed, if it did.")
    actions = ResolvedActionSerializer(many=True)
    warnings = WarningSerializer(many=True, help_text="Paths never seen on the event, placeholders that resolved "
                                 "to nothing for this payload, actions that would fail for it.")
    sample = SampleSerializer(allow_null=True, help_text="The stored message used as the payload, if one was.")
    pathsUnchecked = serializers.CharField(  # noqa: N815
        allow_null=True, help_text="Why the handler's paths were not checked against its event's observed shape "
        "(no message sampled yet, or the shape is full), or null.")


class BacktestRequestSerializer(TimeRangeFilter):
    name = serializers.CharField(
        required=False, max_length=255, help_text="A saved handler's name; or send `handler` instead."
    )
    handler = serializers.JSONField(
        required=False, help_text="An unsaved handler in Conductor JSON, validated as on registration; when a "
        "handler of its name is saved, the result also compares the two.",
    )
    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=10**9,
        help_text="Only the newest this many messages (within from/to); without from or limit, the last "
        "BACKTEST_DEFAULT_DAYS days.",
    )
    outcomes = serializers.ListField(
        child=serializers.ChoiceField(choices=ReceivedMessage.Outcome.choices), required=False, max_length=10,
        help_text="Only messages whose latest delivery had one of these outcomes; empty or absent means all.",
    )

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        if ("name" in attrs) == ("handler" in attrs):
            raise serializers.ValidationError({"name": "give exactly one of name (a saved handler) or handler"})
        return attrs


class BacktestConditionSerializer(serializers.Serializer):
    matched = serializers.BooleanField()
    value = serializers.CharField(help_text="What the condition returned, as JSON text.")
    error = serializers.CharField(allow_null=True, help_text="Why the condition failed, if it did.")


class BacktestSampleSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The received message (GET /api/eventhub/messages/{id}).")
    messageId = serializers.CharField()  # noqa: N815
    receivedAt = serializers.DateTimeField()  # noqa: N815
    outcome = serializers.ChoiceField(choices=ReceivedMessage.Outcome.choices)
    condition = BacktestConditionSerializer()
    actions = ResolvedActionSerializer(many=True)


class BacktestSamplesSerializer(serializers.Serializer):
    matched = BacktestSampleSerializer(many=True)
    skipped = BacktestSampleSerializer(many=True)
    failed = BacktestSampleSerializer(many=True)


class VersionsSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    messageId = serializers.CharField()  # noqa: N815
    receivedAt = serializers.DateTimeField()  # noqa: N815
    outcome = serializers.ChoiceField(choices=ReceivedMessage.Outcome.choices)
    draft = serializers.DictField(help_text="The draft's condition and actions for this message.")
    saved = serializers.DictField(help_text="The saved version's condition and actions for this message.")


class DifferenceSamplesSerializer(serializers.Serializer):
    newlyMatched = VersionsSerializer(many=True)  # noqa: N815
    noLongerMatched = VersionsSerializer(many=True)  # noqa: N815
    changedInputs = VersionsSerializer(many=True)  # noqa: N815


class DifferenceSerializer(serializers.Serializer):
    newlyMatched = serializers.IntegerField(help_text="Messages the draft matches and the saved version does not.")  # noqa: N815
    noLongerMatched = serializers.IntegerField(help_text="Messages the saved version matches and the draft does not.")  # noqa: N815
    changedInputs = serializers.IntegerField(  # noqa: N815
        help_text="Messages both match whose actions would get a different input."
    )
    samples = DifferenceSamplesSerializer()


class BacktestProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField(help_text="Messages backtested so far.")
    expected = serializers.IntegerField(help_text="Messages selected when the backtest was asked.")


class BacktestSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["SCHEDULED", "IN_PROGRESS", "COMPLETED", "FAILED"])
    handler = serializers.CharField()
    draft = serializers.BooleanField(help_text="An unsaved version was backtested.")
    active = serializers.BooleanField(help_text="An inactive handler would not run at all, whatever it matches.")
    mode = serializers.ChoiceField(choices=["live", "shadow"], help_text="The handler's mode: a backtest counts "
                                   "what it would do live; in shadow mode, as it stands, it runs nothing.")
    comparedToRevision = serializers.IntegerField(  # noqa: N815
        allow_null=True, help_text="The saved revision the draft was compared with, or null."
    )
    event = serializers.CharField()
    to = serializers.DateTimeField()
    limit = serializers.IntegerField(allow_null=True)
    outcomes = serializers.ListField(child=serializers.CharField())
    progress = BacktestProgressSerializer()
    total = serializers.IntegerField(help_text="Messages backtested (so far, while it runs).")
    matched = serializers.IntegerField(help_text="The condition held and every action's input was built.")
    skipped = serializers.IntegerField(help_text="The condition was not true.")
    failed = serializers.IntegerField(help_text="The condition failed, or an action's input cannot be built.")
    conditionErrors = serializers.IntegerField()  # noqa: N815
    actionErrors = serializers.IntegerField()  # noqa: N815
    samples = BacktestSamplesSerializer()
    difference = DifferenceSerializer(allow_null=True, help_text="Against the saved version, for a draft of one.")
    warnings = WarningSerializer(many=True, help_text="Paths the handler reads that no message sampled on its event "
                                 "had (when the backtest started).")
    error = serializers.CharField(allow_null=True, help_text="Why it stopped, when FAILED.")
    createdAt = serializers.DateTimeField()  # noqa: N815
    startedAt = serializers.DateTimeField(allow_null=True)  # noqa: N815
    finishedAt = serializers.DateTimeField(allow_null=True)  # noqa: N815

    def get_fields(self) -> dict:
        fields = super().get_fields()
        fields["from"] = serializers.DateTimeField(allow_null=True)  # (a Python keyword)
        return fields
