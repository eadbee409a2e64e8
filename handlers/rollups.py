"""The overview's hourly rollups (`HourlyCount`): messages received per queue event and matches per handler,
per completed hour, so that the day and week charts answer in well under a second whatever a week holds.

**What is rolled up.** Only counts that cannot change once their records are committed: deliveries received
(by `received_at`) and matches (by `created_at`; see `matches`). Outcomes, failures and quarantine entries
do change later (a retry that fails hours after the first delivery, a quarantine entry a person deletes):
the overview counts those from the records every time, from indexes that hold few rows.

**When an hour is settled.** Records are stamped when their batch builds them, and committed when the batch
ends: an hour's rows may still arrive after it is over. An hour is rolled up only once it ended
OVERVIEW_ROLLUP_SETTLE_MINUTES ago and, on PostgreSQL, no transaction of the database that began before its
end is still open (a batch that outlives the margin holds the hour back until it commits or rolls back).
Hours that began before the retention period's start plus the same margin are neither rolled up nor read
from rollups: the purge may delete their records at any time (`usable_from`). Until an hour is settled and
usable, the overview counts it from the records.

**Who rolls up.** A django-q2 schedule every OVERVIEW_ROLLUP_MINUTES (`roll_up`), and the page itself for
any settled hour it needs that is not rolled up yet (`ensure`): the first look at a week after a restore or
an upgrade pays for grouping that week once. Two doing it together insert the same counts (the hours are
settled) and the second's rows are ignored. The purge deletes rollups of hours older than the retention
(`prune`). Nothing here runs on the message path.
"""

import logging
import operator
from datetime import UTC, datetime, timedelta
from functools import reduce

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from eventhub.lib.aggregates import EpochBucket
from queues.models import ReceivedMessage

from .models import ActionExecution, ExecutionStatus, HourlyCount, RolledUpHour, RollupSeries

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
Series = RollupSeries
SCHEDULE = "handlers: roll up the overview's hours"
TASK = "handlers.rollups.roll_up"
# How far back the schedule rolls up: the overview's widest chart (a week of 4-hour bars, the first one whole).
REACH = timedelta(days=7, hours=4)

# A match is the record of a message's first action (index 0) whose condition held, whatever became of that
# action. Its statuses are listed rather than "any status": a record of another kind at index 0 (issue 24's
# SHADOW, what a shadow handler would have done) must never count as a match, in the page, its rollups or the
# list a number opens.
MATCH_STATUSES = (ExecutionStatus.IN_PROGRESS, ExecutionStatus.COMPLETED, ExecutionStatus.FAILED,
                  ExecutionStatus.SKIPPED)


def matches(executions: QuerySet) -> QuerySet:
    """Of these records, the matches the overview counts (duplicates of earlier records left out)."""
    return executions.filter(index=0, status__in=MATCH_STATUSES, duplicate_of__isnull=True)


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    start = floor_hour(moment)
    return start if start == moment else start + HOUR


def margin() -> timedelta:
    return timedelta(minutes=settings.OVERVIEW_ROLLUP_SETTLE_MINUTES)


def settled_until(now: datetime) -> datetime:
    """The end of the last settled hour: every record of the hours before it is committed."""
    until = now - margin()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # (Another session's xact_start is shown to sessions of its role, Eventhub's processes' own. The view
            # is read once per transaction and kept: cleared first, a caller's long transaction sees it anew.)
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT min(xact_start) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")
            oldest = cursor.fetchone()[0]
        if oldest is not None:
            until = min(until, oldest)
    return floor_hour(until)


def usable_from(now: datetime) -> datetime:
    """The first hour no purge can have touched: one that began after the retention period's start."""
    return ceil_hour(now - timedelta(days=settings.RECORDS_RETENTION_DAYS) + margin())


