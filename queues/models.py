import os
import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from eventhub.lib.storable import UNSTORABLE

from .kinds import KIND_CHOICES, KINDS
from .providers.base import ConfigurationError, QueueSpec

AWS_ACCOUNT = re.compile(r"^\d{12}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_CONCURRENCY = 16
MESSAGE_ID_LENGTH = 255  # the records' message id column; a longer broker id is stored cut to this


def stored_message_id(message_id: str) -> str:
    """A message id as the records store it (and as lookups of those records must use it): cut to the
    column, and NUL or unpaired surrogates (a broker's id is bytes) as U+FFFD, which the database can hold."""
    return UNSTORABLE.sub("\ufffd", message_id[:MESSAGE_ID_LENGTH])


def suffixed_message_id(message_id: str, suffix: str) -> str:
    """A new message id made from a stored one and a suffix, the first part cut so that the whole fits."""
    return message_id[: MESSAGE_ID_LENGTH - len(suffix)] + suffix


def resolve_reference(name: str) -> str | None:
    """A secret named by reference: the environment first, then a setting of that name."""
    if name in os.environ:
        return os.environ[name]
    value = getattr(settings, name, None)
    return value if isinstance(value, str) else None


class QueueConfig(models.Model):
    class Unmatched(models.TextChoices):
        RECORD = "record", "Record and acknowledge"
        QUARANTINE = "quarantine", "Quarantine"

    kind = models.CharField(max_length=32, choices=KIND_CHOICES, help_text="The broker, e.g. <code>sqs</code>.")
    name = models.CharField(
        max_length=1000,
        help_text="Queue name as in the event string after <code>kind:</code>, e.g. <code>orders</code>, an SQS "
        "URL or ARN, <code>orders?exchangeType=topic&amp;routingKey=order.*</code> (AMQP) or a NATS subject.",
    )
    event = models.CharField(max_length=1040, unique=True, editable=False, help_text="<code>kind:name</code>.")
    enabled = models.BooleanField(default=True, help_text="Only enabled queues are consumed.")
    url = models.CharField(
        max_length=500, blank=True,
        help_text="Broker URL without a password, e.g. <code>amqp://rabbit.internal:5672/</code>; "
        "empty means AMQP_URL / NATS_URL from the settings.",
    )
    url_ref = models.CharField(
        "URL reference", max_length=100, blank=True,
        help_text="Name of an environment variable or setting holding a URL with credentials, "
        "e.g. <code>AMQP_URL_ORDERS</code>. Wins over the URL field. The secret is never stored.",
    )
    region = models.CharField(
        max_length=40, blank=True,
        help_text="SQS region, e.g. <code>eu-west-1</code>. Empty means the region of an ARN or AWS queue URL "
        "given as the name, else AWS_REGION, else AWS_DEFAULT_REGION (then the AWS profile's region).",
    )
    endpoint_url = models.CharField(
        max_length=500, blank=True,
        help_text="SQS endpoint, e.g. <code>http://127.0.0.1:5000</code>; empty means AWS_ENDPOINT_URL_SQS or AWS.",
    )
    batch_size = models.PositiveIntegerField(default=10, help_text="Messages per receive, e.g. 10 (SQS: 1-10).")
    wait_seconds = models.PositiveIntegerField(
        default=20, help_text="Longest wait of one receive for a message, e.g. 20 (SQS: 0-20; also the queue's own "
        "default when Eventhub creates it). listen_queues waits at most 2 s at a time and the drain task 1 s, so "
        "that they stop promptly.",
    )
    visibility_timeout = models.PositiveIntegerField(
        default=60, help_text="Seconds a received message stays hidden before it is delivered again, e.g. 60."
    )
    max_deliveries = models.PositiveIntegerField(
        default=5, help_text="Deliveries before a message is quarantined, e.g. 5."
    )
    concurrency = models.PositiveIntegerField(
        default=2, help_text="Batches of this queue one listener process handles at once, each in a thread with "
        "its own connections, e.g. 2: one batch's database work overlaps another's Python work.",
    )
    unmatched = models.CharField(
        max_length=16, choices=Unmatched.choices, default=Unmatched.RECORD,
        help_text="What happens to a message no active handler matches.",
    )
    poll_interval_minutes = models.PositiveIntegerField(
        default=1, help_text="How often the django-q2 schedule drains this queue, in minutes, e.g. 1."
    )
    authorized_accounts = models.JSONField(
        default=list, blank=True,
        help_text='SQS only: AWS account ids allowed to send, e.g. <code>["123456789012"]</code>.',
    )
    provision = models.BooleanField(
        default=True, help_text="Create the queue, stream or dead-letter queue when missing."
    )
    # Kept up to date by the listener, shown in the admin.
    depth = models.IntegerField(null=True, blank=True, editable=False, help_text="Approximate ready messages.")
    dead_letter_depth = models.IntegerField(null=True, blank=True, editable=False)
    oldest_message_at = models.DateTimeField(
        null=True, blank=True, editable=False,
        help_text="When the oldest message waiting in the queue was sent, where the broker tells (the internal queue).",
    )
    last_poll_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["event"]

    def __str__(self) -> str:
        return self.event

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.event = f"{self.kind}:{self.name}"
        if "update_fields" in kwargs and kwargs["update_fields"] is not None:
            kwargs["update_fields"] = {*kwargs["update_fields"], "event"}
        super().save(*args, **kwargs)

    # Validation ---------------------------------------------------------------------------------

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}

        def add(field: str, message: str) -> None:
            errors.setdefault(field, []).append(message)

        if self.kind not in KINDS:
            add("kind", f"unknown queue kind {self.kind!r}; valid kinds are {', '.join(KINDS)}")
        if not (self.name or "").strip():
            add("name", "a queue name is required")
        self._clean_connection(add)
        if self.kind == "sqs":
            self._clean_sqs(add)
        elif self.kind in ("amqp_queue", "amqp_exchange"):
            self._clean_amqp(add)
        elif self.kind == "nats":
            self._clean_nats(add)
        if self.batch_size < 1:
            add("batch_size", "must be at least 1")
        if self.max_deliveries < 1:
            add("max_deliveries", "must be at least 1")
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            add("concurrency", f"must be between 1 and {MAX_CONCURRENCY} (each holds its own database connection)")
        if self.poll_interval_minutes < 1:
            add("poll_interval_minutes", "must be at least 1 minute")
        if self.kind != "sqs" and self.authorized_accounts:
            add("authorized_accounts", "only SQS queues have authorized accounts")
        event = f"{self.kind}:{self.name}"
        if QueueConfig.objects.filter(event=event).exclude(pk=self.pk).exists():
            add("name", f"a queue config for {event} exists already")
        if errors:
            raise ValidationError(errors)

    def _clean_connection(self, add) -> None:
        if self.url:
            parts = urlsplit(self.url)
            if parts.password:
                add("url", "must not hold a password: put the URL in an environment variable and name it in "
                           "'URL reference'")
            if self.kind == "sqs":
                add("url", "SQS uses the endpoint URL and region fields, not a broker URL")
        if self.url_ref:
            if not ENV_NAME.match(self.url_ref):
                add("url_ref", "must be the name of an environment variable or setting, e.g. AMQP_URL_ORDERS")
            elif resolve_reference(self.url_ref) is None:
                add("url_ref", f"{self.url_ref} is neither set in the environment nor a setting")

    def _clean_sqs(self, add) -> None:
        if self.batch_size > 10:
            add("batch_size", "SQS receives at most 10 messages at a time")
        if self.wait_seconds > 20:
            add("wait_seconds", "SQS long polling waits at most 20 seconds")
        if self.visibility_timeout > 43200:
            add("visibility_timeout", "SQS allows at most 43200 seconds (12 hours)")
        if self.max_deliveries > 999:
            add("max_deliveries", "SQS redrive allows at most 999 receives")
        accounts = self.authorized_accounts
        if not isinstance(accounts, list) or not all(isinstance(a, str) and AWS_ACCOUNT.match(a) for a in accounts):
            add("authorized_accounts", 'must be a list of 12-digit AWS account ids, e.g. ["123456789012"]')
        name = self.name or ""
        if name.startswith("arn:") and len(name.split(":")) != 6:
            add("name", "an SQS ARN looks like arn:aws:sqs:<region>:<account>:<queue>")
        elif name.startswith(("http://", "https://")) and len(urlsplit(name).path.strip("/").split("/")) != 2:
            add("name", "an SQS URL looks like https://sqs.<region>.amazonaws.com/<account>/<queue>")
        elif not name.startswith(("arn:", "http")) and not re.match(r"^[A-Za-z0-9_-]{1,80}(\.fifo)?$", name):
            add("name", "an SQS queue name has 1-80 letters, digits, '-' or '_' (FIFO queues end in .fifo)")

    def _clean_amqp(self, add) -> None:
        from .providers.amqp_options import AmqpOptionsError, parse_amqp_name

        try:
            parse_amqp_name(self.kind, self.name or "")
        except AmqpOptionsError as exc:
            add("name", str(exc))

    def _clean_nats(self, add) -> None:
        name = self.name or ""
        if not re.match(r"^[^\s*>]+$", name) or name.startswith(".") or name.endswith(".") or ".." in name:
            add("name", "a NATS subject like orders.created: no spaces or wildcards, no empty tokens")

    # What providers get ---------------------------------------------------------------------------

    def connection_url(self) -> str:
        if self.url_ref:
            url = resolve_reference(self.url_ref)
            if not url:
                raise ConfigurationError(f"{self.event}: {self.url_ref} (the URL reference) is not set")
            return url
        if self.url:
            return self.url
        if self.kind in ("amqp_queue", "amqp_exchange"):
            return settings.AMQP_URL
        if self.kind == "nats":
            return settings.NATS_URL
        return ""

    def spec(self) -> QueueSpec:
        return QueueSpec(
            kind=self.kind, name=self.name, url=self.connection_url(), region=self.region,
            endpoint_url=self.endpoint_url, batch_size=self.batch_size, wait_seconds=self.wait_seconds,
            visibility_timeout=self.visibility_timeout, max_deliveries=self.max_deliveries,
            authorized_accounts=tuple(self.authorized_accounts or ()), provision=self.provision,
            max_message_bytes=settings.QUEUES_MAX_MESSAGE_BYTES,
        )

    def note_poll(self, error: str = "") -> None:
        """A poll's end: a failed one keeps its error and time; a good one clears the error (its time stays,
        to say when the queue last failed)."""
        now = timezone.now()
        fields: dict[str, Any] = {"last_poll_at": now, "last_error": error[:4000]}
        if error:
            fields["last_error_at"] = now
        QueueConfig.objects.filter(pk=self.pk).update(**fields)


