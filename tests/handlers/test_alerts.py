"""Each alert rule, driven by real traffic through dispatch and the database queue, with the clock moved
forward by passing `now`: it opens, tells the webhook receiver and the mail outbox, and resolves."""

import json
import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_q.models import Schedule

from handlers.alerts import EVALUATE_SCHEDULE, evaluate_alerts, firing_now, open_alert, sync_evaluate_schedule
from handlers.changes import save_handler
from handlers.dispatch import dispatch_batch
from handlers.models import Alert, AlertEvent, AlertRule, EventHandler, NotificationAttempt, RuleKind
from handlers.schedules import schedule_name
from handlers.tasks import drain_queue
from queues.configs import ensure_config
from queues.models import ListenerHeartbeat, QueueConfig
from queues.providers.base import Message
from queues.publish import publish

from ..workflows.conftest import register, shipping_definition
from .seeds import START_SHIPPING
from .webhook_receiver import serve

pytestmark = pytest.mark.django_db

EVENT = "conductor:shipping_start"
CUSTOMER = {"customer": {"name": "Ada", "address": {"street": "1 Main St", "city": "Paris", "zip": "75001"}}}


@pytest.fixture
def receiver(settings):
    yield from serve(settings)


def handler(**changes) -> EventHandler:
    item = EventHandler()
    item.apply_conductor({**START_SHIPPING, "event": EVENT, **changes})
    item.full_clean()
    save_handler(item, user=None, source="test")
    return item


def deliver(*payloads: dict) -> None:
    messages = [Message(message_id=uuid.uuid4().hex, body=json.dumps(p), delivery_count=1, payload=p)
                for p in payloads]
    dispatch_batch(ensure_config(EVENT), messages)


def alert_of(kind: str) -> Alert:
    return Alert.objects.get(kind=kind)


def assert_told(receiver, verb: str, subject: str) -> None:
    assert any(text.startswith(f"Eventhub alert {verb}") and subject in text for text in receiver.texts)
    assert any(m.subject.startswith(f"Eventhub alert {verb}") and subject in m.subject for m in mail.outbox)


def test_default_rules_watch_every_handler_and_queue():
    assert set(AlertRule.objects.filter(handler=None, queue=None).values_list("kind", flat=True)) == set(RuleKind)


def test_it_opens_tells_and_resolves_a_silent_handler(receiver):
    handler(condition="$.customer.name == 'Grace'")
    deliver(CUSTOMER, CUSTOMER)
    assert evaluate_alerts()["opened"] == 1
    alert = alert_of(RuleKind.HANDLER_SILENT)
    assert (alert.subject, alert.state) == ("start_shipping_workflow", "open")
    assert "received 2 message(s)" in alert.detail
    assert_told(receiver, "opened", "start_shipping_workflow")

    register(shipping_definition())
    deliver({**CUSTOMER, "customer": {**CUSTOMER["customer"], "name": "Grace"}})  # it matches again
    assert evaluate_alerts()["resolved"] == 1
    alert.refresh_from_db()
    assert alert.state == "resolved" and alert.resolved_at
    assert_told(receiver, "resolved", "start_shipping_workflow")
    assert list(alert.events.values_list("from_state", "to_state", "by_name")) == [
        ("", "open", "eventhub"), ("open", "resolved", "eventhub")]


def test_a_handler_quiet_because_nothing_came_is_not_silent(receiver):
    handler(condition="false")
    assert evaluate_alerts()["opened"] == 0


def test_it_opens_and_resolves_a_failing_handler_when_the_window_moves_on(receiver):
    handler()  # its workflow is not registered: every start fails
    deliver(CUSTOMER, CUSTOMER, CUSTOMER)
    now = timezone.now()
    evaluate_alerts(now)
    alert = alert_of(RuleKind.FAILURE_RATE)
    assert alert.detail.startswith("3 of 3 executions failed in 15 min")
    assert_told(receiver, "opened", "start_shipping_workflow")

    evaluate_alerts(now + timedelta(minutes=16))
    alert.refresh_from_db()
    assert alert.state == "resolved"
    assert_told(receiver, "resolved", "start_shipping_workflow")


def test_a_failure_rate_under_the_threshold_opens_nothing(receiver):
    register(shipping_definition())
    handler()
    deliver(CUSTOMER)
    evaluate_alerts()
    assert not Alert.objects.filter(kind=RuleKind.FAILURE_RATE).exists()


