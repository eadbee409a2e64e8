"""The transactional outbox: outgoing messages written in the sender's transaction, published by a relay.

Hand-over: `enqueue` writes an `OutboxMessage` row in the caller's transaction. Once that commits the
message is durably handed over; if it rolls back, the message never existed. The relay (`relay_once`,
run by `listen_queues` between its other steps and by a django-q2 schedule) claims due rows, publishes
each through its queue's provider with the row's message id (the broker's own message id or
deduplication id where it has one) and marks it SENT.

Delivery: at least once. A relay that dies after publishing but before marking a row SENT leaves its
claim to expire; the row is then published again with the same message id, and Eventhub's consumers
drop the duplicate (dispatch never runs a finished action of a message id twice). Nothing is lost: a
row stays PENDING until a broker accepted it, or becomes FAILED after OUTBOX_MAX_ATTEMPTS attempts,
visible in the admin and retryable from there.

Claiming is safe with several relays: on PostgreSQL due rows are locked with `FOR UPDATE SKIP LOCKED`
while their claim (a later `next_attempt_at`) is written; elsewhere each row is claimed by a conditional
UPDATE that only succeeds if nobody changed its `next_attempt_at` since it was read.

The `conductor` kind skips the outbox: its message is itself a row (`InternalMessage`) in the same
database, so writing it in the caller's transaction is already atomic, and one hop fewer means the
message is there for the internal queue's consumers as soon as the transaction commits.
"""

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from eventhub.lib import metrics

from .configs import config_for, default_config
from .kinds import provider_for, split_event
from .models import OutboxMessage, QueueConfig
from .providers.base import Provider

log = logging.getLogger(__name__)
Status = OutboxMessage.Status
DIRECT_KINDS = {"conductor"}
RELAY_SCHEDULE = "queues: relay the outbox"


class InvalidDestination(ValueError):
    """The event cannot be published to: unknown kind, or a name its kind does not accept."""


def check_event(event: str) -> None:
    """Raise InvalidDestination saying what is wrong with `event` as a place to publish to."""
    try:
        split_event(event)
    except ValueError as exc:
        raise InvalidDestination(str(exc)) from None
    if QueueConfig.objects.filter(event=event).exists():
        return
    try:  # No saved config: the defaults must make a valid one (the config is made when publishing).
        default_config(event).full_clean(exclude=["event"], validate_unique=False)
    except ValidationError as exc:
        problems = [f"{field}: {message}" for field, messages in exc.message_dict.items() for message in messages]
        raise InvalidDestination("; ".join(problems)) from None


def enqueue(event: str, payload: Any, *, message_id: str | None = None, source: str = "") -> str:
    """Hand a message over in the caller's transaction; returns its message id. Raises InvalidDestination."""
    message_id = message_id or uuid.uuid4().hex
    _write(event, payload, message_id, source)
    return message_id


def _write(event: str, payload: Any, message_id: str, source: str) -> OutboxMessage | None:
    check_event(event)
    if split_event(event)[0] in DIRECT_KINDS:
        from .publish import publish

        publish(event, payload, message_id=message_id)  # a row in this same transaction
        return None
    return OutboxMessage.objects.create(event=event, payload=payload, message_id=message_id, source=source[:255])


@dataclass
class Sent:
    """What `send` did: the message id, and the outbox row when it went through one (None: direct)."""

    message_id: str
    outbox: OutboxMessage | None

    @property
    def status(self) -> str:
        return self.outbox.status if self.outbox else Status.SENT


def send(event: str, payload: Any, *, message_id: str | None = None, source: str = "") -> Sent:
    """Publish to a configured queue now (API and admin): enqueue, commit, then try to publish at once.

    A broker that is down leaves the row PENDING for the relay; the caller sees that in `Sent.status`."""
    if not QueueConfig.objects.filter(event=event).exists():
        raise InvalidDestination(f"no queue config for {event}; create one first")
    message_id = message_id or uuid.uuid4().hex
    with transaction.atomic():
        row = _write(event, payload, message_id, source)
    if row is not None:
        claimed = _claim_rows([row.pk], timezone.now())
        relay = _Relay()
        try:
            for item in claimed:
                relay.deliver(item)
        finally:
            relay.close()
        row.refresh_from_db()
    return Sent(message_id, row)


# The relay --------------------------------------------------------------------------------------


def relay_once(limit: int | None = None) -> int:
    """Claim up to `limit` due PENDING rows, publish them and mark them SENT; returns how many were sent."""
    rows = claim(limit or settings.OUTBOX_BATCH_SIZE)
    if not rows:
        return 0
    relay = _Relay()
    try:
        sent = sum(relay.deliver(row) for row in rows)
    finally:
        relay.close()
    log.info("outbox: sent %d of %d message(s)", sent, len(rows))
    return sent


