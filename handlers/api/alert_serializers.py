"""Wire shapes of the alerts' routes (/api/eventhub/alerts, /api/eventhub/alert-rules)."""

from django.core.exceptions import ValidationError
from rest_framework import serializers

from queues.models import QueueConfig

from ..alert_models import MAX_SILENCE_MINUTES, MAX_WINDOW_MINUTES
from ..models import Alert, AlertEvent, AlertRule, EventHandler, NotificationAttempt, RuleKind
from .record_serializers import _text


class AlertFilter(serializers.Serializer):
    state = serializers.ChoiceField(choices=Alert.State.choices, required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=RuleKind.choices, required=False, allow_blank=True)
    subject = _text("Handler name or queue event, exactly.")


class AlertEventSerializer(serializers.ModelSerializer):
    fromState = serializers.CharField(source="from_state")  # noqa: N815
    toState = serializers.CharField(source="to_state")  # noqa: N815
    by = serializers.CharField(source="by_name")

    class Meta:
        model = AlertEvent
        fields = ["fromState", "toState", "at", "by", "reason"]
        read_only_fields = fields


class NotificationSerializer(serializers.ModelSerializer):
    nextAttemptAt = serializers.DateTimeField(source="next_attempt_at")  # noqa: N815
    attemptedAt = serializers.DateTimeField(source="attempted_at", allow_null=True)  # noqa: N815
    toState = serializers.CharField(source="event.to_state")  # noqa: N815

    class Meta:
        model = NotificationAttempt
        fields = ["channel", "target", "toState", "attempt", "status", "response", "nextAttemptAt", "attemptedAt"]
        read_only_fields = fields


class AlertSerializer(serializers.ModelSerializer):
    openedAt = serializers.DateTimeField(source="opened_at")  # noqa: N815
    resolvedAt = serializers.DateTimeField(source="resolved_at", allow_null=True)  # noqa: N815
    silencedUntil = serializers.DateTimeField(source="silenced_until", allow_null=True)  # noqa: N815
    ruleId = serializers.IntegerField(source="rule_id", allow_null=True)  # noqa: N815
    checkedAt = serializers.DateTimeField(source="checked_at", allow_null=True)  # noqa: N815
    events = AlertEventSerializer(many=True)
    notifications = NotificationSerializer(many=True)

    class Meta:
        model = Alert
        fields = ["id", "kind", "subject", "state", "detail", "current", "checkedAt", "reason", "openedAt",
                  "resolvedAt", "silencedUntil", "ruleId", "events", "notifications"]
        read_only_fields = fields


class AcknowledgeSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=10_000, help_text="Why, e.g. <i>looking at the producer</i>.")


class SilenceSerializer(AcknowledgeSerializer):
    minutes = serializers.IntegerField(min_value=1, max_value=MAX_SILENCE_MINUTES,
                                       help_text="How long it stays silenced, e.g. 60.")


class AlertRuleSerializer(serializers.ModelSerializer):
    """A rule; `handler` is a handler's name, `queue` a queue's event; validated by the model's clean()."""

    handler = serializers.SlugRelatedField(slug_field="name", queryset=EventHandler.objects.all(), required=False,
                                           allow_null=True)
    queue = serializers.SlugRelatedField(slug_field="event", queryset=QueueConfig.objects.all(), required=False,
                                         allow_null=True)
    windowMinutes = serializers.IntegerField(source="window_minutes", min_value=0,  # noqa: N815
                                             max_value=MAX_WINDOW_MINUTES, required=False)

    class Meta:
        model = AlertRule
        fields = ["id", "kind", "handler", "queue", "enabled", "threshold", "windowMinutes"]
        read_only_fields = ["id"]
        validators = []  # the model's unique constraint is checked by full_clean below

    def validate(self, attrs: dict) -> dict:
        rule = self.instance or AlertRule()
        for field, value in attrs.items():
            setattr(rule, field, value)
        try:
            rule.full_clean()
        except ValidationError as exc:
            raise serializers.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
        return attrs
