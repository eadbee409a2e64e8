"""`listen_queues` driven through its one-step methods: Listener.run_once() and `--once`."""

import gc
import json

import pytest
from django.core.management import call_command

from handlers.listener import Listener
from queues.models import InternalMessage, ListenerHeartbeat, QueueConfig, ReceivedMessage
from queues.publish import publish

pytestmark = pytest.mark.django_db(transaction=True)
Outcome = ReceivedMessage.Outcome


def test_it_records_and_acknowledges_each_message(make_config):
    config = make_config("conductor")
    for n in range(3):
        publish(config.event, {"n": n}, message_id=f"m-{n}")
    assert Listener().run_once(wait=0) == 3
    records = ReceivedMessage.objects.order_by("message_id")
    assert [(r.message_id, r.payload, r.outcome, r.config_id) for r in records] == [
        (f"m-{n}", {"n": n}, Outcome.ACKNOWLEDGED, config.pk) for n in range(3)
    ]
    assert not InternalMessage.objects.exists()


def test_the_database_queue_acknowledges_in_the_batchs_transaction(make_config, monkeypatch):
    """Records, effects and the acknowledgement commit together: if acknowledging fails, none of it stays."""
    from handlers.models import ActionExecution
    from queues.providers.base import ProviderError
    from queues.providers.internal import InternalProvider

    from ..handlers.test_crash import start_workflow_handler
    from ..workflows.conftest import one_task, register

    config = make_config("conductor", visibility_timeout=0)
    start_workflow_handler(config.event, register(one_task("HUMAN")).name)
    publish(config.event, {"n": 1}, message_id="m-1")

    def refuse(self, messages):
        raise ProviderError("the acknowledgement was refused")

    with monkeypatch.context() as patch:
        patch.setattr(InternalProvider, "ack_many", refuse)
        assert Listener().run_once(wait=0) == 0  # logged and recorded, not raised
    assert not ReceivedMessage.objects.exists()
    assert not ActionExecution.objects.exists()
    assert InternalMessage.objects.get().delivery_count == 1

    assert Listener().run_once(wait=0) == 1
    record = ReceivedMessage.objects.get()
    assert (record.outcome, record.delivery_count) == (Outcome.ACKNOWLEDGED, 2)
    assert ActionExecution.objects.get().status == "COMPLETED"
    assert not InternalMessage.objects.exists()


def test_it_writes_a_heartbeat_per_consumer_and_the_last_poll(make_config):
    first, second = make_config("conductor"), make_config("conductor")
    publish(first.event, {"a": 1})
    listener = Listener()
    listener.run_once(wait=0)
    beats = {beat.config_id: beat for beat in ListenerHeartbeat.objects.all()}
    assert set(beats) == {first.pk, second.pk}
    assert beats[first.pk].messages == 1 and beats[first.pk].stopped_at is None
    assert QueueConfig.objects.get(pk=first.pk).last_poll_at is not None
    assert QueueConfig.objects.get(pk=first.pk).depth == 0
    listener.close()
    assert not ListenerHeartbeat.objects.filter(stopped_at__isnull=True).exists()


def test_it_starts_consuming_a_queue_added_while_it_runs(make_config):
    listener = Listener()
    assert listener.run_once(wait=0) == 0
    config = make_config("conductor")
    publish(config.event, {"late": True})
    assert listener.run_once(wait=0) == 1


def test_it_stops_consuming_a_queue_that_was_disabled(make_config):
    config = make_config("conductor")
    listener = Listener()
    listener.run_once(wait=0)
    config.enabled = False
    config.save()
    publish(config.event, {"held": True})
    assert listener.run_once(wait=0) == 0
    assert InternalMessage.objects.count() == 1


def test_it_uses_the_edited_settings_of_a_queue(make_config):
    config = make_config("conductor", batch_size=1)
    for n in range(4):
        publish(config.event, {"n": n})
    listener = Listener()
    assert listener.run_once(wait=0) == 1
    config.batch_size = 3
    config.save()
    assert listener.run_once(wait=0) == 3


