"""The operations overview: "is everything flowing?" at a glance, the admin's landing page.

What it counts, per queue, over the hour before the page was made (and the five minutes before it):
messages **in** (every delivery recorded, replays included), **acknowledged** (acknowledged with no failed
record), **failed** (acknowledged, but a condition or an action failed: a permanent failure is recorded and
acknowledged) and **quarantined** (put in quarantine in that hour: the quarantine's own entries, whatever
became of them since); beside them the queue's health as the listeners record it (backlog, oldest
message, last poll, last error, listeners alive) and the messages open in quarantine. Per handler, over
the same hour: messages **matched** (its condition held: its first action's record), **skipped**
(condition false), **failed** records, the **last match** (within retention), and **receipt to record**,
the p50 / p99 of each record's `finished_at` less its delivery's `received_at`: from the moment Eventhub
recorded the message, as it came off the broker, to the moment the handler's condition decision or action
was finished (its batch commits right after). Charts give the same counts per minute, hour or four hours
over the last hour, day or week.

Everything is read from the records with a handful of grouped queries over a bounded time range, served
by the indexes on `(event, received_at)`, `received_at`, `(handler_name, index, created_at)`, the
execution status, the failed records and `quarantined_at`: nothing is counted on the message path. The day
and week charts' messages in and matches of completed, settled hours come from hourly rollups of those
records (`handlers.rollups`, kept by a schedule and filled here for any hour missing); the hour still
going, and everything that can change after its hour (failures, quarantine entries), is counted live.
Every number carries the URL of the admin list that shows what it counts, with the same filters and the
same time bounds (`until` is the page's own moment, so a list opened later shows what the page counted, not
what arrived since).
"""

import operator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache, reduce
from urllib.parse import urlencode

from django.db.models import (
    Case,
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    When,
)
from django.urls import get_script_prefix, reverse
from django.utils import timezone
from django.utils.html import format_html

from eventhub.lib.aggregates import EpochBucket, PercentileDisc
from queues.models import ListenerHeartbeat, QuarantinedMessage, QueueConfig, ReceivedMessage

from . import rollups
from .models import HANDLER_LEVEL, ActionExecution, EventHandler, ExecutionStatus, RollupSeries

