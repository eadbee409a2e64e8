"""The operations overview, read with Django's test client: its numbers against the records, the lists its
numbers open, its charts' bars, and its cost in queries. (tests/handlers/test_overview_browser.py opens it in
Chromium after real traffic.)"""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from handlers import overview
from handlers.models import ActionExecution, Alert, EventHandler
from queues.models import ListenerHeartbeat, QuarantinedMessage, QueueConfig, ReceivedMessage

from ..conftest import make_user
from .seeds import START_SHIPPING
from .test_dispatch import handler

pytestmark = pytest.mark.django_db
Outcome = ReceivedMessage.Outcome
INDEX = reverse("admin:index")
EVENT = "conductor:orders"


@pytest.fixture
def now():
    """Half past a minute that is over: what the page counts up to its own moment includes all of it."""
    return (timezone.now() - timedelta(minutes=1)).replace(second=30, microsecond=0)


def config(event: str = EVENT, **fields) -> QueueConfig:
    kind, name = event.split(":", 1)
    return QueueConfig.objects.create(kind=kind, name=name, **fields)


def received(event: str, at, outcome: str = Outcome.ACKNOWLEDGED, message_id: str | None = None) -> ReceivedMessage:
    received.n += 1
    return ReceivedMessage.objects.create(event=event, message_id=message_id or f"m-{received.n}", received_at=at,
                                          outcome=outcome, config=QueueConfig.objects.filter(event=event).first())


received.n = 0


def record(delivery: ReceivedMessage, name: str, index: int = 0, status: str = "COMPLETED", after_ms: float = 5,
           **fields) -> ActionExecution:
    finished = delivery.received_at + timedelta(milliseconds=after_ms)
    return ActionExecution.objects.create(
        execution_id=f"{delivery.message_id}_{max(index, 0)}", delivery=delivery, event=delivery.event,
        message_id=delivery.message_id, handler_name=name, index=index, status=status, created_at=delivery.received_at,
        started_at=delivery.received_at, finished_at=finished, **fields)


def numbers(html: str, key: str, value: str) -> dict[str, str]:
    """The cells of one row of an overview table, by column, as text."""
    row = re.search(rf'<tr data-{key}="{re.escape(value)}".*?</tr>', html, re.S).group(0)
    cells = re.findall(r'<td class="[^"]*" data-col="(\w+)">(.*?)</td>', row, re.S)
    return {column: re.sub(r"<[^>]+>", "", text).strip() for column, text in cells}


def result_count(client, url: str) -> int:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.context["cl"].result_count


