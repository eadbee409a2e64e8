"""Evaluating the alert rules: what fires now, opening what is new, resolving what cleared.

`evaluate_alerts` is one step (a django-q2 schedule runs it every ALERTS_EVALUATE_MINUTES; tests call it
with `now`). Each check reads the records the rest of Eventhub already keeps: a handler's executions, a
queue's received, quarantined and internal messages, its depth, listener heartbeats and django-q2's
schedules. A handler or queue is checked against its own rule of a kind, else the default rule.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Count, IntegerField, OuterRef, Subquery, Value, When
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from queues.models import InternalMessage, ListenerHeartbeat, QuarantinedMessage, QueueConfig, ReceivedMessage

from .models import ActionExecution, Alert, AlertEvent, AlertRule, EventHandler, ExecutionStatus, RuleKind
from .notify import queue_notifications, send_due_notifications
from .schedules import schedule_name

logger = logging.getLogger(__name__)

SHOWN_ALERTS = 20  # on the overview; beyond, it links to the list of them all
EVALUATE_TASK = "handlers.alerts.evaluate_alerts"
EVALUATE_SCHEDULE = "evaluate alerts"


@dataclass(frozen=True)
class Firing:
    rule: AlertRule
    subject: str
    detail: str
    handler: EventHandler | None = None
    queue: QueueConfig | None = None


# -- The checks: each returns what it found in words, or None when all is well --------------------------


def handler_silent(rule: AlertRule, handler: EventHandler, now: datetime) -> str | None:
    since = now - rule.window
    received = ReceivedMessage.objects.filter(event=handler.event, received_at__gte=since).count()
    if not received:
        return None  # quiet because nothing came: not the handler's doing
    matched = ActionExecution.objects.filter(handler_name=handler.name, index__gte=0, duplicate_of__isnull=True,
                                             created_at__gte=since).exclude(status=ExecutionStatus.SHADOW).exists()
    if matched:
        return None
    return f"no match in {rule.window_minutes} min while {handler.event} received {received} message(s)"


def failure_rate(rule: AlertRule, handler: EventHandler, now: datetime) -> str | None:
    finished = ActionExecution.objects.filter(
        handler_name=handler.name, duplicate_of__isnull=True, created_at__gte=now - rule.window,
        status__in=[ExecutionStatus.COMPLETED, ExecutionStatus.FAILED],
    )
    total = finished.count()
    failed = finished.filter(status=ExecutionStatus.FAILED).count()
    if not total or failed / total <= rule.threshold:
        return None
    return f"{failed} of {total} executions failed in {rule.window_minutes} min ({failed / total:.0%} > " \
           f"{rule.threshold:.0%})"


def backlog(rule: AlertRule, queue: QueueConfig, now: datetime) -> str | None:
    if queue.depth is not None and queue.depth > rule.threshold:
        return f"{queue.depth} messages ready (limit {rule.threshold:g})"
    oldest = _oldest_waiting(queue)
    if oldest is not None and now - oldest > rule.window:
        minutes = int((now - oldest).total_seconds() // 60)
        return f"oldest message waiting {minutes} min (limit {rule.window_minutes} min)"
    return None


def _oldest_waiting(queue: QueueConfig) -> datetime | None:
    """The oldest message received but not settled, or (Eventhub's own queue) still in its table."""
    unsettled = ReceivedMessage.objects.filter(event=queue.event, outcome=ReceivedMessage.Outcome.RECEIVED)
    times = [unsettled.order_by("received_at").values_list("received_at", flat=True).first()]
    if queue.kind == "conductor":
        waiting = InternalMessage.objects.filter(queue=queue.name, dead_lettered_at__isnull=True)
        times.append(waiting.order_by("created_at").values_list("created_at", flat=True).first())
    return min((t for t in times if t is not None), default=None)


def quarantine_growing(rule: AlertRule, queue: QueueConfig, now: datetime) -> str | None:
    new = QuarantinedMessage.objects.filter(event=queue.event, status=QuarantinedMessage.Status.QUARANTINED,
                                            quarantined_at__gte=now - rule.window).count()
    if new <= rule.threshold:
        return None
    return f"{new} message(s) quarantined in {rule.window_minutes} min (limit {rule.threshold:g})"


def no_consumer(rule: AlertRule, queue: QueueConfig, now: datetime) -> str | None:
    from django_q.models import Schedule  # noqa: PLC0415 - django_q's models need the app registry

    if ListenerHeartbeat.alive(now).filter(event=queue.event).exists():
        return None
    if settings.QUEUES_SCHEDULES and Schedule.objects.filter(name=schedule_name(queue)).exists():
        return None
    return "no live listener and no django-q2 schedule drains it"


HANDLER_CHECKS = {RuleKind.HANDLER_SILENT: handler_silent, RuleKind.FAILURE_RATE: failure_rate}
QUEUE_CHECKS = {RuleKind.BACKLOG: backlog, RuleKind.QUARANTINE_GROWING: quarantine_growing,
                RuleKind.NO_CONSUMER: no_consumer}


# -- Evaluation ----------------------------------------------------------------------------------------


def rule_for(rules: dict, kind: str, handler_id: int | None = None, queue_id: int | None = None) -> AlertRule | None:
    """The target's own rule of `kind`, else the default one; None when switched off or missing."""
    rule = rules.get((kind, handler_id, queue_id)) or rules.get((kind, None, None)) or AlertRule.default(kind)
    return rule if rule.enabled else None


def firing_now(now: datetime) -> dict[tuple[str, str], Firing]:
    rules = {(r.kind, r.handler_id, r.queue_id): r for r in AlertRule.objects.all()}
    found: dict[tuple[str, str], Firing] = {}
    # (a handler in shadow mode does no work, so it is neither silent nor failing: it is left out)
    for handler in EventHandler.objects.filter(active=True, mode=EventHandler.Mode.LIVE):
        for kind, check in HANDLER_CHECKS.items():
            if (rule := rule_for(rules, kind, handler_id=handler.pk)) and (detail := check(rule, handler, now)):
                found[(kind, handler.name)] = Firing(rule, handler.name, detail, handler=handler)
    for queue in QueueConfig.objects.filter(enabled=True):
        for kind, check in QUEUE_CHECKS.items():
            if (rule := rule_for(rules, kind, queue_id=queue.pk)) and (detail := check(rule, queue, now)):
                found[(kind, queue.event)] = Firing(rule, queue.event, detail, queue=queue)
    return found


def evaluate_alerts(now: datetime | None = None) -> dict[str, int]:
    """One evaluation: open, resolve and un-silence alerts, then send the notifications that are due."""
    now = now or timezone.now()
    firing = firing_now(now)
    unresolved = {(a.kind, a.subject): a for a in Alert.objects.exclude(state=Alert.State.RESOLVED)}
    counts = {"opened": 0, "resolved": 0}
    for key, found in firing.items():
        if key not in unresolved:
            counts["opened"] += open_alert(found, now)
    for key, alert in unresolved.items():
        if key not in firing:
            resolve_alert(alert, now)
            counts["resolved"] += 1
            continue
        note_still_holding(alert, firing[key], now)
        if alert.state == Alert.State.SILENCED and alert.silenced_until and alert.silenced_until <= now:
            alert.change(Alert.State.OPEN, reason="silence ended", at=now)
    counts["notified"] = send_due_notifications(now)
    return counts


def open_alert(found: Firing, now: datetime) -> int:
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                rule=found.rule if found.rule.pk else None, kind=found.rule.kind, subject=found.subject,
                handler=found.handler, queue=found.queue, detail=found.detail, opened_at=now,
                current=found.detail, checked_at=now,
            )
            event = alert.events.create(from_state="", to_state=Alert.State.OPEN, at=now, by_name="eventhub")
            queue_notifications(alert, event, now)
    except IntegrityError:
        return 0  # another evaluation opened it first: it opens once
    logger.warning("alert opened: %s", alert.text)
    return 1