def test_it_only_consumes_the_queues_it_was_given(make_config):
    chosen, other = make_config("conductor"), make_config("conductor")
    publish(chosen.event, {"x": 1})
    publish(other.event, {"x": 2})
    assert Listener(events=[chosen.event]).run_once(wait=0) == 1
    assert InternalMessage.objects.get().queue == other.name


def test_it_keeps_consuming_other_queues_while_a_broker_is_down(make_config):
    down = QueueConfig.objects.create(kind="amqp_queue", name="eh.test.down", url="amqp://127.0.0.1:1/",
                                      wait_seconds=0)
    up = make_config("conductor")
    publish(up.event, {"fine": True})
    listener = Listener()
    assert listener.run_once(wait=0) == 1
    assert listener.run_once(wait=0) == 0  # and again: the outage is retried, not fatal
    down.refresh_from_db()
    assert "RabbitMQ unavailable" in down.last_error and down.last_error_at is not None
    assert "RabbitMQ unavailable" in ListenerHeartbeat.objects.get(config=down).last_error


def test_it_reports_a_config_that_cannot_work_without_stopping(make_config):
    broken = QueueConfig.objects.create(kind="amqp_queue", name="q?exchangeType=bogus")
    up = make_config("conductor")
    publish(up.event, {})
    assert Listener().run_once(wait=0) == 1
    broken.refresh_from_db()
    assert "exchangeType='bogus'" in broken.last_error


def test_it_polls_once_from_the_command_line(make_config):
    config = make_config("conductor")
    publish(config.event, json.loads('{"from": "cli"}'))
    call_command("listen_queues", "--once", "--queue", config.event)
    assert ReceivedMessage.objects.get().payload == {"from": "cli"}
    assert ListenerHeartbeat.objects.get().stopped_at is not None


def test_it_leaves_its_start_up_objects_out_of_garbage_collection_before_it_consumes(monkeypatch):
    """A full collection stops every consumer thread; over start-up's objects it took about 60 ms."""
    from handlers.management.commands import listen_queues

    frozen: list[int] = []
    monkeypatch.setattr(listen_queues.Command, "_stop_on_signals", staticmethod(lambda listener: None))
    monkeypatch.setattr(Listener, "run", lambda self: frozen.append(gc.get_freeze_count()))
    gc.unfreeze()
    try:
        call_command("listen_queues", "--queue", "conductor:nothing_here")
    finally:
        gc.unfreeze()
    assert frozen and frozen[0] > 10_000  # Django and the app, at least


def test_it_lets_a_message_come_back_when_the_database_fails_mid_batch(make_config, monkeypatch):
    from django.db import OperationalError

    from handlers import dispatch

    config = make_config("conductor", visibility_timeout=0)
    publish(config.event, {"survives": True}, message_id="outage")
    listener = Listener()
    def database_down(config, messages, **options):
        raise OperationalError("server closed the connection unexpectedly")

    with monkeypatch.context() as patch:
        patch.setattr(dispatch, "dispatch_batch", database_down)
        assert listener.run_once(wait=0) == 0  # logged and recorded, not raised
    config.refresh_from_db()
    assert "server closed the connection" in config.last_error
    assert listener.run_once(wait=0) == 1
    record = ReceivedMessage.objects.get()
    assert (record.message_id, record.delivery_count, record.outcome) == ("outage", 2, Outcome.ACKNOWLEDGED)


def test_it_retries_with_backoff_while_a_broker_stays_down(monkeypatch):
    from handlers import listener as listener_module
    from handlers.listener import Consumer

    waits: list[float] = []
    config = QueueConfig.objects.create(kind="amqp_queue", name="eh.test.down", url="amqp://127.0.0.1:1/",
                                        wait_seconds=0)

    class RecordingStop:
        """Stands in for the SIGTERM flag: records each backoff and asks to stop after the third."""

        def is_set(self) -> bool:
            return len(waits) >= 3

        def wait(self, seconds: float) -> None:
            waits.append(seconds)

    monkeypatch.setattr(listener_module, "BACKOFF_MAX_SECONDS", 3)
    Consumer(config).run(RecordingStop())
    assert waits == [1.0, 2.0, 3]
    beat = ListenerHeartbeat.objects.get(config=config)
    assert "RabbitMQ unavailable" in beat.last_error and beat.stopped_at is not None


