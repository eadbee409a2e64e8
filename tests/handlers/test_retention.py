from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task, result

from handlers.dispatch import dispatch_batch
from handlers.models import ActionExecution
from handlers.tasks import RETENTION_SCHEDULE, purge_old_records, sync_schedules
from queues.configs import ensure_config
from queues.models import QuarantinedMessage, ReceivedMessage

from .seeds import START_SHIPPING
from .test_dispatch import handler, message

pytestmark = pytest.mark.django_db
EVENT = "conductor:retention"


def received(*message_ids: str, days_ago: int, delivery_count: int = 1) -> list[ReceivedMessage]:
    """Dispatch the messages (no such workflow: one FAILED execution each), then age them (this delivery
    only, when it is a redelivery)."""
    config = ensure_config(EVENT)
    dispatch_batch(config, [message({"n": 1}, delivery_count, message_id=mid) for mid in message_ids])
    then = timezone.now() - timedelta(days=days_ago)
    records = ReceivedMessage.objects.filter(message_id__in=message_ids, delivery_count=delivery_count)
    records.update(received_at=then)
    ActionExecution.objects.filter(delivery__in=records).update(created_at=then)
    return list(records)


@pytest.fixture(autouse=True)
def listener():
    handler(START_SHIPPING, event=EVENT)


def test_it_deletes_old_messages_and_their_executions_and_keeps_recent_ones(settings):
    settings.RECORDS_RETENTION_DAYS = 30
    received("old-1", "old-2", days_ago=31)
    received("new-1", days_ago=29)
    assert purge_old_records() == {"executions": 2, "messages": 2}
    assert list(ReceivedMessage.objects.values_list("message_id", flat=True)) == ["new-1"]
    assert list(ActionExecution.objects.values_list("message_id", flat=True)) == ["new-1"]


def test_it_never_touches_in_progress_executions_or_messages_still_in_quarantine():
    [waiting] = received("waiting", days_ago=40)
    ActionExecution.objects.filter(delivery=waiting).update(status="IN_PROGRESS")
    [quarantined] = received("quarantined", days_ago=40)
    QuarantinedMessage.objects.create(event=EVENT, message_id="quarantined", reason="max_deliveries")
    [resolved] = received("resolved", days_ago=40)
    QuarantinedMessage.objects.create(event=EVENT, message_id="resolved", reason="max_deliveries",
                                      status=QuarantinedMessage.Status.DISCARDED)
    purge_old_records(days=30)
    assert set(ReceivedMessage.objects.values_list("message_id", flat=True)) == {"waiting", "quarantined"}
    # The quarantined message keeps its FAILED record, which says why: finished, but still needed.
    assert set(ActionExecution.objects.values_list("delivery", flat=True)) == {waiting.pk, quarantined.pk}
    assert QuarantinedMessage.objects.count() == 2


def test_it_deletes_in_batches():
    received(*[f"m-{n}" for n in range(5)], days_ago=31)
    with CaptureQueriesContext(connection) as queries:
        counts = purge_old_records(days=30, batch_size=2)
    assert counts == {"executions": 5, "messages": 5}
    deletes = [q["sql"] for q in queries.captured_queries
               if q["sql"].startswith("DELETE") and "queues_receivedmessage" in q["sql"]]
    assert len(deletes) == 3  # 2 + 2 + 1
    assert not ReceivedMessage.objects.exists()


def test_it_stops_between_two_batches_when_the_cluster_is_stopping(monkeypatch):
    from handlers import tasks

    received(*[f"m-{n}" for n in range(5)], days_ago=31)
    asked = iter([False, True, True])  # the stop comes after the first batch
    monkeypatch.setattr(tasks, "stop_requested", lambda: next(asked))
    assert purge_old_records(days=30, batch_size=2) == {"executions": 2, "messages": 2}
    assert ReceivedMessage.objects.count() == 3  # the next run carries on


def test_a_replay_survives_the_purge_of_its_original():
    [original] = received("orig", days_ago=31)
    replay = ReceivedMessage.objects.create(event=EVENT, message_id="orig:replay:1", replay_of=original,
                                            replay_reason="check")
    purge_old_records(days=30)
    replay.refresh_from_db()
    assert replay.replay_of is None and replay.replay_reason == "check"


def test_it_runs_from_its_schedule_kept_by_name(settings):
    schedule = Schedule.objects.get(name=RETENTION_SCHEDULE)
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "handlers.tasks.purge_old_records", Schedule.MINUTES, settings.RECORDS_PURGE_INTERVAL_MINUTES)
    settings.RECORDS_PURGE_INTERVAL_MINUTES = 15
    sync_schedules()
    assert Schedule.objects.filter(name=RETENTION_SCHEDULE).count() == 1
    assert Schedule.objects.get(name=RETENTION_SCHEDULE).minutes == 15
    received("old", days_ago=31)
    task_id = async_task(schedule.func)
    assert result(task_id) == {"executions": 1, "messages": 1}
    assert not ReceivedMessage.objects.exists()


