"""django-q2 entry points of handlers, referenced by dotted path from their schedules.

Retention: received messages and finished executions older than RECORDS_RETENTION_DAYS are deleted in
batches, so no single DELETE holds locks on a large part of the table. A message (its event and message
id) is kept or deleted whole, every delivery and every execution of it together: while one of them is
recent, one execution is still IN_PROGRESS (waiting for redelivery) or the message is still in
quarantine, ops staff may yet need its whole story, and a suppressed duplicate still points at its
original.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from queues.models import QuarantinedMessage, ReceivedMessage

from .models import FINAL_STATUSES, ActionExecution

logger = logging.getLogger(__name__)

RETENTION_SCHEDULE = "handlers: purge old records"
BATCH_SIZE = 1000


def purge_old_records(days: int | None = None, batch_size: int = BATCH_SIZE) -> dict[str, int]:
    """Delete records older than `days` (default RECORDS_RETENTION_DAYS); returns how many of each."""
    cutoff = timezone.now() - timedelta(days=settings.RECORDS_RETENTION_DAYS if days is None else days)
    executions = ActionExecution.objects.filter(created_at__lt=cutoff, status__in=FINAL_STATUSES).exclude(
        _still_needed(cutoff)
    )
    # Duplicates first: deleting an original sets its duplicates' duplicate_of to NULL, which would make
    # each of them a second original of the same action (one_execution_per_action refuses that).
    counts = {"executions": _delete_in_batches(executions.filter(duplicate_of__isnull=False), batch_size)
              + _delete_in_batches(executions, batch_size),
              "messages": _delete_in_batches(_purgeable_messages(cutoff), batch_size)}
    if any(counts.values()):
        logger.info("Purged records older than %s: %s", cutoff.isoformat(), counts)
    return counts


def _purgeable_messages(cutoff) -> QuerySet:
    return ReceivedMessage.objects.filter(received_at__lt=cutoff).exclude(_still_needed(cutoff))


def _still_needed(cutoff) -> Q:
    """The outer row's message (by event and message id) has a recent delivery, a recent or unfinished
    execution, or is still in quarantine: all its records are kept."""
    same_message = {"event": OuterRef("event"), "message_id": OuterRef("message_id")}
    recent_delivery = ReceivedMessage.objects.filter(**same_message, received_at__gte=cutoff)
    live_execution = ActionExecution.objects.filter(**same_message).filter(
        Q(created_at__gte=cutoff) | ~Q(status__in=FINAL_STATUSES)
    )
    return Q(Exists(recent_delivery)) | Q(Exists(live_execution)) | Q(Exists(_open_quarantine()))


def _open_quarantine() -> QuerySet:
    """The outer row's message (by event and message id) while it is still in quarantine."""
    return QuarantinedMessage.objects.filter(
        event=OuterRef("event"), message_id=OuterRef("message_id"), status=QuarantinedMessage.Status.QUARANTINED
    )


def _delete_in_batches(queryset: QuerySet, batch_size: int) -> int:
    """Delete the rows of `queryset` `batch_size` at a time; each batch is its own short transaction."""
    total = 0
    while True:
        # The ids first: DELETE ... LIMIT is not portable, and a slice cannot be deleted directly. The
        # queryset is evaluated afresh for each batch, so a message delivered again meanwhile is spared.
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return total
        # Through the ORM, not a raw DELETE: the remaining executions of a message cascade, and a replay
        # of a deleted message keeps its record with replay_of set to NULL.
        queryset.model.objects.filter(pk__in=ids).delete()
        total += len(ids)


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
