import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models
from django.utils import timezone

from queues.configs import default_config
from queues.kinds import KINDS, UnknownQueueKind, split_event
from queues.models import MESSAGE_ID_LENGTH, QueueConfig

from .actions import ACTION_KINDS, action_problems
from .alert_models import Alert, AlertEvent, AlertRule, NotificationAttempt, RuleKind
from .conditions import EVALUATOR_TYPES, compile_problem, evaluator_of
from .rollup_models import HourlyCount, RolledUpHour, RollupSeries

# Conductor's JSON names for the model's fields (and Eventhub's `mode`).
CONDUCTOR_NAMES = {
    "name": "name",
    "event": "event",
    "condition": "condition",
    "evaluator_type": "evaluatorType",
    "actions": "actions",
    "active": "active",
    "description": "description",
    "mode": "mode",
}
# Eventhub's own field on /api/event (ours), outside Conductor's shape: absent on a POST means live, absent on a
# PUT keeps the handler's mode, and the handler's JSON carries it only when shadow (a live handler reads exactly
# as Conductor's).
MODE_NAME = "mode"
FIELD_OF = {conductor: field for field, conductor in CONDUCTOR_NAMES.items() if conductor != MODE_NAME}

# Conductor's own texts for what every handler needs (its EventHandler constraints), so a client that
# matches on them finds them; the admin shows the same.
MISSING_NAME = "Missing event handler name"
MISSING_EVENT = "Missing event location"
NULL_HANDLER = "EventHandler cannot be null."


def problem(path: str, detail: str) -> ValidationError:
    """A validation error that keeps its Conductor path, so the API and the admin can both show it."""
    return ValidationError("%(path)s: %(detail)s", code="invalid", params={"path": path, "detail": detail})


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: item for key, item in value.items() if item is not None}
    return value


def normalize_actions(actions: Any) -> Any:
    """Drop null fields of each action and of its body (Conductor leaves them out); keep data below."""
    if not isinstance(actions, list):
        return actions
    normalized = []
    for action in actions:
        action = _without_nulls(action)
        if isinstance(action, dict):
            action = {key: _without_nulls(item) for key, item in action.items()}
        normalized.append(action)
    return normalized


class HandlerMode(models.TextChoices):
    LIVE = "live"
    SHADOW = "shadow"


SHADOW_SUFFIX = "__shadow"  # a shadow twin's name: its original's and this