@pytest.mark.parametrize("batch_size", [1, 1000])
def test_it_purges_an_old_original_together_with_its_two_duplicates(batch_size):
    # Deleting the original first would set both duplicates' duplicate_of to NULL: two originals of one action.
    for delivery_count in (1, 2, 3):
        received("thrice", days_ago=40, delivery_count=delivery_count)
    assert ActionExecution.objects.filter(duplicate_of__isnull=False).count() == 2
    assert purge_old_records(days=30, batch_size=batch_size) == {"executions": 3, "messages": 3}
    assert not ActionExecution.objects.exists()
    assert not ReceivedMessage.objects.exists()


def test_it_keeps_an_old_original_and_its_delivery_while_a_recent_duplicate_points_at_it():
    [first] = received("twice", days_ago=40)
    [second] = received("twice", days_ago=1, delivery_count=2)
    assert purge_old_records(days=30) == {"executions": 0, "messages": 0}
    duplicate = ActionExecution.objects.get(delivery=second)
    assert duplicate.duplicate_of == ActionExecution.objects.get(delivery=first)
    assert set(ReceivedMessage.objects.values_list("pk", flat=True)) == {first.pk, second.pk}


def test_a_message_kept_for_an_unfinished_action_keeps_its_finished_ones_too():
    handler(START_SHIPPING, name="second_listener", event=EVENT)
    [waiting] = received("waiting", days_ago=40)  # one FAILED record per handler
    unfinished = ActionExecution.objects.filter(delivery=waiting, handler_name="second_listener")
    unfinished.update(status="IN_PROGRESS")
    assert purge_old_records(days=30) == {"executions": 0, "messages": 0}
    # The FAILED sibling stays: without it the message's explanation would miss what its other handler did.
    assert set(ActionExecution.objects.values_list("handler_name", "status")) == {
        (START_SHIPPING["name"], "FAILED"), ("second_listener", "IN_PROGRESS")}


def test_it_keeps_a_message_whose_retry_is_still_in_quarantine():
    from queues.quarantine import retry_id

    received("m-1", days_ago=40)
    first = QuarantinedMessage.objects.create(event=EVENT, message_id="m-1", reason="max_deliveries",
                                              status=QuarantinedMessage.Status.RETRIED)
    QuarantinedMessage.objects.create(event=EVENT, message_id=retry_id("m-1", first.pk), reason="max_deliveries")
    received("m-2", days_ago=40)  # (retried, and that retry is done with: nothing keeps it)
    QuarantinedMessage.objects.create(event=EVENT, message_id="m-2", reason="max_deliveries",
                                      status=QuarantinedMessage.Status.RETRIED)
    assert purge_old_records(days=30) == {"executions": 1, "messages": 1}
    assert list(ReceivedMessage.objects.values_list("message_id", flat=True)) == ["m-1"]
    assert ActionExecution.objects.get().message_id == "m-1"  # a retry skips what it completed: it reads this


def test_it_purges_old_executions_that_have_no_delivery_by_their_message():
    [record] = received("m-1", days_ago=40)
    ActionExecution.objects.update(delivery=None)
    record.delete()
    received("m-2", days_ago=40)
    ActionExecution.objects.filter(message_id="m-2").update(delivery=None)  # and its delivery is kept too
    ReceivedMessage.objects.filter(message_id="m-2").update(received_at=timezone.now())
    assert purge_old_records(days=30) == {"executions": 1, "messages": 0}
    assert list(ActionExecution.objects.values_list("message_id", flat=True)) == ["m-2"]


def test_it_keeps_a_message_retried_since_the_cutoff_whose_retry_may_still_be_on_its_way():
    received("m-1", "m-2", days_ago=40)
    Status = QuarantinedMessage.Status
    QuarantinedMessage.objects.create(event=EVENT, message_id="m-1", reason="max_deliveries", status=Status.RETRIED,
                                      resolved_at=timezone.now() - timedelta(days=1))
    QuarantinedMessage.objects.create(event=EVENT, message_id="m-2", reason="max_deliveries", status=Status.RETRIED,
                                      resolved_at=timezone.now() - timedelta(days=35))
    assert purge_old_records(days=30) == {"executions": 1, "messages": 1}
    assert list(ReceivedMessage.objects.values_list("message_id", flat=True)) == ["m-1"]


def test_a_delivery_committed_after_the_decision_is_not_deleted_with_the_old_ones(monkeypatch):
    from handlers import tasks

    received("m-1", days_ago=40)
    decide = tasks._still_needed

    def decided_then_delivered_again(keys, cutoff):
        needed = decide(keys, cutoff)
        received("m-1", days_ago=0, delivery_count=2)  # (a redelivery commits right after the decision)
        return needed

    monkeypatch.setattr(tasks, "_still_needed", decided_then_delivered_again)
    assert purge_old_records(days=30) == {"executions": 0, "messages": 0}
    assert sorted(ReceivedMessage.objects.values_list("delivery_count", flat=True)) == [1, 2]
    duplicate = ActionExecution.objects.get(delivery__delivery_count=2)
    assert duplicate.duplicate_of == ActionExecution.objects.get(delivery__delivery_count=1)
