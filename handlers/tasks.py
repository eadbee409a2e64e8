"""django-q2 entry points of handlers, referenced by dotted path from their schedules.

Draining: each enabled queue config's schedule (`handlers.schedules`) runs `drain_queue`, the listener's
one consumer step repeated for a bounded time. It, and the retention purge below, end between two steps
when the cluster is asked to stop (`eventhub.lib.stopping`, set by the `run_cluster` command), so a stop
does not wait out their time.

Backtests: one too long for its request runs as `run_backtest`; the retention purge also deletes backtests
older than BACKTEST_KEEP_HOURS.

Retention: received messages and finished executions older than RECORDS_RETENTION_DAYS are deleted in
batches, so no single DELETE holds locks on a large part of the table. A message (its event and message
id) is kept or deleted whole, every delivery and every execution of it together: while one of them is
recent, one execution is still IN_PROGRESS (waiting for redelivery), or the message (or a retry of it)
is still in quarantine or was retried from there since the cutoff, ops staff may yet need its whole
story, a suppressed duplicate still points at its original, and a retry finds what completed.
"""

import logging
import os
import socket
import time
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from eventhub.lib.stopping import stop_requested
from queues.models import ListenerHeartbeat, QuarantinedMessage, QueueConfig, ReceivedMessage
from queues.quarantine import retried_messages

from . import backtests, rollups
from .listener import Consumer
from .models import FINAL_STATUSES, ActionExecution, Backtest, EventShape

logger = logging.getLogger(__name__)

RETENTION_SCHEDULE = "handlers: purge old records"
BATCH_SIZE = 1000


def drain_queue(config_id: int, seconds: int) -> int:
    """Consume the queue of config `config_id` until it is empty, `seconds` have passed or the cluster is
    stopping; returns the number of messages handled. Each receive waits at most 1 s, and the batch in hand
    is finished and acknowledged before a stop. A failure is recorded on the config and raised, so django-q2
    records it too."""
    config = QueueConfig.objects.filter(pk=config_id, enabled=True).first()
    if config is None:
        return 0
    consumer = Consumer(config, name=f"django-q {socket.gethostname()}:{os.getpid()}:{config.pk}")
    deadline = time.monotonic() + seconds
    handled = 0
    try:
        while not stop_requested() and (remaining := deadline - time.monotonic()) > 0:
            batch = consumer.poll_once(wait=min(config.wait_seconds, remaining, 1))
            handled += batch
            if not batch:
                break
    except Exception as exc:
        consumer.failed(exc)
        raise
    finally:
        consumer.close()
    logger.info("drained %d message(s) from %s", handled, config.event)
    return handled


def purge_old_records(days: int | None = None, batch_size: int = BATCH_SIZE) -> dict[str, int]:
    """Delete records older than `days` (default RECORDS_RETENTION_DAYS); returns how many of each. A stop of
    the cluster ends it between two batches; the next run carries on."""
    cutoff = timezone.now() - timedelta(days=settings.RECORDS_RETENTION_DAYS if days is None else days)
    in_quarantine = _in_quarantine(cutoff)
    counts = {"executions": 0, "messages": 0}
    # Old deliveries, then old executions without one; a batch's messages are decided with a few index
    # lookups and deleted in one short transaction. Kept rows are passed over, never read again.
    for candidates in (ReceivedMessage.objects.filter(received_at__lt=cutoff),
                       ActionExecution.objects.filter(created_at__lt=cutoff, delivery__isnull=True)):
        for keys in _batches_of_messages(candidates, batch_size):
            purged = _purge(keys - in_quarantine, cutoff)
            counts = {name: counts[name] + purged[name] for name in counts}
    if any(counts.values()):
        logger.info("Purged records older than %s: %s", cutoff.isoformat(), counts)
    rollups.prune(cutoff)  # (the overview's hourly counts of those hours: kept as long as their records)
    ListenerHeartbeat.prune()  # (also done by running listeners; this covers a machine where none runs)
    Backtest.prune()  # (kept BACKTEST_KEEP_HOURS, whatever the records' retention)
    EventShape.prune()  # (an event nothing arrived on for SHAPES_STALE_DAYS)
    return counts


Key = tuple[str, str]  # a message: (event, message id)


def _batches_of_messages(candidates: QuerySet, batch_size: int) -> Iterator[set[Key]]:
    """The messages of `candidates`' rows, `batch_size` rows at a time, in id order (by key, not offset)."""
    last = 0
    page = candidates.order_by("pk").values_list("pk", "event", "message_id")
    while not stop_requested() and (rows := list(page.filter(pk__gt=last)[:batch_size])):
        last = rows[-1][0]
        yield {(event, message_id) for _, event, message_id in rows}