class EventHandler(models.Model):
    Mode = HandlerMode

    name = models.CharField(
        max_length=255, unique=True, help_text="Unique name, e.g. <code>start_shipping_workflow</code>.",
        error_messages={"null": MISSING_NAME, "blank": MISSING_NAME},
    )
    event = models.CharField(
        max_length=1024,
        error_messages={"null": MISSING_EVENT, "blank": MISSING_EVENT},
        help_text="<code>kind:queue</code> the handler listens on, e.g. <code>sqs:shipping_start</code>. "
        f"Kinds: {', '.join(KINDS)}.",
    )
    condition = models.TextField(
        null=True,
        blank=True,
        help_text="Optional; empty means always. JavaScript over the payload <code>$</code>, "
        "e.g. <code>$.status == 'signed'</code>.",
    )
    evaluator_type = models.CharField(
        "evaluator type",
        max_length=32,
        null=True,
        blank=True,
        help_text=f"One of {', '.join(EVALUATOR_TYPES)}; empty means javascript.",
    )
    actions = models.JSONField(
        default=list,
        blank=True,  # clean() says Conductor's "No actions specified...", once
        help_text='Conductor actions, e.g. <code>[{"action": "start_workflow", '
        '"start_workflow": {"name": "shipping_workflow", "input": {"address": "${address}"}}}]</code>.',
    )
    active = models.BooleanField(
        default=False, help_text="Only active handlers run. The API defaults to inactive when omitted."
    )
    description = models.TextField(null=True, blank=True, help_text="Free text for the people who run it.")
    mode = models.CharField(
        max_length=8, choices=HandlerMode.choices, default=HandlerMode.LIVE,
        help_text="<code>live</code> runs its actions; <code>shadow</code> is evaluated on every message like any "
        "other handler and records what it would have done (executions with status SHADOW), running nothing.",
    )
    shadow_of = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="shadow_twin", editable=False,
        help_text="The live handler this one is a shadow twin of (made by Shadow copy; Promote makes it live).",
    )
    shadow_of_name = models.CharField(max_length=255, blank=True, editable=False,
                                      help_text="Its original's name, kept when the original is deleted.")
    # The revision copied from is (shadow_of_name, shadow_base_revision): numbers count per name, and the name is
    # the original's when copied, kept if it is renamed since.
    shadow_base_revision = models.PositiveIntegerField(
        null=True, blank=True, editable=False, help_text="The original's revision when the twin was copied from it.")
    revision = models.PositiveIntegerField(default=0, editable=False, help_text="Number of the latest revision.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["event", "active"], name="handler_event_active")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if self.shadow_of_id is None and not self.is_shadow:
            # A former twin (its original deleted) set live is a handler of its own, not a twin any more: set back
            # to shadow later, it is a shadow handler like any other. (A twin whose original exists stays shadow.)
            self.shadow_of_name, self.shadow_base_revision = "", None
        super().save(*args, **kwargs)

    @property
    def kind(self) -> str:
        return self.event.partition(":")[0]

    @property
    def is_shadow(self) -> bool:
        return self.mode == HandlerMode.SHADOW

    @property
    def is_twin(self) -> bool:
        """A shadow twin: made from a live handler by Shadow copy (its original may have been deleted since; set live
        after that, it is no twin any more)."""
        return bool(self.shadow_of_name)

    @property
    def action_kinds(self) -> list[str]:
        if not isinstance(self.actions, list):
            return []
        return [action.get("action", "?") for action in self.actions if isinstance(action, dict)]

    # Conductor representation ------------------------------------------------------------------

    def to_conductor(self) -> dict:
        data = {
            "name": self.name,
            "event": self.event,
            "condition": self.condition,
            "evaluatorType": self.evaluator_type,
            "actions": self.actions,
            "active": self.active,
            "description": self.description,
            MODE_NAME: HandlerMode.SHADOW.value if self.is_shadow else None,
        }
        return {key: value for key, value in data.items() if value is not None}

    def apply_conductor(self, data: Any) -> None:
        """Take a Conductor JSON handler; unknown fields are ignored. Raises ValidationError on wrong types.
        Eventhub's `mode`, when given, must be live or shadow; absent, it keeps the handler's (live when new)."""
        if data is None:
            raise ValidationError({NON_FIELD_ERRORS: [problem("$", NULL_HANDLER)]})
        if not isinstance(data, dict):
            not_an_object = problem("$", "the body must be a JSON object (an event handler)")
            raise ValidationError({NON_FIELD_ERRORS: [not_an_object]})
        errors: dict[str, list] = {}
        for conductor_name, field in FIELD_OF.items():
            value = data.get(conductor_name)
            if field in ("name", "event", "condition", "evaluator_type", "description"):
                if value is not None and not isinstance(value, str):
                    errors.setdefault(field, []).append(problem(conductor_name, "must be a string"))
                    continue
            if field == "active":
                if value is not None and not isinstance(value, bool):
                    errors.setdefault(field, []).append(problem(conductor_name, "must be true or false"))
                    continue
                value = bool(value)  # Conductor's rule: omitted means inactive.
            if field == "actions":
                value = normalize_actions(value) if value is not None else []
            setattr(self, field, value)
        mode = data.get(MODE_NAME)
        if mode is not None and mode not in HandlerMode.values:
            errors["mode"] = [problem(MODE_NAME, f"must be one of {', '.join(HandlerMode.values)}, or left out to "
                                      "keep the handler's mode (live when new)")]
        elif mode is not None:
            self.mode = mode
        if errors:
            raise ValidationError(errors)

    # Validation: the single source for the API, the admin and imports ----------------------------

    def clean(self) -> None:
        errors: dict[str, list] = {}

        def add(field: str, path: str, detail: str) -> None:
            errors.setdefault(field, []).append(problem(path, detail))

        self._check_event(add)
        if self.shadow_of_id is not None and not self.is_shadow:
            add("mode", MODE_NAME, f"a shadow twin of {self.shadow_of_name} stays in shadow mode: promote it to make "
                "its definition live, or delete it")
        for path, detail in action_problems(self.actions):
            add("actions", path, detail)
        evaluator = evaluator_of(self.evaluator_type)
        if evaluator is None:
            add("evaluator_type", "evaluatorType", f"unknown evaluator {self.evaluator_type!r}; valid evaluators are "
                f"{', '.join(EVALUATOR_TYPES)}")
        elif self.condition and len(self.condition) > settings.CONDITION_MAX_LENGTH:
            add("condition", "condition", f"is {len(self.condition)} characters long; at most "
                f"{settings.CONDITION_MAX_LENGTH} (CONDITION_MAX_LENGTH)")
        elif self.condition and self.condition.strip():
            reason = compile_problem(self.condition, self.evaluator_type)
            if reason:
                add("condition", "condition", reason)
        if errors:
            raise ValidationError(errors)

    def _check_event(self, add) -> None:
        if not self.event:
            return  # The field's own "required" error covers it.
        try:
            split_event(self.event)
        except UnknownQueueKind as exc:
            add("event", "event", f"must be <kind>:<queue>; {exc}")
            return
        except ValueError as exc:
            add("event", "event", str(exc))
            return
        if not QueueConfig.objects.filter(event=self.event).exists():
            # Saving the handler creates this queue's config: it must be one the queue can have.
            try:
                default_config(self.event).full_clean(exclude=["event"], validate_unique=False)
            except ValidationError as exc:
                for message in exc.messages:
                    add("event", "event", f"cannot be consumed as a queue: {message}")


class HandlerRevision(models.Model):
    """One change to a handler: who made it, when, how, and the handler as it then was."""

    class Change(models.TextChoices):
        CREATED = "created"
        CHANGED = "changed"
        DELETED = "deleted"
        RESTORED = "restored"

    handler = models.ForeignKey(
        EventHandler, null=True, blank=True, on_delete=models.SET_NULL, related_name="revisions"
    )
    handler_name = models.CharField(max_length=255, db_index=True)
    number = models.PositiveIntegerField()
    change = models.CharField(max_length=16, choices=Change.choices)
    source = models.CharField(max_length=32, help_text="Where the change came from: api, admin, import, restore.")
    snapshot = models.JSONField(
        help_text="The handler in Conductor JSON after this change (before it, for a deletion)."
    )
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    changed_by_name = models.CharField(max_length=150, blank=True, help_text="Kept if the user is deleted.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-number"]
        constraints = [models.UniqueConstraint(fields=["handler_name", "number"], name="revision_number_per_handler")]

    def __str__(self) -> str:
        return f"{self.handler_name} r{self.number} ({self.change})"

    def previous(self) -> "HandlerRevision | None":
        return (
            HandlerRevision.objects.filter(handler_name=self.handler_name, number__lt=self.number)
            .order_by("-number")
            .first()
        )


class ApiKey(models.Model):
    """A key id and secret a client exchanges for a short-lived token (Conductor's API key scheme).

    Only a hash of the secret is stored: the secret is shown once, when the key is issued.
    """

    key_id = models.CharField(max_length=64, unique=True, editable=False)
    secret_hash = models.CharField(max_length=256, editable=False)
    name = models.CharField(max_length=200, help_text="What uses this key, e.g. <code>orders-service worker</code>.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_keys",
        help_text="Requests made with this key act as this user, with this user's permissions.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_id})"

    @classmethod
    def issue(cls, user, name: str) -> tuple["ApiKey", str]:
        secret = secrets.token_urlsafe(32)
        key = cls.objects.create(
            key_id=secrets.token_hex(12), secret_hash=make_password(secret), name=name, user=user
        )
        return key, secret

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.user.is_active

    def check_secret(self, secret: str) -> bool:
        return check_password(secret, self.secret_hash)

    def revoke(self) -> bool:
        """Revoke the key; tokens issued for it stop working at once. False if it already was."""
        return bool(ApiKey.objects.filter(pk=self.pk, revoked_at=None).update(revoked_at=timezone.now()))


__all__ = ["ACTION_KINDS", "Alert", "AlertEvent", "AlertRule", "ApiKey", "Backtest", "EventHandler",
           "HandlerRevision", "HourlyCount", "NotificationAttempt", "RolledUpHour", "RollupSeries", "RuleKind"]


class ExecutionStatus(models.TextChoices):
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    # What a handler in shadow mode would have done (its condition's decision, or an action's resolved input, or
    # why either failed): final, and never work done (ours).
    SHADOW = "SHADOW"


FINAL_STATUSES = {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.SKIPPED, ExecutionStatus.SHADOW}
HANDLER_LEVEL = -1  # the `index` of a record about a whole handler (its condition), not one action


class ActionExecution(models.Model):
    """What one handler did with one message: one row per action, or one for the handler when its
    condition was false or failed. The audit record: written by dispatch, read-only everywhere else.

    `(event, message_id, handler_name, index)` is unique among originals, so a redelivered message
    cannot run a finished action again; the suppressed duplicate gets a row of its own that points at
    the original (`duplicate_of`).
    """

    execution_id = models.CharField(
        max_length=300, help_text="Conductor's id, <code>&lt;messageId&gt;_&lt;index&gt;</code>."
    )
    delivery = models.ForeignKey(
        "queues.ReceivedMessage", null=True, blank=True, on_delete=models.CASCADE, related_name="executions",
        help_text="The delivery of the message that produced this record.",
    )
    event = models.CharField(max_length=1040)
    message_id = models.CharField(max_length=MESSAGE_ID_LENGTH)
    handler = models.ForeignKey(
        EventHandler, null=True, blank=True, on_delete=models.SET_NULL, related_name="executions"
    )
    handler_name = models.CharField(max_length=255)
    revision = models.ForeignKey(
        HandlerRevision, null=True, blank=True, on_delete=models.SET_NULL, related_name="executions",
        help_text="The handler as it was when it ran.",
    )
    index = models.IntegerField(help_text="The action's index in the handler; -1 for the handler's condition.")
    action = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=16, choices=ExecutionStatus.choices)
    condition_value = models.TextField(blank=True, help_text="What the condition returned.")
    reason = models.TextField(blank=True, help_text="Why it was skipped or failed, in words.")
    input = models.JSONField(null=True, blank=True, help_text="The action's body after substitution.")
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    retryable = models.BooleanField(default=False, help_text="The last error may pass if the message comes again.")
    attempts = models.PositiveIntegerField(default=0)
    workflow_id = models.CharField(max_length=64, blank=True)
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="duplicates"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["event", "message_id", "handler_name", "index"],
                condition=models.Q(duplicate_of__isnull=True),
                name="one_execution_per_action",
            )
        ]
        # Plain indexes (a CharField's db_index adds a second one for LIKE, which nothing here asks): each
        # index is written for every execution.
        indexes = [
            models.Index(fields=["message_id", "event"], name="execution_message"),
            models.Index(fields=["execution_id"], name="execution_execution_id"),
            # With the record's index and time: a handler's matches (its first actions, index 0) over a time
            # range and its last match come from a range of this index, however many records its false
            # conditions (-1) wrote (it replaced the index on the name alone: the insert path keeps its count).
            # (duplicate_of is carried too, never updated: the overview's counts read this index alone.)
            models.Index(fields=["handler_name", "index", "created_at"], include=["duplicate_of"],
                         name="execution_handler_time"),
            # With the time: failures over a time range are a range of this index (the status is updated,
            # and so this index written, whatever its columns; it replaced the index on the status alone).
            models.Index(fields=["status", "created_at"], name="execution_status_time"),
            # Failures alone, with what the overview's charts count them by: its failure counts over a week are
            # read from this index only (index-only, no table rows), and only a failed record writes to it.
            models.Index(fields=["created_at"], include=["handler_name", "delivery", "duplicate_of"],
                         condition=models.Q(status="FAILED"), name="execution_failed_time"),
            models.Index(fields=["workflow_id"], name="execution_workflow_id"),
        ]

    def __str__(self) -> str:
        return f"{self.execution_id} {self.handler_name} {self.status}"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def duration_ms(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds() * 1000
        return None


class Backtest(models.Model):
    """One backtest: a handler, as saved or as an unsaved draft, evaluated over messages its event already
    received, executing nothing (`handlers.backtests`). Holds what was asked, how far it got and what it
    found (counts and a bounded number of sample messages), for BACKTEST_KEEP_HOURS: then the records purge
    deletes it (`prune`)."""

    class Status(models.TextChoices):
        SCHEDULED = "SCHEDULED"
        IN_PROGRESS = "IN_PROGRESS"
        COMPLETED = "COMPLETED"
        FAILED = "FAILED"

    handler_name = models.CharField(max_length=255, db_index=True)
    handler = models.JSONField(help_text="The handler backtested, in Conductor JSON (a draft is kept as sent).")
    draft = models.BooleanField(default=False, help_text="An unsaved version, not the handler as saved.")
    compared_to = models.JSONField(
        null=True, blank=True, help_text="The saved version the draft was compared with, in Conductor JSON."
    )
    compared_revision = models.PositiveIntegerField(null=True, blank=True)
    criteria = models.JSONField(help_text='Which messages: {"event", "from", "to", "limit", "outcomes"}.')
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SCHEDULED)
    expected = models.PositiveIntegerField(default=0, help_text="Messages selected when it was asked.")
    done = models.PositiveIntegerField(default=0, help_text="Messages backtested so far.")
    result = models.JSONField(default=dict, blank=True, help_text="Counts and samples (so far, while it runs).")
    error = models.TextField(blank=True, help_text="Why it stopped, when it failed.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"backtest {self.pk} of {self.handler_name}"

    @property
    def is_final(self) -> bool:
        return self.status in (self.Status.COMPLETED, self.Status.FAILED)

    def claim(self) -> bool:
        """SCHEDULED → IN_PROGRESS, once: False when another run (a redelivered task) took it first."""
        now = timezone.now()
        claimed = Backtest.objects.filter(pk=self.pk, status=self.Status.SCHEDULED).update(
            status=self.Status.IN_PROGRESS, started_at=now)
        if claimed:
            self.status, self.started_at = self.Status.IN_PROGRESS, now
        return bool(claimed)

    def record_progress(self, done: int, result: dict) -> None:
        Backtest.objects.filter(pk=self.pk, status=self.Status.IN_PROGRESS).update(done=done, result=result)
        self.done, self.result = done, result

    def finish(self, done: int, result: dict, error: str = "") -> None:
        """COMPLETED, or FAILED with `error` (what it counted before it stopped stays in `result`)."""
        self.status = self.Status.FAILED if error else self.Status.COMPLETED
        self.done, self.result, self.error, self.finished_at = done, result, error, timezone.now()
        self.save(update_fields=["status", "done", "result", "error", "finished_at"])

    @classmethod
    def prune(cls) -> int:
        """Delete backtests older than BACKTEST_KEEP_HOURS; returns how many."""
        cutoff = timezone.now() - timedelta(hours=settings.BACKTEST_KEEP_HOURS)
        return cls.objects.filter(created_at__lt=cutoff).delete()[1].get(cls._meta.label, 0)


class EventShape(models.Model):
    """The field paths seen in recent messages of one event (`handlers.shapes`), which handlers are linted
    against. Kept by the listeners from sampled messages, bounded (SHAPES_MAX_PATHS), and current: a path not
    seen for SHAPES_STALE_DAYS is dropped, and so is an event's whole shape by the records purge."""

    event = models.CharField(max_length=1040, unique=True)
    paths = models.JSONField(
        default=dict, blank=True,
        help_text='Each path seen, normalised (<code>customer.address.city</code>, <code>items[*].sku</code>, '
        "<code>meta.*</code> for a free-form object), with when it was last seen (Unix seconds).",
    )
    full = models.BooleanField(
        default=False, help_text="More paths arrived than SHAPES_MAX_PATHS: paths not kept cannot be told from "
        "paths never seen, so handlers are not warned about unseen paths.",
    )
    sampled = models.PositiveBigIntegerField(default=0, help_text="Messages walked so far.")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["event"]

    def __str__(self) -> str:
        return f"shape of {self.event}"

    @classmethod
    def prune(cls) -> int:
        """Delete the shapes of events nothing was sampled on for SHAPES_STALE_DAYS; returns how many."""
        cutoff = timezone.now() - timedelta(days=settings.SHAPES_STALE_DAYS)
        return cls.objects.filter(updated_at__lt=cutoff).delete()[1].get(cls._meta.label, 0)