def test_the_admin_opens_on_the_overview_for_staff_who_may_see_the_messages(admin_client, django_user_model, client):
    response = admin_client.get(INDEX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Is everything flowing?" in html and "All models" in html
    assert reverse("admin:queues_receivedmessage_changelist") in html  # the model list stays on the page
    # Staff who may not see the messages get Django's list of what they may use, and so does models/ for all.
    client.force_login(make_user(django_user_model, "editor", "view_eventhandler"))
    assert "Is everything flowing?" not in client.get(INDEX).content.decode()
    assert "Event handlers" in client.get(reverse("admin:models")).content.decode()


def test_it_counts_each_queues_messages_of_the_last_five_minutes_and_hour_by_outcome(admin_client, now):
    config(EVENT)
    config("conductor:quiet")
    received(EVENT, now - timedelta(minutes=2))
    done_before = received(EVENT, now - timedelta(minutes=30))
    record(done_before, "ship")
    failed = received(EVENT, now - timedelta(minutes=40))
    record(failed, "ship", status="FAILED")
    quarantined = received(EVENT, now - timedelta(minutes=50), Outcome.QUARANTINED)
    received(EVENT, now - timedelta(minutes=55), Outcome.RETURNED)
    received(EVENT, now - timedelta(minutes=61))  # before the hour: not counted
    QuarantinedMessage.objects.create(event=EVENT, message_id=quarantined.message_id, reason="unreadable",
                                      quarantined_at=quarantined.received_at)
    QuarantinedMessage.objects.create(event=EVENT, message_id="old-2", reason="unreadable", status="RETRIED",
                                      quarantined_at=now - timedelta(hours=2))

    html = admin_client.get(INDEX).content.decode()
    assert numbers(html, "event", EVENT) | {"last_poll": "", "last_error": ""} == {
        "listeners": "0", "recent": "1", "in": "5", "acknowledged": "2", "failed": "1", "quarantined": "1",
        "open_quarantine": "1", "depth": "—", "dead": "—", "oldest": "—", "last_poll": "", "last_error": ""}
    assert numbers(html, "event", "conductor:quiet")["in"] == "0"


def test_every_number_of_a_queue_opens_the_list_of_what_it_counts(admin_client, now):
    orders = config(EVENT)
    for minutes, outcome in [(1, Outcome.ACKNOWLEDGED), (20, Outcome.ACKNOWLEDGED), (30, Outcome.QUARANTINED),
                             (70, Outcome.ACKNOWLEDGED)]:
        received(EVENT, now - timedelta(minutes=minutes), outcome)
    record(received(EVENT, now - timedelta(minutes=10)), "ship", status="FAILED")
    QuarantinedMessage.objects.create(event=EVENT, message_id="q-1", reason="unreadable",
                                      quarantined_at=now - timedelta(minutes=30))
    QuarantinedMessage.objects.create(event=EVENT, message_id="q-0", reason="unreadable", status="DISCARDED",
                                      quarantined_at=now - timedelta(minutes=90))
    ListenerHeartbeat.objects.create(consumer="h:1:1", config=orders, event=EVENT, hostname="h", pid=1)
    ListenerHeartbeat.objects.create(consumer="h:2:1", config=orders, event=EVENT, hostname="h", pid=2,
                                     stopped_at=now)

    [row] = overview.build(now=now).queues
    counted = {name: getattr(row, name) for name in ("listeners", "recent", "hour", "acknowledged", "failed",
                                                     "quarantined", "open_quarantine")}
    assert {name: number.value for name, number in counted.items()} == {
        "listeners": 1, "recent": 1, "hour": 4, "acknowledged": 2, "failed": 1, "quarantined": 1,
        "open_quarantine": 1}
    for name, number in counted.items():
        assert result_count(admin_client, number.url) == number.value, name


def test_each_handler_shows_its_matches_skips_failures_last_match_and_receipt_to_record_times(admin_client, now):
    config(EVENT)
    handler(START_SHIPPING, event=EVENT, name="ship")
    handler(START_SHIPPING, event=EVENT, name="never_ran")
    times = [3, 5, 8, 13, 21]  # milliseconds from receipt to record
    for n, took in enumerate(times):
        record(received(EVENT, now - timedelta(minutes=5 + n)), "ship", after_ms=took)
    skipped = received(EVENT, now - timedelta(minutes=20))
    record(skipped, "ship", index=-1, status="SKIPPED", after_ms=1)
    failed = received(EVENT, now - timedelta(minutes=25))
    record(failed, "ship", status="FAILED", after_ms=400)
    earlier = received(EVENT, now - timedelta(hours=3))
    record(earlier, "never_ran", index=-1, status="SKIPPED")

    html = admin_client.get(INDEX).content.decode()
    ship = numbers(html, "handler", "ship")
    assert re.fullmatch(r"[56] min ago", ship.pop("last_match"))
    assert ship == {"matched": "6", "skipped": "1", "failed": "1", "p50": "8.0 ms", "p99": "400 ms"}
    assert numbers(html, "handler", "never_ran") == {"matched": "0", "skipped": "0", "failed": "0",
                                                     "last_match": "none kept", "p50": "—", "p99": "—"}
    ship = next(row for row in overview.build(now=now).handlers if row.name == "ship")
    for number in (ship.matched, ship.skipped, ship.failed):
        assert result_count(admin_client, number.url) == number.value
    assert result_count(admin_client, ship.timed_url) == 7  # the records the times were taken from


def test_a_handler_deleted_since_keeps_its_row_while_its_records_count(admin_client, now):
    config(EVENT)
    record(received(EVENT, now - timedelta(minutes=1)), "gone_handler", status="FAILED")
    html = admin_client.get(INDEX).content.decode()
    assert numbers(html, "handler", "gone_handler")["failed"] == "1" and "deleted" in html


def test_a_queues_status_says_whether_it_flows_at_a_glance(now):
    config("conductor:broken", last_error="ProviderError: refused", last_error_at=now, last_poll_at=now)
    config("conductor:nobody", last_poll_at=now - timedelta(minutes=30))
    config("conductor:drained", last_poll_at=now - timedelta(seconds=30))
    config("conductor:off", enabled=False)
    listened = config("conductor:listened")
    ListenerHeartbeat.objects.create(consumer="h:1:9", config=listened, event=listened.event, hostname="h", pid=1)
    statuses = {row.config.event: row.status for row in overview.build(now=now).queues}
    assert statuses == {"conductor:broken": "error", "conductor:nobody": "idle", "conductor:drained": "ok",
                        "conductor:off": "disabled", "conductor:listened": "ok"}


def test_the_backlog_shows_the_depth_and_oldest_message_the_broker_told(admin_client, now):
    config(EVENT, depth=12, dead_letter_depth=1, oldest_message_at=now - timedelta(minutes=7))
    html = admin_client.get(INDEX).content.decode()
    cells = numbers(html, "event", EVENT)
    assert (cells["depth"], cells["dead"]) == ("12", "1") and cells["oldest"] in ("7 min", "8 min")
    assert reverse("admin:queues_internalmessage_changelist") + "?queue=orders" in html


def test_the_hour_chart_has_a_bar_a_minute_each_linking_to_its_messages(admin_client, now):
    config(EVENT)
    for seconds in (10, 20, 180):
        received(EVENT, now - timedelta(seconds=seconds))
    record(received(EVENT, now - timedelta(minutes=3)), "ship", status="FAILED")
    quarantined = received(EVENT, now - timedelta(minutes=3), Outcome.QUARANTINED)
    QuarantinedMessage.objects.create(event=EVENT, message_id=quarantined.message_id, reason="rejected",
                                      quarantined_at=quarantined.received_at, status="RETRIED")

    chart = overview.build(now=now).queues[0].chart
    assert len(chart.bars) == 60 and chart.bars[-1].end == now
    totals = {bar.start: {s.kind: s.value for s in bar.segments} for bar in chart.bars if any(
        s.value for s in bar.segments)}
    this_minute = now.replace(second=0)
    assert totals == {this_minute: {"failed": 0, "quarantined": 0, "ok": 2},
                      this_minute - timedelta(minutes=3): {"failed": 1, "quarantined": 1, "ok": 1}}
    bar = next(bar for bar in chart.bars if bar.start == this_minute - timedelta(minutes=3))
    for segment in bar.segments:
        expected = 3 if segment.kind == "ok" else segment.value  # the rest of the bar opens all its messages
        # (and the quarantined part the quarantine's entries of that minute, retried since or not)
        assert result_count(admin_client, segment.url) == expected
    assert chart.totals["in"].value == 5 and chart.peak == 3


@pytest.mark.parametrize(("span", "bars", "bucket"), [("day", 24, timedelta(hours=1)),
                                                       ("week", 42, timedelta(hours=4))])
def test_the_day_and_week_charts_count_per_hour_and_per_four_hours(admin_client, now, span, bars, bucket):
    config(EVENT)
    handler(START_SHIPPING, event=EVENT, name="ship")
    for hours in (2, 2, 5, 20):
        record(received(EVENT, now - timedelta(hours=hours)), "ship")
    data = overview.build(overview.SPANS[span], now=now)
    queue, ship = data.queues[0].chart, data.handlers[0].chart
    assert len(queue.bars) == len(ship.bars) == bars
    assert all(bar.end - bar.start == bucket for bar in queue.bars[:-1])
    assert queue.totals["in"].value == ship.totals["matched"].value == 4
    assert sum(s.value for bar in queue.bars for s in bar.segments) == 4
    assert result_count(admin_client, queue.totals["in"].url) == 4
    html = admin_client.get(INDEX, {"range": span}).content.decode()
    assert html.count("<rect ") == sum(1 for c in (queue, ship) for bar in c.bars for s in bar.segments if s.value)


def alert(kind: str, subject: str, **fields) -> Alert:
    opened = Alert.objects.create(kind=kind, subject=subject, detail="found", **fields)
    opened.events.create(from_state="", to_state="open", by_name="eventhub")
    return opened


def test_the_page_costs_the_same_queries_for_one_queue_or_many(admin_client, superuser, now):
    orders = config(EVENT)
    ship = handler(START_SHIPPING, event=EVENT, name="ship")
    record(received(EVENT, now), "ship")
    alert("backlog", EVENT, queue=orders)
    admin_client.get(INDEX, {"range": "week"})  # (the first one rolls up the week's hours: see test_overview_rollups)
    with CaptureQueriesContext(connection) as one:
        admin_client.get(INDEX, {"range": "week"})
    for n in range(4):
        more = config(f"conductor:more{n}")
        handler(START_SHIPPING, event=f"conductor:more{n}", name=f"ship{n}")
        record(received(f"conductor:more{n}", now), f"ship{n}", status="FAILED")
        alert("backlog", more.event, queue=more)
    alert("failure_rate", "ship", handler=ship).acknowledge(superuser, "on it")
    alert("handler_silent", "ship", handler=ship).silence(superuser, "deploy", 60)
    with CaptureQueriesContext(connection) as five:
        html = admin_client.get(INDEX, {"range": "week"}).content.decode()
    assert html.count('<tr data-alert="') == 7  # every alert shown, its subject and rule linked: no query each
    assert len(five) == len(one)


def test_the_numbers_are_in_the_served_html_and_the_charts_are_svg(admin_client, now):
    config(EVENT)
    record(received(EVENT, now - timedelta(minutes=1)), "ship")
    html = admin_client.get(INDEX).content.decode()
    assert '<svg class="chart"' in html and "<script" not in html.split('id="charts"')[1]
    assert numbers(html, "event", EVENT)["in"] == "1"
    assert EventHandler.objects.count() == 0 and 'data-handler="ship"' in html