def note_still_holding(alert: Alert, found: Firing, now: datetime) -> None:
    """Keep what the check finds now, and the rule that holds it now (one of the target's own may have replaced
    the default), for the overview; `detail` stays what the alert opened with. A plain UPDATE of these columns
    alone, so it cannot undo a state change made meanwhile."""
    Alert.objects.filter(pk=alert.pk).update(current=found.detail, checked_at=now,
                                             rule=found.rule if found.rule.pk else None)


def resolve_alert(alert: Alert, now: datetime) -> None:
    with transaction.atomic():
        event = alert.change(Alert.State.RESOLVED, reason="condition cleared", at=now)
        queue_notifications(alert, event, now)
    logger.info("alert resolved: %s", alert)


def sync_evaluate_schedule(using: str = "default", **kwargs) -> None:
    """Create, update or remove the evaluation's django-q2 schedule, found by its name (after every migrate)."""
    from django_q.models import Schedule  # noqa: PLC0415 - django_q's models need the app registry

    schedules = Schedule.objects.using(using)
    if not settings.ALERTS_SCHEDULE:
        schedules.filter(name=EVALUATE_SCHEDULE).delete()
        return
    schedules.update_or_create(name=EVALUATE_SCHEDULE, defaults={
        "func": EVALUATE_TASK, "schedule_type": Schedule.MINUTES,
        "minutes": settings.ALERTS_EVALUATE_MINUTES, "repeats": -1,
    })