Outcome = ReceivedMessage.Outcome
Status = ExecutionStatus
FAILED = "FAILED"  # the lists' outcome of an acknowledged message one of whose records failed
RECENT = timedelta(minutes=5)
HOUR = timedelta(hours=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CHART_WIDTH, CHART_HEIGHT = 600, 100  # the charts' viewBox; the page scales them to its width
MIN_HEIGHT = 2.0  # a segment of a few messages next to thousands is still seen (and can be clicked)


# Outcomes as the lists show them ------------------------------------------------------------------


def failed_record() -> Exists:
    """A delivery one of whose execution records failed (a condition that could not be evaluated, an action)."""
    return Exists(ActionExecution.objects.filter(delivery=OuterRef("pk"), status=Status.FAILED))


def with_outcome(messages: QuerySet, outcome: str) -> QuerySet:
    """Messages of an outcome as the lists show it: FAILED is an acknowledged message with a failed record,
    and ACKNOWLEDGED one with none."""
    if outcome == FAILED:
        return messages.filter(failed_record(), outcome=Outcome.ACKNOWLEDGED)
    if outcome == Outcome.ACKNOWLEDGED:
        return messages.filter(~failed_record(), outcome=Outcome.ACKNOWLEDGED)
    return messages.filter(outcome=outcome)


def executions_of_decision(executions: QuerySet, decision: str) -> QuerySet:
    """The records the overview counts per handler (duplicates of earlier records left out)."""
    originals = executions.filter(duplicate_of__isnull=True)
    # Each decision names the indices and statuses it counts: a record of a kind it does not name (issue 24's
    # SHADOW, what a shadow handler would have done) is none of them.
    if decision == "matched":  # one record per message whose condition held: its first action's
        return rollups.matches(originals)
    if decision == "skipped":
        return originals.filter(index=HANDLER_LEVEL, status=Status.SKIPPED)
    if decision == "failed":
        return originals.filter(status=Status.FAILED)
    return executions


# Numbers and their lists --------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


@lru_cache(maxsize=64)
def _changelist_path(model: str, prefix: str) -> str:  # (the script prefix: part of the cache key)
    return reverse(f"admin:{model}_changelist")


def changelist_url(model: str, **params: object) -> str:
    # (A page holds about a thousand links, its chart bars': reverse() once per list, not once per link.)
    query = urlencode({key: value for key, value in params.items() if value is not None})
    return _changelist_path(model, get_script_prefix()) + (f"?{query}" if query else "")


def messages_url(since: datetime, until: datetime, **params: object) -> str:
    return changelist_url("queues_receivedmessage", **params, received_at__gte=iso(since),
                          received_at__lt=iso(until))


def quarantine_url(since: datetime, until: datetime, **params: object) -> str:
    """Entries quarantined in a time range, whatever became of them since."""
    return changelist_url("queues_quarantinedmessage", **params, status="all", quarantined_at__gte=iso(since),
                          quarantined_at__lt=iso(until))


def quarantined_between(since: datetime, until: datetime) -> QuerySet:
    return QuarantinedMessage.objects.filter(quarantined_at__gte=since, quarantined_at__lt=until).order_by()


def executions_url(since: datetime, until: datetime, **params: object) -> str:
    return changelist_url("handlers_actionexecution", **params, created_at__gte=iso(since),
                          created_at__lt=iso(until))


@dataclass(frozen=True)
class Number:
    """A count on the page and the list behind it; renders itself as a link."""

    value: int | None
    url: str = ""
    bad: bool = False  # a non-zero count that needs someone's attention

    def __html__(self) -> str:
        if self.value is None:
            return format_html('<span class="none" title="{}">—</span>', "the broker does not tell")
        classes = "n" + (" zero" if not self.value else "") + (" bad" if self.bad and self.value else "")
        if not self.url:
            return format_html('<span class="{}">{}</span>', classes, f"{self.value:,}")
        return format_html('<a class="{}" href="{}">{}</a>', classes, self.url, f"{self.value:,}")

    def __str__(self) -> str:
        return self.__html__()


# Charts -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    name: str
    label: str
    length: timedelta
    bucket: timedelta  # one bar

    def bucket_of(self, field_name: str) -> EpochBucket:
        """The number of a row's bucket (whole buckets since 1970, UTC), computed by the database."""
        return EpochBucket(field_name, int(self.bucket.total_seconds()))

    @property
    def bars(self) -> int:
        return self.length // self.bucket

    def first_bucket(self, now: datetime) -> datetime:
        """The start of the first bar: bars are aligned to whole buckets (UTC), the last one holds `now`."""
        current = EPOCH + ((now - EPOCH) // self.bucket) * self.bucket
        return current - (self.bars - 1) * self.bucket

    def per(self) -> str:
        return {timedelta(minutes=1): "minute", timedelta(hours=1): "hour"}.get(self.bucket, "4 hours")


SPANS = {span.name: span for span in (
    Span("hour", "Last hour", HOUR, timedelta(minutes=1)),
    Span("day", "Last day", timedelta(days=1), timedelta(hours=1)),
    Span("week", "Last week", timedelta(days=7), timedelta(hours=4)),
)}


@dataclass
class Segment:
    kind: str  # the CSS class: ok, failed, quarantined, matched
    value: int
    url: str | int  # (0 for an empty segment, which is not drawn)
    stacked: bool = True  # on the segment before it; else from the baseline, over the segments before it
    y: float = 0.0
    height: float = 0.0


@dataclass
class Bar:
    start: datetime
    end: datetime
    title: str
    x: float
    width: float
    segments: list[Segment]


@dataclass
class Chart:
    span: Span
    since: datetime
    until: datetime
    bars: list[Bar]
    peak: int
    totals: dict[str, Number]


def _chart(span: Span, first: datetime, now: datetime, series: dict[int, dict[str, int]], segments_of) -> Chart:
    """Bars from counts per bucket index; `segments_of(start, end, counts)` gives a bar's segments (drawn
    in order, each from the baseline or stacked, see `_place`) and its title."""
    slot = CHART_WIDTH / span.bars
    bars, peak = [], 0
    for index in range(span.bars):
        start = first + index * span.bucket
        end = min(start + span.bucket, now)
        segments, title, height = segments_of(start, end, series.get(index, {}))
        peak = max(peak, height)
        bars.append(Bar(start, end, title, index * slot + slot * 0.1, slot * 0.8, segments))
    for bar in bars:
        _place(bar.segments, peak)
    return Chart(span, first, now, bars, peak, {})


def _place(segments: list[Segment], peak: int) -> None:
    """A queue's segments are stacked (failed, quarantined, the rest: together its messages in); a handler's
    failures are drawn over its matches, both from the baseline."""
    base = 0.0
    for segment in segments:
        height = max(CHART_HEIGHT * segment.value / peak, MIN_HEIGHT) if segment.value else 0.0
        bottom = base if segment.stacked else 0.0
        segment.y, segment.height = CHART_HEIGHT - bottom - height, height
        if segment.stacked:
            base += height


def _bucket_index(span: Span, first: datetime, number: int) -> int:
    """A bar's place from the database's bucket number (EpochBucket)."""
    return number - (first - EPOCH) // span.bucket


# The page's data ----------------------------------------------------------------------------------


@dataclass
class QueueRow:
    config: QueueConfig
    status: str  # ok, error, idle, disabled
    status_text: str
    listeners: Number
    recent: Number
    hour: Number
    acknowledged: Number
    failed: Number
    quarantined: Number
    open_quarantine: Number
    depth: Number
    dead: Number
    oldest_age: timedelta | None
    chart: Chart | None = None


@dataclass
class HandlerRow:
    name: str
    handler: EventHandler | None  # None: deleted, its records remain
    event: str
    matched: Number
    skipped: Number
    failed: Number
    last_match: datetime | None
    last_match_url: str
    p50: timedelta | None
    p99: timedelta | None
    timed_url: str
    chart: Chart | None = None


@dataclass
class Overview:
    now: datetime
    span: Span
    queues: list[QueueRow] = field(default_factory=list)
    handlers: list[HandlerRow] = field(default_factory=list)

    @property
    def attention(self) -> list[QueueRow]:
        return [row for row in self.queues if row.status in ("error", "idle")]

    @property
    def open_quarantine(self) -> int:
        return sum(row.open_quarantine.value or 0 for row in self.queues)

    @property
    def failed(self) -> int:
        return sum(row.failed.value or 0 for row in self.queues)


def build(span: Span | None = None, now: datetime | None = None) -> Overview:
    now = (now or timezone.now()).replace(microsecond=0)
    overview = Overview(now, span or SPANS["hour"])
    overview.queues = _queue_rows(now)
    overview.handlers = _handler_rows(now)
    first = overview.span.first_bucket(now)
    rolled, live = _split(overview.span, first, now)
    rolled_up = _rolled_up(rolled, [queue.config.event for queue in overview.queues],
                           [handler.name for handler in overview.handlers])
    _queue_charts(overview, live, rolled_up)
    _handler_charts(overview, live, rolled_up)
    return overview


Ranges = list[tuple[datetime, datetime]]


def _split(span: Span, first: datetime, now: datetime) -> tuple[tuple[datetime, datetime], Ranges]:
    """The hours of the chart read from rollups (rolled up first if need be), and the ranges before and after
    them, counted from the records: the hour still going, those not settled yet (`handlers.rollups`), and
    those the purge may be deleting. The hour chart's minutes are all counted from the records."""
    if span.bucket < HOUR:
        return (first, first), [(first, now)]
    start, end = rollups.rolled_up_range(first, now)
    if start >= end:
        return (start, start), [(first, now)]
    rollups.ensure(start, end, now)
    return (start, end), [(a, b) for a, b in ((first, start), (end, now)) if a < b]


def _rolled_up(rolled: tuple[datetime, datetime], events: list[str], names: list[str]) -> dict:
    """{(series, key): [(hour, count)]} of the rolled-up hours, in one query."""
    start, end = rolled
    found: dict[tuple[str, str], list[tuple[datetime, int]]] = {}
    if start < end:
        for series, key, hour, count in rollups.read(start, end, {RollupSeries.RECEIVED: events,
                                                                  RollupSeries.MATCHED: names}):
            found.setdefault((series, key), []).append((hour, count))
    return found


def _within(field_name: str, ranges: Ranges) -> Q:
    """Rows whose time is in one of the ranges (no rows when there are none)."""
    each = [Q(**{f"{field_name}__gte": since, f"{field_name}__lt": until}) for since, until in ranges]
    return reduce(operator.or_, each) if each else Q(pk__in=[])


def _add_rolled_up(add, span: Span, first: datetime, rolled_up: dict, series: str, key: str) -> None:
    """A series' rolled-up hours into the buckets they fall in (a day's bar is an hour, a week's four)."""
    for name, rows in rolled_up.items():
        if name[0] == series:
            add([(name[1], (hour - EPOCH) // span.bucket, count) for hour, count in rows], key)


# Queues -------------------------------------------------------------------------------------------


def _queue_rows(now: datetime) -> list[QueueRow]:
    since = now - HOUR
    window = ReceivedMessage.objects.filter(received_at__gte=since, received_at__lt=now).order_by()
    counts = {row["event"]: row for row in window.values("event").annotate(
        hour=Count("pk"), recent=Count("pk", filter=Q(received_at__gte=now - RECENT)),
        acknowledged=Count("pk", filter=Q(outcome=Outcome.ACKNOWLEDGED)),
    )}
    failed = dict(with_outcome(window, FAILED).values_list("event").annotate(n=Count("pk")))
    quarantined = dict(quarantined_between(since, now).values_list("event").annotate(n=Count("pk")))
    alive = dict(ListenerHeartbeat.alive(now).order_by().values_list("config").annotate(n=Count("pk")))
    waiting = QuarantinedMessage.objects.filter(status=QuarantinedMessage.Status.QUARANTINED).order_by()
    open_quarantine = dict(waiting.values_list("event").annotate(n=Count("pk")))
    rows = []
    for config in QueueConfig.objects.order_by("event"):
        event, got = config.event, counts.get(config.event, {})
        listening = alive.get(config.pk, 0)
        status, status_text = queue_status(config, listening, now)
        recent_since = now - RECENT
        rows.append(QueueRow(
            config=config, status=status, status_text=status_text,
            listeners=Number(listening, changelist_url("queues_listenerheartbeat", event=event, alive="yes")),
            recent=Number(got.get("recent", 0), messages_url(recent_since, now, event=event)),
            hour=Number(got.get("hour", 0), messages_url(since, now, event=event)),
            acknowledged=Number(got.get("acknowledged", 0) - failed.get(event, 0),
                                messages_url(since, now, event=event, outcome=Outcome.ACKNOWLEDGED)),
            failed=Number(failed.get(event, 0), messages_url(since, now, event=event, outcome=FAILED), bad=True),
            quarantined=Number(quarantined.get(event, 0), quarantine_url(since, now, event=event), bad=True),
            open_quarantine=Number(open_quarantine.get(event, 0),
                                   changelist_url("queues_quarantinedmessage", event=event), bad=True),
            depth=Number(config.depth, changelist_url("queues_internalmessage", queue=config.name)
                         if config.kind == "conductor" else ""),
            dead=Number(config.dead_letter_depth, bad=True),
            oldest_age=now - config.oldest_message_at if config.oldest_message_at else None,
        ))
    return rows


def queue_status(config: QueueConfig, listeners: int, now: datetime) -> tuple[str, str]:
    """At a glance: is the queue consumed, and without an error?"""
    if not config.enabled:
        return "disabled", "Disabled: nothing consumes it."
    if config.last_error:
        return "error", f"Its last poll failed: {config.last_error[:200]}"
    # Without a listener, the django-q2 drain polls it every poll interval: stale after two of them.
    stale_after = max(timedelta(minutes=2 * config.poll_interval_minutes), timedelta(minutes=2))
    if not listeners and (config.last_poll_at is None or now - config.last_poll_at > stale_after):
        never = "never polled" if config.last_poll_at is None else "not polled for over " + _minutes(stale_after)
        return "idle", f"No listener alive, and {never}."
    if listeners:
        return "ok", f"{listeners} listener{'s' if listeners != 1 else ''} alive, last poll without error."
    return "ok", "Polled by the scheduled drain, last poll without error."


def _minutes(delta: timedelta) -> str:
    return f"{int(delta.total_seconds() // 60)} minutes"


def _queue_charts(overview: Overview, live: Ranges, rolled_up: dict) -> None:
    """Three grouped counts, each from an index: messages in from `(event, received_at)` (of the hours not
    rolled up: `_split`), failed ones from the execution status (failures are few), quarantined ones from the
    quarantine's `quarantined_at` (failures and quarantine entries can change after their hour: never rolled up)."""
    span, now = overview.span, overview.now
    first = span.first_bucket(now)
    events = [queue.config.event for queue in overview.queues]
    series: dict[str, dict[int, dict[str, int]]] = {}

    def add(rows, key: str) -> None:
        for event, bucket, count in rows:
            counts = series.setdefault(event, {}).setdefault(_bucket_index(span, first, bucket), {})
            counts[key] = counts.get(key, 0) + count

    # COUNT(*), not of the id: the count of messages in is then read from the (event, received_at) index alone.
    _add_rolled_up(add, span, first, rolled_up, RollupSeries.RECEIVED, "total")
    received = ReceivedMessage.objects.filter(_within("received_at", live), event__in=events)
    add(received.order_by().annotate(bucket=span.bucket_of("received_at"))
        .values_list("event", "bucket").annotate(n=Count("*")), "total")
    # (A record is made after its delivery: those of deliveries since `first` were all made since `first`, and
    # that bound lets the failures come from the failed records' own index, not from all the stored ones.)
    failed = ActionExecution.objects.filter(status=Status.FAILED, created_at__gte=first,
                                            delivery__outcome=Outcome.ACKNOWLEDGED,
                                            delivery__received_at__gte=first, delivery__received_at__lt=now)
    add(failed.order_by().annotate(bucket=span.bucket_of("delivery__received_at"))
        .values_list("delivery__event", "bucket").annotate(n=Count("delivery_id", distinct=True)), "failed")
    add(quarantined_between(first, now).annotate(bucket=span.bucket_of("quarantined_at"))
        .values_list("event", "bucket").annotate(n=Count("*")), "quarantined")
    for queue in overview.queues:
        queue.chart = _queue_chart(span, first, now, queue.config.event, series.get(queue.config.event, {}))


def _queue_chart(span: Span, first: datetime, now: datetime, event: str, series: dict) -> Chart:
    def segments_of(start: datetime, end: datetime, counts: dict[str, int]):
        total, failed, quarantined = counts.get("total", 0), counts.get("failed", 0), counts.get("quarantined", 0)
        title = (f"{_moment(start)}–{_moment(end)}: {total:,} in, {failed:,} failed, {quarantined:,} quarantined")
        segments = [
            Segment("failed", failed, failed and messages_url(start, end, event=event, outcome=FAILED)),
            Segment("quarantined", quarantined, quarantined and quarantine_url(start, end, event=event)),
            # (An entry quarantined in this bucket may be a message received in an earlier one.)
            Segment("ok", max(total - failed - quarantined, 0), total and messages_url(start, end, event=event)),
        ]
        return segments, title, max(total, failed + quarantined)

    chart = _chart(span, first, now, series, segments_of)
    sums = {key: sum(counts.get(key, 0) for counts in series.values()) for key in ("total", "failed", "quarantined")}
    chart.totals = {
        "in": Number(sums["total"], messages_url(first, now, event=event)),
        "failed": Number(sums["failed"], messages_url(first, now, event=event, outcome=FAILED), bad=True),
        "quarantined": Number(sums["quarantined"], quarantine_url(first, now, event=event), bad=True),
    }
    return chart


def _moment(moment: datetime) -> str:
    local = timezone.localtime(moment)  # (a thousand bar titles: strftime, not the date filter)
    return f"{local.day} {local:%b %H:%M}"


# Handlers -----------------------------------------------------------------------------------------


def _handler_rows(now: datetime) -> list[HandlerRow]:
    since = now - HOUR
    records = ActionExecution.objects.filter(created_at__gte=since, created_at__lt=now,
                                             duplicate_of__isnull=True).order_by()
    counts = {row["handler_name"]: row for row in records.values("handler_name").annotate(
        matched=Count("pk", filter=Q(index=0, status__in=rollups.MATCH_STATUSES)),  # (rollups.matches)
        skipped=Count("pk", filter=Q(index=HANDLER_LEVEL, status=Status.SKIPPED)),
        failed=Count("pk", filter=Q(status=Status.FAILED)),
    )}
    # The delivery's time looked up per record (by its primary key), not joined: PostgreSQL would hash-join
    # the hour's records against a scan of every stored message.
    received_at = Subquery(ReceivedMessage.objects.filter(pk=OuterRef("delivery_id")).values("received_at"))
    receipt_to_record = ExpressionWrapper(F("finished_at") - received_at, output_field=DurationField())
    timed = {row["handler_name"]: row for row in records.filter(finished_at__isnull=False, delivery__isnull=False)
             .values("handler_name").annotate(p50=PercentileDisc(receipt_to_record, 0.5),
                                              p99=PercentileDisc(receipt_to_record, 0.99))}
    # A match's first action (index 0), the last entry of the handler's range of the (handler_name, index,
    # created_at) index. Written as a range and ordered by index too: with `index = 0` PostgreSQL may walk the
    # created_at index back instead, through every record of a handler that has never matched.
    last = (ActionExecution.objects.filter(handler_name=OuterRef("name"), index__range=(0, 0),
                                           status__in=rollups.MATCH_STATUSES, duplicate_of__isnull=True)
            .order_by("-index", "-created_at").values("created_at")[:1])
    # (Not asked for a handler in shadow mode, whose records are all SHADOW: the walk back would read them all.)
    last_match = Case(When(mode=EventHandler.Mode.LIVE, then=Subquery(last)), default=None)
    handlers = {h.name: h for h in EventHandler.objects.annotate(last_match=last_match).order_by("name")}
    gone = sorted(set(counts) - set(handlers))  # deleted since: their records of the hour still count
    rows = []
    for name in [*handlers, *gone]:
        handler, got, times = handlers.get(name), counts.get(name, {}), timed.get(name, {})

        def number(decision: str, name: str = name, got: dict = got) -> Number:
            return Number(got.get(decision, 0), executions_url(since, now, handler_name=name, decision=decision),
                          bad=decision == "failed")

        rows.append(HandlerRow(
            name=name, handler=handler, event=handler.event if handler else "",
            matched=number("matched"), skipped=number("skipped"), failed=number("failed"),
            last_match=handler.last_match if handler else None,
            last_match_url=changelist_url("handlers_actionexecution", handler_name=name, decision="matched"),
            p50=times.get("p50"), p99=times.get("p99"),
            timed_url=executions_url(since, now, handler_name=name),
        ))
    return rows


def _handler_charts(overview: Overview, live: Ranges, rolled_up: dict) -> None:
    """Matches from the `(handler_name, index, created_at)` index (of the hours not rolled up: `_split`),
    failures from the execution status over the whole chart (a record's status can change after its hour:
    never rolled up): two grouped counts that read no table rows for the records of false conditions."""
    span, now = overview.span, overview.now
    first = span.first_bucket(now)
    records = ActionExecution.objects.filter(duplicate_of__isnull=True).order_by()
    bucket = span.bucket_of("created_at")
    names = [handler.name for handler in overview.handlers]
    series: dict[str, dict[int, dict[str, int]]] = {}

    def add(rows, key: str) -> None:
        for name, number, count in rows:
            counts = series.setdefault(name, {}).setdefault(_bucket_index(span, first, number), {})
            counts[key] = counts.get(key, 0) + count

    _add_rolled_up(add, span, first, rolled_up, RollupSeries.MATCHED, "matched")
    for key, rows in (("matched", rollups.matches(records.filter(_within("created_at", live),
                                                                  handler_name__in=names))),
                      ("failed", records.filter(status=Status.FAILED, created_at__gte=first, created_at__lt=now))):
        add(rows.annotate(bucket=bucket).values_list("handler_name", "bucket").annotate(n=Count("*")), key)
    for handler in overview.handlers:
        handler.chart = _handler_chart(span, first, now, handler.name, series.get(handler.name, {}))


def _handler_chart(span: Span, first: datetime, now: datetime, name: str, series: dict) -> Chart:
    def segments_of(start: datetime, end: datetime, counts: dict[str, int]):
        matched, failed = counts.get("matched", 0), counts.get("failed", 0)
        title = f"{_moment(start)}–{_moment(end)}: {matched:,} matched, {failed:,} failed"
        segments = [
            Segment("matched", matched,
                    matched and executions_url(start, end, handler_name=name, decision="matched"), stacked=False),
            Segment("failed", failed,
                    failed and executions_url(start, end, handler_name=name, decision="failed"), stacked=False),
        ]
        return segments, title, max(matched, failed)

    chart = _chart(span, first, now, series, segments_of)
    sums = {key: sum(counts.get(key, 0) for counts in series.values()) for key in ("matched", "failed")}
    chart.totals = {
        "matched": Number(sums["matched"], executions_url(first, now, handler_name=name, decision="matched")),
        "failed": Number(sums["failed"], executions_url(first, now, handler_name=name, decision="failed"), bad=True),
    }
    return chart