def test_it_opens_on_the_oldest_message_age_and_resolves_once_drained(receiver):
    config = ensure_config(EVENT)
    publish(EVENT, CUSTOMER)
    now = timezone.now()
    evaluate_alerts(now)
    assert not Alert.objects.filter(kind=RuleKind.BACKLOG).exists()

    evaluate_alerts(now + timedelta(minutes=16))
    alert = alert_of(RuleKind.BACKLOG)
    assert (alert.subject, alert.queue) == (EVENT, config)
    assert alert.detail.startswith("oldest message waiting 16 min")
    assert_told(receiver, "opened", EVENT)

    assert drain_queue(config.pk, 30) == 1
    evaluate_alerts(now + timedelta(minutes=17))
    alert.refresh_from_db()
    assert alert.state == "resolved"
    assert_told(receiver, "resolved", EVENT)


def test_it_opens_on_the_depth_a_listener_reports(receiver):
    config = ensure_config(EVENT)
    QueueConfig.objects.filter(pk=config.pk).update(depth=1001)
    evaluate_alerts()
    assert alert_of(RuleKind.BACKLOG).detail == "1001 messages ready (limit 1000)"
    QueueConfig.objects.filter(pk=config.pk).update(depth=3)
    evaluate_alerts()
    assert alert_of(RuleKind.BACKLOG).state == "resolved"


def test_it_opens_when_quarantine_grows_and_resolves_when_the_window_moves_on(receiver):
    config = ensure_config(EVENT)
    QueueConfig.objects.filter(pk=config.pk).update(unmatched=QueueConfig.Unmatched.QUARANTINE)
    publish(EVENT, {"nobody": "listens"})
    assert drain_queue(config.pk, 30) == 1
    now = timezone.now()
    evaluate_alerts(now)
    alert = alert_of(RuleKind.QUARANTINE_GROWING)
    assert alert.detail == "1 message(s) quarantined in 15 min (limit 0)"
    assert_told(receiver, "opened", EVENT)

    evaluate_alerts(now + timedelta(minutes=16))
    alert.refresh_from_db()
    assert alert.state == "resolved"
    assert_told(receiver, "resolved", EVENT)


def test_it_opens_when_no_listener_and_no_schedule_drain_a_queue(receiver, settings):
    config = ensure_config(EVENT)
    evaluate_alerts()
    assert not Alert.objects.filter(kind=RuleKind.NO_CONSUMER).exists()  # its schedule drains it

    Schedule.objects.filter(name=schedule_name(config)).delete()
    now = timezone.now()
    evaluate_alerts(now)
    alert = alert_of(RuleKind.NO_CONSUMER)
    assert alert.detail == "no live listener and no django-q2 schedule drains it"
    assert_told(receiver, "opened", EVENT)

    heartbeat = ListenerHeartbeat.objects.create(consumer="h:1:1", config=config, event=EVENT, hostname="h", pid=1,
                                                 last_beat_at=now)
    evaluate_alerts(now + timedelta(seconds=30))
    alert.refresh_from_db()
    assert alert.state == "resolved"
    assert_told(receiver, "resolved", EVENT)

    evaluate_alerts(now + timedelta(seconds=61))  # the listener stopped beating
    assert Alert.objects.filter(kind=RuleKind.NO_CONSUMER, state="open").count() == 1
    heartbeat.delete()


def test_an_alert_opens_once_and_notifies_once(receiver):
    handler(condition="false")
    deliver(CUSTOMER)
    for _ in range(3):
        evaluate_alerts()
    assert Alert.objects.count() == 1
    assert len(receiver.received) == 1 and len(mail.outbox) == 1
    assert NotificationAttempt.objects.filter(status="sent").count() == 2


def test_a_rule_switched_off_for_one_handler_leaves_the_others_watched(receiver):
    quiet = handler(condition="false")
    handler(name="other", condition="false")
    AlertRule.objects.create(kind=RuleKind.HANDLER_SILENT, handler=quiet, enabled=False)
    deliver(CUSTOMER)
    evaluate_alerts()
    assert list(Alert.objects.values_list("subject", flat=True)) == ["other"]


def test_a_handler_rule_of_its_own_replaces_the_default(receiver):
    failing = handler()
    AlertRule.objects.create(kind=RuleKind.FAILURE_RATE, handler=failing, threshold=0.99, window_minutes=5)
    deliver(CUSTOMER)
    now = timezone.now()
    evaluate_alerts(now)
    assert "in 5 min" in alert_of(RuleKind.FAILURE_RATE).detail
    evaluate_alerts(now + timedelta(minutes=6))
    assert alert_of(RuleKind.FAILURE_RATE).state == "resolved"


