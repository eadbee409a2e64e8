"""The outbox: a message exists only if its sender's transaction committed; the relay publishes it on a
real broker with its message id, backs off on failure, gives up visibly, and claims rows safely."""

import json
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from queues.models import InternalMessage, OutboxMessage, QueueConfig
from queues.outbox import (
    RELAY_SCHEDULE,
    InvalidDestination,
    backoff,
    claim,
    enqueue,
    relay_once,
    retry_failed,
    sync_schedule,
)
from queues.tasks import relay_outbox

pytestmark = pytest.mark.django_db
DEAD_AMQP = "amqp://127.0.0.1:1/"  # nothing listens there: every publish fails for real


def received(config: QueueConfig, providers) -> list:
    provider = providers(config.spec())
    return provider.receive(10, 1)


def test_it_keeps_a_message_only_if_the_senders_transaction_commits(make_config):
    config = make_config("sqs")
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue(config.event, {"n": 1}, message_id="rolled-back")
        raise RuntimeError("the sender failed after handing over")
    enqueue(config.event, {"n": 2}, message_id="kept")
    assert list(OutboxMessage.objects.values_list("message_id", "status")) == [("kept", "PENDING")]


def test_it_writes_the_internal_queue_directly_in_the_senders_transaction():
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue("conductor:direct", {"n": 1}, message_id="gone")
        raise RuntimeError("rolled back")
    enqueue("conductor:direct", {"n": 2}, message_id="there")
    assert list(InternalMessage.objects.values_list("message_id", flat=True)) == ["there"]
    assert not OutboxMessage.objects.exists()


@pytest.mark.parametrize(("event", "named"), [
    ("kafka:orders", "kafka"), ("orders", "orders"), ("sqs:", "no queue name"), ("sqs:bad name!", "SQS queue name"),
    ("amqp_exchange:x?exchangeType=fanfare", "fanfare"), ("nats:orders.*", "NATS subject"),
])
def test_it_refuses_a_destination_it_cannot_publish_to_saying_why(event, named):
    with pytest.raises(InvalidDestination) as error:
        enqueue(event, {})
    assert named in str(error.value)
    assert not OutboxMessage.objects.exists()


@pytest.mark.parametrize("kind", ["sqs", "amqp_queue", "nats"])
def test_it_relays_pending_messages_with_their_message_id_and_marks_them_sent(kind, make_config, providers):
    config = make_config(kind)
    enqueue(config.event, {"orderId": 7}, message_id="task-1")
    enqueue(config.event, {"orderId": 8}, message_id="task-2")
    assert relay_once() == 2
    rows = OutboxMessage.objects.order_by("message_id")
    assert [(r.status, r.attempts, r.last_error) for r in rows] == [("SENT", 1, ""), ("SENT", 1, "")]
    assert all(r.sent_at is not None for r in rows)
    messages = received(config, providers)
    assert sorted((m.message_id, json.loads(m.body)["orderId"]) for m in messages) == [("task-1", 7), ("task-2", 8)]
    assert relay_once() == 0  # nothing is sent twice


def failing_config() -> QueueConfig:
    config = QueueConfig(kind="amqp_queue", name="eh.test.unreachable", url=DEAD_AMQP)
    config.full_clean()
    config.save()
    return config


@override_settings(OUTBOX_MAX_ATTEMPTS=3, OUTBOX_BACKOFF_SECONDS=4, OUTBOX_BACKOFF_MAX_SECONDS=600)
def test_it_backs_off_exponentially_and_then_fails_visibly():
    config = failing_config()
    enqueue(config.event, {"n": 1}, message_id="m-1")
    delays = []
    for _ in range(3):
        OutboxMessage.objects.update(next_attempt_at=timezone.now())  # its time has come
        before = timezone.now()
        assert relay_once() == 0
        row = OutboxMessage.objects.get()
        delays.append(round((row.next_attempt_at - before).total_seconds()))
    assert row.status == "FAILED" and row.attempts == 3 and row.last_error.startswith("ProviderError")
    assert delays[:2] == [4, 8]  # the third attempt failed for good: no further delay
    OutboxMessage.objects.update(next_attempt_at=timezone.now())
    assert relay_once() == 0 and OutboxMessage.objects.get().attempts == 3  # a FAILED row is left alone


@override_settings(OUTBOX_BACKOFF_SECONDS=2, OUTBOX_BACKOFF_MAX_SECONDS=30)
def test_its_backoff_doubles_and_is_capped():
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4, 5, 9)] == [2, 4, 8, 16, 30, 30]