def test_it_says_which_region_settings_are_missing_once_per_poll_and_backs_off(monkeypatch, tmp_path, caplog):
    from handlers.listener import Consumer

    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    config = QueueConfig.objects.create(kind="sqs", name="eh-test-no-region", wait_seconds=0)
    waits: list[float] = []

    class RecordingStop:
        def is_set(self) -> bool:
            return len(waits) >= 3

        def wait(self, seconds: float) -> None:
            waits.append(seconds)

    Consumer(config).run(RecordingStop())
    assert waits == [1.0, 2.0, 4.0]  # a poll per backoff, never a spin
    config.refresh_from_db()
    assert "region field" in config.last_error
    assert "AWS_REGION" in config.last_error and "AWS_DEFAULT_REGION" in config.last_error
    # What an operator reads: one line per failed poll, naming what to set, and no traceback.
    failures = [r for r in caplog.records if r.name == "handlers.listener" and r.levelname == "WARNING"]
    assert len(failures) == 3 and not any(r.exc_info for r in failures)
    assert all("AWS_DEFAULT_REGION" in r.getMessage() for r in failures)

def test_it_survives_the_database_being_down_when_reading_the_configs(make_config, monkeypatch):
    import threading

    from django.db import OperationalError

    config = make_config("conductor")
    publish(config.event, {"after": "outage"})
    real_stamp, calls = Listener.change_stamp, []

    def flaky_stamp():
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("the database system is starting up")
        return real_stamp()

    monkeypatch.setattr(Listener, "change_stamp", staticmethod(flaky_stamp))
    listener = Listener()
    thread = threading.Thread(target=listener.run, kwargs={"reload_seconds": 0.1})
    thread.start()
    try:
        from ..brokers import wait_until

        wait_until(lambda: ReceivedMessage.objects.filter(outcome=Outcome.ACKNOWLEDGED).exists(), what="the message")
    finally:
        listener.stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert len(calls) >= 2


@pytest.mark.parametrize("kind", ["conductor", "amqp_queue", "nats"])
def test_a_queues_consumers_share_its_messages_each_once(kind, make_config, providers):
    """`concurrency` consumers (threads) per queue in one process: all of them work, none takes a message
    another has. On SQLite (one writer at a time) a queue gets one consumer."""
    import threading

    from django.db import connection

    from ..brokers import wait_until

    config = make_config(kind, batch_size=5, concurrency=3, visibility_timeout=60)
    provider = providers(config.spec())
    sent = {f"m-{n}" for n in range(150)}
    for message_id in sorted(sent):
        provider.publish(json.dumps({"id": message_id}), message_id=message_id)
    listener = Listener(events=[config.event])
    thread = threading.Thread(target=listener.run, kwargs={"reload_seconds": 0.1})
    thread.start()
    try:
        wait_until(lambda: ReceivedMessage.objects.filter(outcome=Outcome.ACKNOWLEDGED).count() >= len(sent),
                   what="every message", timeout=60)
    finally:
        listener.stop.set()
        thread.join(30)
    assert not thread.is_alive()
    records = list(ReceivedMessage.objects.values_list("message_id", flat=True))
    assert sorted(records) == sorted(sent)  # each once
    beats = ListenerHeartbeat.objects.filter(config=config)
    assert len(beats) == (1 if connection.vendor == "sqlite" else 3)
    assert sum(beat.messages for beat in beats) == len(sent)
    assert all(beat.messages > 0 and beat.stopped_at is not None for beat in beats)
    assert provider.receive(10, 0) == []


def test_run_once_polls_a_queue_once_whatever_its_concurrency(make_config):
    config = make_config("conductor", batch_size=2, concurrency=4)
    for n in range(5):
        publish(config.event, {"n": n})
    listener = Listener()
    assert listener.run_once(wait=0) == 2
    listener.close()
    assert ListenerHeartbeat.objects.filter(config=config).count() == 1
