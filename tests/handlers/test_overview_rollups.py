"""The overview's hourly rollups (handlers.rollups): which hours are rolled up and when, that the day and week
charts read them, and that every number still equals the list it opens after the records change late."""

import re
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from django_q.models import Schedule

from handlers import dispatch, overview, rollups
from handlers.models import ActionExecution, HourlyCount, RolledUpHour
from handlers.tasks import purge_old_records
from queues.models import QuarantinedMessage, ReceivedMessage

from .seeds import START_SHIPPING
from .test_dispatch import handler
from .test_overview import EVENT, config, received, record, result_count

pytestmark = pytest.mark.django_db
HOUR = timedelta(hours=1)


@pytest.fixture
def now():
    """Half past a minute of the hour's second half: the hour before is over by more than the margin."""
    moment = timezone.now().replace(second=30, microsecond=0)
    return moment if moment.minute >= 30 else moment - timedelta(minutes=30)


@pytest.fixture
def traffic(now):
    """A queue and its handler with matches 3 and 26 hours ago, one 5 minutes ago, and a false condition."""
    config(EVENT)
    handler(START_SHIPPING, event=EVENT, name="ship")
    for ago in (timedelta(hours=3), timedelta(hours=3), timedelta(hours=26), timedelta(minutes=5)):
        record(received(EVENT, now - ago), "ship")
    record(received(EVENT, now - timedelta(hours=3)), "ship", index=-1, status="SKIPPED")
    return now


def rolled_up_hours() -> set:
    return set(RolledUpHour.objects.values_list("hour", flat=True))


def counts(series: str) -> dict:
    return {hour: n for hour, n in HourlyCount.objects.filter(series=series).values_list("hour", "count")}


def assert_every_number_opens_its_count(client, data: overview.Overview) -> None:
    """Each bar's segments and each chart's totals count what their lists show."""
    for chart in [row.chart for row in data.queues] + [row.chart for row in data.handlers]:
        for bar in chart.bars:
            for segment in bar.segments:
                if segment.value:
                    expected = segment.value
                    if segment.kind == "ok":  # the rest of a queue's bar opens all its messages in
                        expected = int(re.search(r"([\d,]+) in,", bar.title).group(1).replace(",", ""))
                    assert result_count(client, segment.url) == expected, (chart.span.name, bar.title, segment)
        for number in chart.totals.values():
            assert result_count(client, number.url) == number.value