def test_acknowledging_and_silencing_are_recorded_with_who_and_when(receiver, superuser):
    handler(condition="false")
    deliver(CUSTOMER)
    now = timezone.now()
    evaluate_alerts(now)
    alert = Alert.objects.get()
    alert.acknowledge(superuser, "looking at the producer", at=now)
    alert.silence(superuser, "producer deploy tonight", minutes=60, at=now)
    assert (alert.state, alert.silenced_until, alert.reason) == ("silenced", now + timedelta(hours=1),
                                                                 "producer deploy tonight")

    evaluate_alerts(now + timedelta(minutes=30))
    alert.refresh_from_db()
    assert alert.state == "silenced"
    evaluate_alerts(now + timedelta(minutes=61))  # the silence is over and it still holds
    alert.refresh_from_db()
    assert alert.state == "open"
    events = AlertEvent.objects.filter(alert=alert).values_list("to_state", "by_name", "reason")
    assert list(events) == [("open", "eventhub", ""), ("acknowledged", "root", "looking at the producer"),
                            ("silenced", "root", "producer deploy tonight"), ("open", "eventhub", "silence ended")]
    # Opened once; the silence ending tells nobody again.
    assert [body["alert"]["id"] for body in receiver.received].count(alert.pk) == 1


def test_it_keeps_the_evaluation_schedule_by_name(settings):
    sync_evaluate_schedule()
    sync_evaluate_schedule()
    schedule = Schedule.objects.get(name=EVALUATE_SCHEDULE)
    assert (schedule.func, schedule.minutes) == ("handlers.alerts.evaluate_alerts", 1)
    settings.ALERTS_SCHEDULE = False
    sync_evaluate_schedule()
    assert not Schedule.objects.filter(name=EVALUATE_SCHEDULE).exists()


def test_a_second_evaluation_racing_the_first_cannot_open_it_twice(receiver):
    handler(condition="false")
    deliver(CUSTOMER)
    now = timezone.now()
    [found] = [f for f in firing_now(now).values() if f.rule.kind == RuleKind.HANDLER_SILENT]
    assert open_alert(found, now) == 1
    assert open_alert(found, now) == 0  # what the other evaluation, reading before this one wrote, tries
    assert Alert.objects.filter(kind=RuleKind.HANDLER_SILENT).count() == 1
    assert NotificationAttempt.objects.count() == 2


def test_each_evaluation_keeps_what_it_finds_now_and_the_rule_that_holds_it(receiver):
    config = ensure_config(EVENT)
    QueueConfig.objects.filter(pk=config.pk).update(depth=1500)
    now = timezone.now()
    evaluate_alerts(now)
    alert = alert_of(RuleKind.BACKLOG)
    assert (alert.current, alert.checked_at, alert.rule.queue) == ("1500 messages ready (limit 1000)", now, None)

    own = AlertRule.objects.create(kind=RuleKind.BACKLOG, queue=config, threshold=100, window_minutes=15)
    QueueConfig.objects.filter(pk=config.pk).update(depth=2500)
    evaluate_alerts(now + timedelta(minutes=1))
    alert.refresh_from_db()
    assert (alert.detail, alert.current) == ("1500 messages ready (limit 1000)", "2500 messages ready (limit 100)")
    assert (alert.checked_at, alert.rule) == (now + timedelta(minutes=1), own)


def test_a_silence_lasts_at_least_a_minute_and_at_most_thirty_days(receiver, superuser):
    handler(condition="false")
    deliver(CUSTOMER)
    evaluate_alerts()
    alert = Alert.objects.get()
    for minutes in (0, 60 * 24 * 30 + 1):
        with pytest.raises(ValidationError, match="A silence lasts from 1 to 43200 minutes"):
            alert.silence(superuser, "too long", minutes)
    alert.refresh_from_db()
    assert alert.state == "open" and alert.events.count() == 1


def test_a_rule_switched_off_for_one_queue_leaves_the_others_watched(receiver):
    bursty, steady = ensure_config("conductor:bursty"), ensure_config("conductor:steady")
    QueueConfig.objects.filter(pk__in=[bursty.pk, steady.pk]).update(depth=5000)
    AlertRule.objects.create(kind=RuleKind.BACKLOG, queue=bursty, enabled=False)
    evaluate_alerts()
    assert list(Alert.objects.filter(kind=RuleKind.BACKLOG).values_list("subject", flat=True)) == ["conductor:steady"]
    assert_told(receiver, "opened", "conductor:steady")
    assert not any("conductor:bursty" in text for text in receiver.texts)


def test_with_the_default_rules_deleted_the_built_in_defaults_still_watch(receiver):
    AlertRule.objects.all().delete()
    config = ensure_config(EVENT)
    QueueConfig.objects.filter(pk=config.pk).update(depth=1001)
    evaluate_alerts()
    alert = alert_of(RuleKind.BACKLOG)
    assert (alert.detail, alert.rule) == ("1001 messages ready (limit 1000)", None)