class InternalMessage(models.Model):
    """A message of the `conductor` kind: Eventhub's own queue, a table in its database."""

    queue = models.CharField(max_length=1000, help_text="Queue name, e.g. <code>shipping:wait_ref</code>.")
    message_id = models.CharField(max_length=MESSAGE_ID_LENGTH, default="")
    body = models.TextField()
    delivery_count = models.PositiveIntegerField(default=0)
    visible_at = models.DateTimeField(default=timezone.now, help_text="Deliverable from this time on.")
    receipt = models.CharField(max_length=36, blank=True, help_text="Token of the current claim.")
    dead_lettered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["queue", "dead_lettered_at", "visible_at"], name="internal_msg_ready")]

    def __str__(self) -> str:
        return f"{self.queue} {self.message_id}"


class ReceivedMessage(models.Model):
    """One delivery of one message, as received: the audit record. Read-only in the admin."""

    class Outcome(models.TextChoices):
        RECEIVED = "RECEIVED", "Received"
        ACKNOWLEDGED = "ACKNOWLEDGED", "Acknowledged"
        RETURNED = "RETURNED", "Returned for redelivery"
        QUARANTINED = "QUARANTINED", "Quarantined"
        SUPERSEDED = "SUPERSEDED", "Settled by a later delivery"

    config = models.ForeignKey(QueueConfig, null=True, blank=True, on_delete=models.SET_NULL)
    event = models.CharField(max_length=1040)
    message_id = models.CharField(max_length=MESSAGE_ID_LENGTH)
    payload = models.JSONField(null=True, blank=True)
    raw_body = models.TextField(blank=True, help_text="The body as received when it is not JSON.")
    delivery_count = models.PositiveIntegerField(default=1)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RECEIVED)
    detail = models.TextField(blank=True, help_text="Why the outcome is what it is (errors, reasons).")
    # A replay is a delivery made by a person, not a broker: it points at the message it replays.
    replay_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replays",
        help_text="The received message this delivery replays.",
    )
    replayed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    replay_reason = models.TextField(blank=True, help_text="Why it was replayed, in the words of who did it.")

    class Meta:
        ordering = ["-received_at", "-id"]
        # Plain indexes (a CharField's db_index adds a second one for LIKE, which nothing here asks): each
        # index is written for every message received. The event's index carries the time as well, so the
        # overview counts a queue's messages over a time window from the index alone (no outcome in it: the
        # acknowledgement's UPDATE of the outcome stays a HOT update that touches no index).
        indexes = [models.Index(fields=["event", "received_at"], name="received_event_time"),
                   models.Index(fields=["message_id"], name="received_message_id")]

    def __str__(self) -> str:
        return f"{self.event} {self.message_id} #{self.delivery_count}"