def _still_needed(keys: set[Key], cutoff) -> set[Key]:
    """Those of the messages with a recent delivery, or a recent or unfinished execution."""
    message_ids = {message_id for _, message_id in keys}
    recent = ReceivedMessage.objects.filter(message_id__in=message_ids, received_at__gte=cutoff)
    live = ActionExecution.objects.filter(message_id__in=message_ids).filter(
        Q(created_at__gte=cutoff) | ~Q(status__in=FINAL_STATUSES)
    )
    return keys & {*recent.values_list("event", "message_id"), *live.values_list("event", "message_id")}


def _in_quarantine(cutoff) -> set[Key]:
    """Messages still in quarantine or retried since the cutoff (the retry may still be queued or on its
    way), and those such a retry continues: it skips the actions they completed, found by their records."""
    Status = QuarantinedMessage.Status
    kept = set(QuarantinedMessage.objects.filter(Q(status=Status.QUARANTINED)
                                                 | Q(status=Status.RETRIED, resolved_at__gte=cutoff))
               .values_list("event", "message_id"))
    for event, message_ids in _by_event(kept).items():
        kept |= {(event, earlier) for chain in retried_messages(event, message_ids).values() for earlier in chain}
    return kept


def _by_event(keys: set[Key]) -> dict[str, list[str]]:
    by_event: dict[str, list[str]] = {}
    for event, message_id in keys:
        by_event.setdefault(event, []).append(message_id)
    return by_event


def _purge(keys: set[Key], cutoff) -> dict[str, int]:
    """Every old execution and delivery of those of these messages no longer needed, decided and deleted in
    one transaction. Duplicates first: deleting an original sets its duplicates' duplicate_of to NULL,
    which would make each of them a second original of one action (one_execution_per_action refuses that).
    Only rows older than the cutoff go: a delivery committed after the decision is left alone, and so is
    what it refers to."""
    counts = {"executions": 0, "messages": 0}
    with transaction.atomic():
        for event, message_ids in _by_event(keys - _still_needed(keys, cutoff)).items():
            executions = ActionExecution.objects.filter(event=event, message_id__in=message_ids, created_at__lt=cutoff)
            # Through the ORM, not a raw DELETE: a replay of a deleted message keeps its record, with
            # replay_of set to NULL.
            counts["executions"] += executions.filter(duplicate_of__isnull=False).delete()[1].get(_EXECUTION, 0)
            # An original that a newer duplicate still points at (one committed after the decision) stays,
            # and so does its delivery.
            pointed_at = ActionExecution.objects.filter(duplicate_of=OuterRef("pk"))
            counts["executions"] += executions.exclude(Exists(pointed_at)).delete()[1].get(_EXECUTION, 0)
            deliveries = ReceivedMessage.objects.filter(event=event, message_id__in=message_ids, received_at__lt=cutoff)
            deleted = deliveries.exclude(Exists(ActionExecution.objects.filter(delivery=OuterRef("pk")))).delete()[1]
            counts["messages"] += deleted.get(_MESSAGE, 0)
            counts["executions"] += deleted.get(_EXECUTION, 0)
    return counts


_EXECUTION, _MESSAGE = ActionExecution._meta.label, ReceivedMessage._meta.label


def sync_schedules(using: str = "default", **kwargs) -> None:
    """Create or update the retention schedule, found by its name (run after every migrate)."""
    from django_q.models import Schedule  # noqa: PLC0415 - the app registry must be ready.

    Schedule.objects.using(using).update_or_create(
        name=RETENTION_SCHEDULE,
        defaults={
            "func": "handlers.tasks.purge_old_records",
            "schedule_type": Schedule.MINUTES,
            "minutes": settings.RECORDS_PURGE_INTERVAL_MINUTES,
            "repeats": -1,
        },
    )


def run_backtest(backtest_id: int) -> int:
    """A backtest too long for its request (`handlers.backtests.start`); returns the messages backtested."""
    backtest = Backtest.objects.filter(pk=backtest_id).first()
    return backtests.run(backtest) if backtest is not None else 0


def backtest_task_ended(task) -> None:
    """django-q2's hook after a backtest's task: one killed at the cluster's timeout never finished its record."""
    if not task.success and task.args:
        backtests.abandoned(task.args[0], f"its task ended without finishing: {str(task.result)[:500]}")