def claim(limit: int) -> list[OutboxMessage]:
    """Take due rows for this relay by moving their `next_attempt_at` past the claim time."""
    now = timezone.now()
    due = OutboxMessage.objects.filter(status=Status.PENDING, next_attempt_at__lte=now).order_by("next_attempt_at",
                                                                                                  "id")
    if connection.features.has_select_for_update_skip_locked:
        with transaction.atomic():
            # Rows another relay is claiming right now are skipped, not waited for.
            ids = list(due.select_for_update(skip_locked=True).values_list("id", flat=True)[:limit])
            return _claim_rows(ids, now, locked=True)
    return _claim_rows(list(due.values_list("id", flat=True)[:limit]), now)


def _claim_rows(ids: list[int], now, locked: bool = False) -> list[OutboxMessage]:
    lease = now + timedelta(seconds=settings.OUTBOX_CLAIM_SECONDS)
    claims = {"next_attempt_at": lease, "attempts": F("attempts") + 1}
    if locked:
        OutboxMessage.objects.filter(pk__in=ids).update(**claims)
        claimed = ids
    else:
        # Conditional: only a row still due is ours; another relay that got there first moved it.
        claimed = [pk for pk in ids if OutboxMessage.objects.filter(
            pk=pk, status=Status.PENDING, next_attempt_at__lte=now).update(**claims)]
    return list(OutboxMessage.objects.filter(pk__in=claimed).order_by("id"))


def backoff(attempts: int) -> timedelta:
    """Delay before the next attempt after `attempts` failed ones: doubling, capped."""
    seconds = settings.OUTBOX_BACKOFF_SECONDS * 2 ** max(0, attempts - 1)
    return timedelta(seconds=min(seconds, settings.OUTBOX_BACKOFF_MAX_SECONDS))


class _Relay:
    """One provider per event, kept for one relay step."""

    def __init__(self) -> None:
        self.providers: dict[str, Provider] = {}

    def deliver(self, row: OutboxMessage) -> bool:
        try:
            self._provider(row.event).publish(json.dumps(row.payload), message_id=row.message_id)
        except Exception as exc:  # noqa: BLE001 - recorded on the row and retried; never lost
            self._drop(row.event)
            failed(row, f"{type(exc).__name__}: {exc}")
            metrics.outbox_failures.labels(row.event.partition(":")[0]).inc()
            return False
        OutboxMessage.objects.filter(pk=row.pk, status=Status.PENDING).update(
            status=Status.SENT, sent_at=timezone.now(), last_error="")
        metrics.outbox_published.labels(row.event.partition(":")[0]).inc()
        return True

    def _provider(self, event: str) -> Provider:
        if event not in self.providers:
            self.providers[event] = provider_for(config_for(event).spec())
        return self.providers[event]

    def _drop(self, event: str) -> None:
        provider = self.providers.pop(event, None)
        if provider is not None:
            provider.close()

    def close(self) -> None:
        for event in list(self.providers):
            self._drop(event)


def failed(row: OutboxMessage, error: str) -> None:
    """Record a failed attempt: back off, or give up (FAILED) after OUTBOX_MAX_ATTEMPTS."""
    log.warning("outbox: publishing %s to %s failed (attempt %d): %s", row.message_id, row.event, row.attempts, error)
    fields: dict[str, Any] = {"last_error": error[:4000]}
    if row.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
        fields["status"] = Status.FAILED
    else:
        fields["next_attempt_at"] = timezone.now() + backoff(row.attempts)
    OutboxMessage.objects.filter(pk=row.pk, status=Status.PENDING).update(**fields)


def retry_failed(rows: QuerySet[OutboxMessage]) -> int:
    """Put FAILED rows back in line for the relay, attempts reset; returns how many."""
    return rows.filter(status=Status.FAILED).update(status=Status.PENDING, attempts=0, next_attempt_at=timezone.now())


def sync_schedule(using: str = "default", **kwargs: Any) -> None:
    """Create or update the relay's django-q2 schedule, found by its name (run after every migrate)."""
    from django_q.models import Schedule

    schedules = Schedule.objects.using(using)
    if not settings.OUTBOX_SCHEDULE:
        schedules.filter(name=RELAY_SCHEDULE).delete()
        return
    schedules.update_or_create(name=RELAY_SCHEDULE, defaults={
        "func": "queues.tasks.relay_outbox", "args": repr((settings.OUTBOX_RELAY_SECONDS,)),
        "schedule_type": Schedule.MINUTES, "minutes": settings.OUTBOX_RELAY_MINUTES, "repeats": -1,
    })
