"""Alert rules, the alerts they open, each alert's state changes and its notification attempts.

Kept beside the handlers' models (and exported by `handlers.models`) because alerts read what handlers
did (`ActionExecution`) and what queues hold: they sit at the top of the stack, with dispatch.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.utils import timezone

MAX_WINDOW_MINUTES = 60 * 24 * 366  # a year: further back than any record is kept
MAX_SILENCE_MINUTES = 60 * 24 * 30  # a month: longer is switching the rule off, which says so


DUPLICATE_RULE = "There is a rule of this kind for this target already: change that one."


class RuleKind(models.TextChoices):
    HANDLER_SILENT = "handler_silent", "Handler silent while its event receives messages"
    FAILURE_RATE = "failure_rate", "Handler failure rate above a threshold"
    BACKLOG = "backlog", "Queue backlog or oldest message age above a limit"
    QUARANTINE_GROWING = "quarantine_growing", "Quarantine growing on a queue"
    NO_CONSUMER = "no_consumer", "No live listener and no schedule draining an enabled queue"


HANDLER_KINDS = {RuleKind.HANDLER_SILENT, RuleKind.FAILURE_RATE}

# Each kind in a few words, where a table column has no room for the whole label (the overview's alerts).
SHORT_NAMES = {
    RuleKind.HANDLER_SILENT: "Handler silent",
    RuleKind.FAILURE_RATE: "Failure rate",
    RuleKind.BACKLOG: "Backlog",
    RuleKind.QUARANTINE_GROWING: "Quarantine growing",
    RuleKind.NO_CONSUMER: "No consumer",
}

# What each kind's threshold and window mean, shown in the admin and the API schema.
THRESHOLD_MEANS = {
    RuleKind.HANDLER_SILENT: "unused",
    RuleKind.FAILURE_RATE: "failed share of finished executions, 0-1 (e.g. 0.5)",
    RuleKind.BACKLOG: "ready messages (QueueConfig.depth) above which it opens (e.g. 1000)",
    RuleKind.QUARANTINE_GROWING: "messages quarantined within the window above which it opens (e.g. 0)",
    RuleKind.NO_CONSUMER: "unused",
}


# The default rule of each kind (threshold, window in minutes), as migration 0008 creates it; used as well
# when the default row of a kind has been deleted, so every handler and queue is always watched.
DEFAULT_RULES = {
    RuleKind.HANDLER_SILENT: (0, 60 * 24),
    RuleKind.FAILURE_RATE: (0.5, 15),
    RuleKind.BACKLOG: (1000, 15),
    RuleKind.QUARANTINE_GROWING: (0, 15),
    RuleKind.NO_CONSUMER: (0, 5),
}


class AlertRule(models.Model):
    """One kind of check with its threshold and window. A rule without a handler or queue is the default
    for every handler (or queue); one naming a handler or queue replaces the default there, and switched
    off (`enabled` false) it silences that kind for that handler or queue alone."""

    kind = models.CharField(max_length=32, choices=RuleKind.choices)
    handler = models.ForeignKey(
        "handlers.EventHandler", null=True, blank=True, on_delete=models.CASCADE, related_name="alert_rules",
        help_text="Only for handler kinds; empty means every handler without a rule of its own.",
    )
    queue = models.ForeignKey(
        "queues.QueueConfig", null=True, blank=True, on_delete=models.CASCADE, related_name="alert_rules",
        help_text="Only for queue kinds; empty means every queue without a rule of its own.",
    )
    enabled = models.BooleanField(default=True, help_text="Switched off, this kind is not checked here.")
    threshold = models.FloatField(
        default=0, help_text="Failure rate: a share, e.g. <code>0.5</code>; backlog: ready messages, e.g. "
        "<code>1000</code>; quarantine: new messages in the window, e.g. <code>0</code>.",
    )
    window_minutes = models.PositiveIntegerField(
        default=60, validators=[MaxValueValidator(MAX_WINDOW_MINUTES)],
        help_text="Silent: the expected interval between matches; failure rate and quarantine: the "
        "window counted; backlog: the oldest unsettled message's age limit; no consumer: unused. E.g. 60.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "id"]
        # One rule of a kind per target, the default included; partial constraints, since a unique constraint
        # over nullable columns treats every NULL as different (and SQLite has no NULLS NOT DISTINCT).
        constraints = [
            models.UniqueConstraint(fields=["kind"], condition=models.Q(handler=None, queue=None),
                                    name="one_default_rule_per_kind", violation_error_message=DUPLICATE_RULE),
            models.UniqueConstraint(fields=["kind", "handler"], condition=models.Q(handler__isnull=False),
                                    name="one_rule_per_kind_and_handler", violation_error_message=DUPLICATE_RULE),
            models.UniqueConstraint(fields=["kind", "queue"], condition=models.Q(queue__isnull=False),
                                    name="one_rule_per_kind_and_queue", violation_error_message=DUPLICATE_RULE),
        ]

    def __str__(self) -> str:
        target = self.handler or self.queue or "every " + ("handler" if self.kind in HANDLER_KINDS else "queue")
        return f"{self.get_kind_display()} ({target})"

    def clean(self) -> None:
        errors = {}
        if self.kind in HANDLER_KINDS and self.queue_id:
            errors["queue"] = "A handler rule names no queue."
        if self.kind and self.kind not in HANDLER_KINDS and self.handler_id:
            errors["handler"] = "A queue rule names no handler."
        if self.kind == RuleKind.FAILURE_RATE and not 0 <= self.threshold < 1:
            errors["threshold"] = "A failure rate is a share from 0 up to (not including) 1, e.g. 0.5."
        if self.threshold < 0:
            errors["threshold"] = "Must not be negative."
        if self.kind in (RuleKind.HANDLER_SILENT, RuleKind.FAILURE_RATE, RuleKind.QUARANTINE_GROWING) \
                and self.window_minutes < 1:
            errors["window_minutes"] = "At least one minute."
        if errors:
            raise ValidationError(errors)

    @classmethod
    def default(cls, kind: str) -> "AlertRule":
        """The built-in default of `kind`, unsaved."""
        threshold, window = DEFAULT_RULES[kind]
        return cls(kind=kind, threshold=threshold, window_minutes=window)

    @property
    def window(self) -> timedelta:
        return timedelta(minutes=self.window_minutes)


class Alert(models.Model):
    """A rule's condition holding for one handler or queue: opened once, resolved when it clears."""

    class State(models.TextChoices):
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        SILENCED = "silenced", "Silenced"
        RESOLVED = "resolved", "Resolved"

    rule = models.ForeignKey(AlertRule, null=True, on_delete=models.SET_NULL, related_name="alerts")
    kind = models.CharField(max_length=32, choices=RuleKind.choices)
    subject = models.CharField(max_length=1040, help_text="The handler's name or the queue's event.")
    handler = models.ForeignKey("handlers.EventHandler", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="alerts")
    queue = models.ForeignKey("queues.QueueConfig", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="alerts")
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN, db_index=True)
    detail = models.TextField(help_text="What the check found when it opened, in words.")
    current = models.TextField(blank=True, help_text="What the check found at the latest evaluation that found "
                               "it still holding: the value against the rule's limit.")
    checked_at = models.DateTimeField(null=True, blank=True, help_text="When an evaluation last found it holding.")
    opened_at = models.DateTimeField(default=timezone.now, db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    silenced_until = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True, help_text="Why it was last acknowledged or silenced.")

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            # Opens once: a second evaluation running at the same time cannot open it twice.
            models.UniqueConstraint(fields=["kind", "subject"], condition=~models.Q(state="resolved"),
                                    name="one_unresolved_alert_per_subject"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject}"

    @property
    def short_kind(self) -> str:
        return SHORT_NAMES.get(self.kind, self.kind)

    @property
    def text(self) -> str:
        """One line for people: what the notifications say."""
        return f"[{self.get_state_display()}] {self.get_kind_display()}: {self.subject} — {self.detail}"

    def change(self, state: str, user=None, reason: str = "", at: datetime | None = None,
               silenced_until: datetime | None = None) -> "AlertEvent":
        """Move to `state`, recorded with who and when."""
        at = at or timezone.now()
        previous, self.state = self.state, state
        self.silenced_until = silenced_until if state == self.State.SILENCED else None
        if state == self.State.RESOLVED:
            self.resolved_at = at
        if reason and state in (self.State.ACKNOWLEDGED, self.State.SILENCED):
            self.reason = reason  # (why it resolved or reopened is in its event, not here: see the field's help)
        self.save(update_fields=["state", "silenced_until", "resolved_at", "reason"])
        who = user if user is not None and getattr(user, "is_authenticated", False) else None
        return self.events.create(from_state=previous, to_state=state, at=at, by=who,
                                  by_name=who.get_username() if who else "eventhub", reason=reason)

    def acknowledge(self, user, reason: str, at: datetime | None = None) -> "AlertEvent":
        self._check_unresolved()
        return self.change(self.State.ACKNOWLEDGED, user, reason, at)

    def silence(self, user, reason: str, minutes: int, at: datetime | None = None) -> "AlertEvent":
        self._check_unresolved()
        if not 1 <= minutes <= MAX_SILENCE_MINUTES:
            raise ValidationError(f"A silence lasts from 1 to {MAX_SILENCE_MINUTES} minutes (30 days).")
        at = at or timezone.now()
        return self.change(self.State.SILENCED, user, reason, at, silenced_until=at + timedelta(minutes=minutes))

    def _check_unresolved(self) -> None:
        if self.state == self.State.RESOLVED:
            raise ValidationError("A resolved alert cannot be acknowledged or silenced.")


class AlertEvent(models.Model):
    """One state change of an alert: the audit record."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    from_state = models.CharField(max_length=16, blank=True, help_text="Empty when the alert opened.")
    to_state = models.CharField(max_length=16, choices=Alert.State.choices)
    at = models.DateTimeField(default=timezone.now)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                           related_name="+")
    by_name = models.CharField(max_length=150, help_text="Who: a user name, or eventhub for the evaluation.")
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.from_state or '∅'} → {self.to_state} by {self.by_name}"


class NotificationAttempt(models.Model):
    """One try at telling someone about a state change; a failed try schedules the next as a new row."""

    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    event = models.ForeignKey(AlertEvent, on_delete=models.CASCADE, related_name="notifications")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    target = models.CharField(max_length=1000, help_text="The addresses or the webhook URL.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempt = models.PositiveIntegerField(default=1)
    response = models.TextField(blank=True, help_text="What the receiver answered, or the error.")
    next_attempt_at = models.DateTimeField(default=timezone.now, help_text="When this attempt is due.")
    attempted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="notification_due")]

    def __str__(self) -> str:
        return f"{self.channel} #{self.attempt} {self.status}"