@override_settings(OUTBOX_MAX_ATTEMPTS=1)
def test_a_failed_message_retried_after_the_broker_is_fixed_is_sent(make_config, providers):
    config = failing_config()
    enqueue(config.event, {"n": 1}, message_id="m-1")
    relay_once()
    assert OutboxMessage.objects.get().status == "FAILED"
    good = make_config("amqp_queue")
    config.url = ""
    config.name = good.name
    good.delete()
    config.save()
    OutboxMessage.objects.update(event=config.event)
    assert retry_failed(OutboxMessage.objects.all()) == 1
    assert relay_once() == 1
    row = OutboxMessage.objects.get()
    assert row.status == "SENT" and row.attempts == 1 and row.last_error == ""
    assert [m.message_id for m in received(config, providers)] == ["m-1"]


def test_a_claimed_message_is_not_claimed_again_until_its_claim_expires(make_config):
    config = make_config("sqs")
    enqueue(config.event, {"n": 1}, message_id="m-1")
    assert [r.message_id for r in claim(10)] == ["m-1"]
    assert claim(10) == []  # another relay finds nothing: the first one holds it
    with override_settings(OUTBOX_CLAIM_SECONDS=0):
        OutboxMessage.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))  # the holder died
        again = claim(10)
    assert [(r.message_id, r.attempts) for r in again] == [("m-1", 2)]


def test_a_message_not_yet_due_waits(make_config):
    config = make_config("sqs")
    enqueue(config.event, {"n": 1}, message_id="later")
    OutboxMessage.objects.update(next_attempt_at=timezone.now() + timedelta(minutes=5))
    assert relay_once() == 0 and OutboxMessage.objects.get().status == "PENDING"


@pytest.mark.django_db(transaction=True)
def test_relays_claiming_at_the_same_time_never_take_the_same_message(make_config):
    config = make_config("sqs")
    OutboxMessage.objects.bulk_create(
        [OutboxMessage(event=config.event, payload={"n": n}, message_id=f"m-{n}") for n in range(200)])
    taken: list[list[str]] = [[], [], []]
    start = threading.Barrier(3)

    def relay(slot: int) -> None:
        start.wait()
        try:
            while rows := claim(15):
                taken[slot].extend(r.message_id for r in rows)
        finally:
            connection.close()

    threads = [threading.Thread(target=relay, args=(slot,)) for slot in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    everything = [m for part in taken for m in part]
    assert len(everything) == 200 and len(set(everything)) == 200


def test_the_relay_schedule_is_synced_by_name_and_its_task_relays(make_config, providers):
    from django_q.models import Schedule

    sync_schedule()
    sync_schedule()
    schedule = Schedule.objects.get(name=RELAY_SCHEDULE)
    assert schedule.func == "queues.tasks.relay_outbox" and schedule.repeats == -1
    config = make_config("nats")
    enqueue(config.event, {"n": 1}, message_id="scheduled")
    assert relay_outbox(5) == 1
    assert [m.message_id for m in received(config, providers)] == ["scheduled"]
    with override_settings(OUTBOX_SCHEDULE=False):
        sync_schedule()
    assert not Schedule.objects.filter(name=RELAY_SCHEDULE).exists()


def test_the_relay_task_stops_between_two_steps_when_the_cluster_is_stopping(make_config, monkeypatch):
    from queues import tasks

    config = make_config("nats")
    for n in range(3):
        enqueue(config.event, {"n": n}, message_id=f"stop-{n}")
    asked = iter([False, True])
    monkeypatch.setattr(tasks, "stop_requested", lambda: next(asked))
    with override_settings(OUTBOX_BATCH_SIZE=1):
        assert relay_outbox(30) == 1
    assert OutboxMessage.objects.filter(status=OutboxMessage.Status.PENDING).count() == 2


def test_listen_queues_relays_unless_told_not_to(make_config, providers):
    config = make_config("sqs")
    enqueue(config.event, {"n": 1}, message_id="m-1")
    call_command("listen_queues", "--once", "--no-relay", "--queue", "conductor:none")
    assert OutboxMessage.objects.get().status == "PENDING"
    call_command("listen_queues", "--once", "--queue", "conductor:none")
    assert OutboxMessage.objects.get().status == "SENT"
    assert [m.message_id for m in received(config, providers)] == ["m-1"]