class OpenAlertsGauge:
    """`eventhub_alerts_open`: unresolved alerts by kind and state, every kind present (0 when none).

    The listener's metrics server asks from a thread of its own per scrape: there, `close_connection`
    closes the connection that thread opened, which nothing else would."""

    def __init__(self, close_connection: bool = False) -> None:
        self.close_connection = close_connection

    def collect(self):
        try:
            yield open_alerts_gauge()
        finally:
            if self.close_connection:
                connection.close()


def open_alerts_gauge() -> GaugeMetricFamily:
    family = GaugeMetricFamily("eventhub_alerts_open", "Alerts not resolved, by rule kind and state.",
                               labels=["kind", "state"])
    counts = dict.fromkeys(((kind, Alert.State.OPEN.value) for kind in RuleKind.values), 0)
    rows = Alert.objects.exclude(state=Alert.State.RESOLVED).values_list("kind", "state").annotate(n=Count("id"))
    counts.update({(kind, state): n for kind, state, n in rows.order_by()})
    for (kind, state), n in sorted(counts.items()):
        family.add_metric([kind, state], float(n))
    return family


# -- What the overview shows ---------------------------------------------------------------------------


def unresolved_alerts(limit: int = SHOWN_ALERTS) -> tuple[list[Alert], int]:
    """The alerts not resolved, open ones first (then acknowledged, then silenced; newest first within each),
    each with who made its current state and when (`changed_by`, `changed_at`), and how many there are in all.
    One query, two when there are more than `limit`."""
    latest = AlertEvent.objects.filter(alert=OuterRef("pk"), to_state=OuterRef("state")).order_by("-at", "-id")
    rank = Case(When(state=Alert.State.OPEN, then=Value(0)), When(state=Alert.State.ACKNOWLEDGED, then=Value(1)),
                default=Value(2), output_field=IntegerField())
    shown = list(
        Alert.objects.exclude(state=Alert.State.RESOLVED).select_related("handler", "queue", "rule")
        .annotate(changed_by=Subquery(latest.values("by_name")[:1]), changed_at=Subquery(latest.values("at")[:1]),
                  rank=rank)
        .order_by("rank", "-opened_at", "-id")[:limit + 1]
    )
    if len(shown) <= limit:
        return shown, len(shown)
    return shown[:limit], Alert.objects.exclude(state=Alert.State.RESOLVED).count()