class QuarantinedMessage(models.Model):
    """A message Eventhub gave up on, kept whatever its broker, until ops staff retry or discard it."""

    class Reason(models.TextChoices):
        MAX_DELIVERIES = "max_deliveries", "Too many deliveries"
        UNREADABLE = "unreadable", "Unreadable"
        REJECTED = "rejected", "Rejected by processing"

    class Status(models.TextChoices):
        QUARANTINED = "QUARANTINED", "Quarantined"
        RETRIED = "RETRIED", "Retried"
        DISCARDED = "DISCARDED", "Discarded"

    config = models.ForeignKey(QueueConfig, null=True, blank=True, on_delete=models.SET_NULL)
    event = models.CharField(max_length=1040, db_index=True)
    message_id = models.CharField(max_length=MESSAGE_ID_LENGTH, db_index=True)
    payload = models.JSONField(null=True, blank=True)
    raw_body = models.TextField(blank=True)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    last_error = models.TextField(blank=True)
    delivery_count = models.PositiveIntegerField(default=1)
    history = models.JSONField(default=list, blank=True, help_text="Each delivery: count, time, outcome, detail.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUARANTINED, db_index=True)
    quarantined_at = models.DateTimeField(default=timezone.now, db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    resolution = models.TextField(blank=True, help_text="The discard reason, or what the retry sent.")

    class Meta:
        ordering = ["-quarantined_at", "-id"]

    def __str__(self) -> str:
        return f"{self.event} {self.message_id}"

    @classmethod
    def from_message(cls, config: QueueConfig, message, reason: str, error: str) -> "QuarantinedMessage":
        past = ReceivedMessage.objects.filter(event=config.event, message_id=stored_message_id(message.message_id))
        history = [
            {"delivery": r.delivery_count, "received_at": r.received_at.isoformat(), "outcome": r.outcome,
             "detail": r.detail}
            for r in past.order_by("received_at", "id")
        ]
        return cls.objects.create(
            config=config if config.pk else None, event=config.event, message_id=stored_message_id(message.message_id),
            payload=message.payload if message.readable else None,
            raw_body="" if message.readable else message.body, reason=reason, last_error=error,
            delivery_count=message.delivery_count, history=history,
        )

    def body_to_send(self, payload: Any = None) -> str:
        import json

        if payload is not None:
            return json.dumps(payload)
        return json.dumps(self.payload) if self.payload is not None or not self.raw_body else self.raw_body

    def mark(self, status: str, user, resolution: str) -> None:
        self.status = status
        self.resolved_at = timezone.now()
        self.resolved_by = user if user is not None and getattr(user, "is_authenticated", False) else None
        self.resolution = resolution
        self.save(update_fields=["status", "resolved_at", "resolved_by", "resolution"])


class ListenerHeartbeat(models.Model):
    """One row per consumer of a running (or stopped) `listen_queues`; the admin shows listener health."""

    ALIVE_SECONDS = 60  # consumers beat every few seconds: one silent this long is gone

    consumer = models.CharField(max_length=300, unique=True, help_text="host:pid:config of the consumer.")
    config = models.ForeignKey(QueueConfig, null=True, blank=True, on_delete=models.SET_NULL)
    event = models.CharField(max_length=1040)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    last_beat_at = models.DateTimeField(default=timezone.now)
    messages = models.PositiveBigIntegerField(default=0, help_text="Messages handled since start.")
    last_error = models.TextField(blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["event", "hostname", "pid"]

    def __str__(self) -> str:
        return self.consumer

    @classmethod
    def alive(cls, now=None) -> "models.QuerySet[ListenerHeartbeat]":
        """Consumers running now: not stopped, and beat within the last ALIVE_SECONDS."""
        since = (now or timezone.now()) - timedelta(seconds=cls.ALIVE_SECONDS)
        return cls.objects.filter(stopped_at__isnull=True, last_beat_at__gte=since)

    @property
    def is_alive(self) -> bool:
        return self.stopped_at is None and self.last_beat_at >= timezone.now() - timedelta(seconds=self.ALIVE_SECONDS)

    @classmethod
    def prune(cls) -> int:
        """Forget consumers silent for longer than LISTENER_HEARTBEAT_KEEP_MINUTES: stopped, or their process
        died without saying so (killed, its host gone). Their rows would otherwise pile up for good."""
        cutoff = timezone.now() - timedelta(minutes=settings.LISTENER_HEARTBEAT_KEEP_MINUTES)
        return cls.objects.filter(last_beat_at__lt=cutoff).delete()[0]


class OutboxMessage(models.Model):
    """A message waiting to be (or already) published: written in the sender's own transaction, published
    by the relay (`queues.outbox.relay_once`) after that transaction committed.

    Committing this row is the durable hand-over: the sender's state change and its outgoing message
    commit together or not at all, and the relay retries until the broker has it.
    """

    class Status(models.TextChoices):
        PENDING = "PENDING", "Pending"
        SENT = "SENT", "Sent"
        FAILED = "FAILED", "Failed"

    event = models.CharField(max_length=1040, db_index=True, help_text="Where it goes, e.g. <code>sqs:orders</code>.")
    payload = models.JSONField(help_text='The JSON body, e.g. <code>{"orderId": 7}</code>.')
    message_id = models.CharField(
        max_length=MESSAGE_ID_LENGTH, db_index=True,
        help_text="Travels as the broker's message id / deduplication id; an EVENT task's id for its messages.",
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="Publish attempts so far.")
    next_attempt_at = models.DateTimeField(
        default=timezone.now, help_text="Not published before this time (backoff, or a relay's claim)."
    )
    last_error = models.TextField(blank=True)
    source = models.CharField(max_length=255, blank=True, help_text="Who wrote it, e.g. <code>task 3f2a…</code>.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="outbox_due")]

    def __str__(self) -> str:
        return f"{self.event} {self.message_id}"