def test_the_week_rolls_up_its_settled_hours_and_counts_the_rest_from_the_records(admin_client, traffic):
    now = traffic
    data = overview.build(overview.SPANS["week"], now=now)
    settled = rollups.floor_hour(now)  # (the hour before `now` ended over 30 minutes ago)
    first = overview.SPANS["week"].first_bucket(now)
    assert rolled_up_hours() == {first + i * HOUR for i in range((settled - first) // HOUR)}
    three, twenty_six = rollups.floor_hour(now - 3 * HOUR), rollups.floor_hour(now - 26 * HOUR)
    assert counts("received") == {three: 3, twenty_six: 1}
    assert counts("matched") == {three: 2, twenty_six: 1}  # (the false condition is no match)
    # ... and the page adds the hour still going (5 minutes ago) from the records.
    assert data.queues[0].chart.totals["in"].value == 5
    assert data.handlers[0].chart.totals["matched"].value == 4
    assert_every_number_opens_its_count(admin_client, data)
    assert_every_number_opens_its_count(admin_client, overview.build(overview.SPANS["day"], now=now))


def test_an_hour_is_not_rolled_up_until_the_margin_after_its_end_has_passed(traffic):
    now = traffic.replace(minute=4)  # 4 minutes into an hour: the hour before ended within the margin (10)
    overview.build(overview.SPANS["day"], now=now)
    assert max(rolled_up_hours()) == rollups.floor_hour(now) - 2 * HOUR
    overview.build(overview.SPANS["day"], now=now + timedelta(minutes=7))
    assert max(rolled_up_hours()) == rollups.floor_hour(now) - HOUR


def test_a_transaction_still_open_from_before_an_hour_ended_holds_the_hour_back(traffic):
    """A batch stamps its records when it builds them and commits them at its end: on PostgreSQL, an hour is
    not rolled up while a transaction that began before its end is open (SQLite has one writer, and the
    margin alone)."""
    later = traffic + 3 * HOUR  # the page three hours on: a transaction open now began before those hours ended
    db = connection.settings_dict
    if connection.vendor != "postgresql":
        rollups.roll_up(later)
        assert max(rolled_up_hours()) == rollups.floor_hour(later) - HOUR
        return
    with psycopg.connect(dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"], host=db["HOST"],
                         port=db["PORT"] or None) as batch:
        batch.execute("BEGIN")
        began = batch.execute("SELECT now()").fetchone()[0]  # (its transaction's start)
        rollups.roll_up(later)
        assert max(rolled_up_hours()) == rollups.floor_hour(began) - HOUR
    rollups.roll_up(later)
    assert max(rolled_up_hours()) == rollups.floor_hour(later) - HOUR


def test_numbers_equal_their_lists_after_the_records_change_late(admin_client, traffic):
    """What changes after its hour (a record failing on a retry or when its message is given up on, a
    quarantine entry deleted) is never rolled up: the rolled-up page shows it at once."""
    now = traffic
    overview.build(overview.SPANS["week"], now=now)
    assert rollups.floor_hour(now - 4 * HOUR) in rolled_up_hours()
    old = received(EVENT, now - 4 * HOUR - timedelta(minutes=10), "RETURNED", message_id="late")
    waiting = record(old, "ship", status="IN_PROGRESS")
    earlier = received(EVENT, now - 4 * HOUR, message_id="retried")
    retried = record(earlier, "ship", status="COMPLETED")
    entry = QuarantinedMessage.objects.create(event=EVENT, message_id="q", reason="rejected",
                                              quarantined_at=now - 4 * HOUR)
    RolledUpHour.objects.all().delete()  # (those were added to a rolled-up hour: as if there all along)
    HourlyCount.objects.all().delete()
    before = overview.build(overview.SPANS["week"], now=now)
    assert_every_number_opens_its_count(admin_client, before)

    dispatch.close_open_executions(EVENT, "late", "gave up")  # the message given up on, hours later
    ActionExecution.objects.filter(pk=retried.pk).update(status="FAILED")  # a later delivery's retry failed
    entry.delete()  # a person deleted the quarantine entry
    after = overview.build(overview.SPANS["week"], now=now)
    assert after.handlers[0].chart.totals["failed"].value == 2
    assert after.queues[0].chart.totals["failed"].value == before.queues[0].chart.totals["failed"].value + 1
    assert after.queues[0].chart.totals["quarantined"].value == 0
    assert after.handlers[0].chart.totals["matched"].value == before.handlers[0].chart.totals["matched"].value
    assert_every_number_opens_its_count(admin_client, after)
    assert waiting.delivery_id == old.pk


def test_a_record_of_another_kind_at_index_0_is_no_match(admin_client, traffic):
    """Issue 24's SHADOW records (what a shadow handler would have done) must never count as matches or
    failures: the counts name the statuses they count."""
    now = traffic
    for ago in (timedelta(hours=5), timedelta(minutes=2)):
        record(received(EVENT, now - ago), "shadowed", status="SHADOW")
    data = overview.build(overview.SPANS["week"], now=now)
    assert HourlyCount.objects.filter(key="shadowed").count() == 0
    assert not [row for row in data.handlers if row.name == "shadowed"][0].matched.value
    matched = overview.executions_of_decision(ActionExecution.objects.filter(handler_name="shadowed"), "matched")
    assert not matched.exists()
    assert_every_number_opens_its_count(admin_client, data)


def test_two_roll_ups_of_the_same_hours_count_them_once(traffic):
    start, end = rollups.rolled_up_range(traffic - 30 * HOUR, traffic)
    assert rollups.ensure(start, end) == (end - start) // HOUR
    RolledUpHour.objects.filter(hour=rollups.floor_hour(traffic - 3 * HOUR)).delete()  # (as if one was ahead)
    assert rollups.ensure(start, end) == 1
    assert counts("received") == {rollups.floor_hour(traffic - 3 * HOUR): 3,
                                  rollups.floor_hour(traffic - 26 * HOUR): 1}


@override_settings(RECORDS_RETENTION_DAYS=1)
def test_hours_the_purge_may_be_deleting_are_counted_from_the_records_and_their_rollups_pruned(admin_client, traffic):
    now = traffic
    rollups.ensure(rollups.floor_hour(now - 30 * HOUR), rollups.floor_hour(now - 20 * HOUR))  # (rolled up earlier)
    data = overview.build(overview.SPANS["week"], now=now)
    assert data.queues[0].chart.totals["in"].value == 5
    assert_every_number_opens_its_count(admin_client, data)
    # A purge half-way: the message of 26 hours ago deleted, its hour's rollup not pruned yet.
    ReceivedMessage.objects.filter(received_at__lt=timezone.now() - timedelta(days=1)).delete()
    assert HourlyCount.objects.filter(hour=rollups.floor_hour(now - 26 * HOUR)).exists()
    data = overview.build(overview.SPANS["week"], now=now)
    assert data.queues[0].chart.totals["in"].value == 4
    assert_every_number_opens_its_count(admin_client, data)
    purge_old_records()
    cutoff = timezone.now() - timedelta(days=1)
    assert not RolledUpHour.objects.filter(hour__lt=cutoff).exists()
    assert not HourlyCount.objects.filter(hour__lt=cutoff).exists()
    assert_every_number_opens_its_count(admin_client, overview.build(overview.SPANS["week"], now=now))


def test_the_schedule_rolls_up_the_weeks_settled_hours(traffic):
    assert Schedule.objects.filter(name=rollups.SCHEDULE, func=rollups.TASK).exists()
    assert rollups.roll_up(traffic) == (rollups.floor_hour(traffic) - (traffic - rollups.REACH)) // HOUR
    assert rollups.roll_up(traffic) == 0