def rolled_up_range(since: datetime, now: datetime) -> tuple[datetime, datetime]:
    """The whole hours of [since, now) the overview may read from rollups (an empty range when start >= end)."""
    start = max(ceil_hour(since), usable_from(now))
    return start, max(start, min(settled_until(now), floor_hour(now)))


def ensure(start: datetime, end: datetime, now: datetime | None = None) -> int:
    """Roll up the hours of [start, end) not rolled up yet (they must be settled); returns how many."""
    done = set(RolledUpHour.objects.filter(hour__gte=start, hour__lt=end).values_list("hour", flat=True))
    missing = [hour for hour in _hours(start, end) if hour not in done]
    if not missing:
        return 0
    first, last = missing[0], missing[-1] + HOUR  # (one grouped count over them, the done ones dropped after)
    counts = [HourlyCount(hour=hour, series=series, key=key, count=n)
              for series, key, hour, n in _counted(first, last) if hour not in done]
    with transaction.atomic():
        HourlyCount.objects.bulk_create(counts, ignore_conflicts=True, batch_size=1000)
        rolled_up_at = now or timezone.now()
        RolledUpHour.objects.bulk_create([RolledUpHour(hour=hour, rolled_up_at=rolled_up_at) for hour in missing],
                                         ignore_conflicts=True)
    return len(missing)


def _hours(start: datetime, end: datetime) -> list[datetime]:
    return [start + i * HOUR for i in range((end - start) // HOUR)]


def _counted(start: datetime, end: datetime) -> list[tuple[str, str, datetime, int]]:
    """(series, key, hour, count) of every queue event and handler with records in [start, end)."""
    hour = int(HOUR.total_seconds())
    received = (ReceivedMessage.objects.filter(received_at__gte=start, received_at__lt=end).order_by()
                .annotate(bucket=EpochBucket("received_at", hour)).values_list("event", "bucket")
                .annotate(n=Count("*")))
    matched = (matches(ActionExecution.objects.filter(created_at__gte=start, created_at__lt=end)).order_by()
               .annotate(bucket=EpochBucket("created_at", hour)).values_list("handler_name", "bucket")
               .annotate(n=Count("*")))
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return [(series, key, epoch + bucket * HOUR, n)
            for series, rows in ((Series.RECEIVED, received), (Series.MATCHED, matched)) for key, bucket, n in rows]


def read(start: datetime, end: datetime, keys: dict[str, list[str]]) -> list[tuple[str, str, datetime, int]]:
    """(series, key, hour, count) over [start, end), which `ensure` rolled up, of the keys of each series."""
    wanted = reduce(operator.or_, (Q(series=series, key__in=names) for series, names in keys.items()))
    return list(HourlyCount.objects.filter(wanted, hour__gte=start, hour__lt=end).order_by()
                .values_list("series", "key", "hour", "count"))


def roll_up(now: datetime | None = None) -> int:
    """The schedule's task: roll up every settled hour the overview's charts may read; returns how many."""
    now = now or timezone.now()
    start, end = rolled_up_range(now - REACH, now)
    rolled = ensure(start, end, now) if start < end else 0
    if rolled:
        logger.info("rolled up %d hour(s) of the overview, %s to %s", rolled, start.isoformat(), end.isoformat())
    return rolled


def prune(cutoff: datetime) -> int:
    """Forget the rollups of hours that began before `cutoff` (the purge's): their records may be going."""
    HourlyCount.objects.filter(hour__lt=cutoff).delete()
    return RolledUpHour.objects.filter(hour__lt=cutoff).delete()[0]


def sync_schedule(using: str = "default", **kwargs) -> None:
    """Create or update the rollup's django-q2 schedule, found by its name (after every migrate)."""
    from django_q.models import Schedule  # noqa: PLC0415 - django_q's models need the app registry

    Schedule.objects.using(using).update_or_create(name=SCHEDULE, defaults={
        "func": TASK, "schedule_type": Schedule.MINUTES, "minutes": settings.OVERVIEW_ROLLUP_MINUTES, "repeats": -1,
    })
