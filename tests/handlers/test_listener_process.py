"""`listen_queues` as a real process: clean shutdown on SIGTERM, reload without restart, and SIGKILL with
messages in flight (each one is delivered again afterwards)."""

import json
import signal

import pytest
from django.db import connection

from handlers.listener import Listener
from queues.models import InternalMessage, ListenerHeartbeat, ReceivedMessage

from ..brokers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)
Outcome = ReceivedMessage.Outcome


def in_flight(kind: str, count: int) -> bool:
    """The listener holds `count` messages: recorded (a broker's are acknowledged after the commit), or,
    for the database queue, whose records commit with the acknowledgement, claimed."""
    if kind == "conductor":
        return InternalMessage.objects.filter(delivery_count=1).count() == count
    return ReceivedMessage.objects.count() == count


def test_it_finishes_and_acknowledges_its_batch_on_sigterm(make_config, providers, listener_process):
    # Hidden for longer than the batch takes: the queue's second consumer must not claim it again meanwhile.
    config = make_config("conductor", wait_seconds=1, visibility_timeout=60)
    provider = providers(config.spec())
    for n in range(2):
        provider.publish(json.dumps({"n": n}), message_id=f"m-{n}")
    process = listener_process(slow=2)
    wait_until(lambda: in_flight("conductor", 2), what="the batch to be in flight")
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0, process.stdout.read().decode()
    assert set(ReceivedMessage.objects.values_list("outcome", flat=True)) == {Outcome.ACKNOWLEDGED}
    assert not InternalMessage.objects.exists()
    beats = ListenerHeartbeat.objects.all()
    assert config.concurrency == 2 and len(beats) == (1 if connection.vendor == "sqlite" else 2)  # a thread each
    assert all(beat.stopped_at is not None for beat in beats)


def test_it_picks_up_config_changes_without_a_restart(make_config, listener_process):
    first = make_config("conductor", wait_seconds=1)
    process = listener_process()
    wait_until(lambda: ListenerHeartbeat.objects.filter(config=first).exists(), what="the first consumer")

    added = make_config("conductor", wait_seconds=1)
    InternalMessage.objects.create(queue=added.name, message_id="to-added", body="{}")
    wait_until(lambda: ReceivedMessage.objects.filter(message_id="to-added").exists(), what="the added queue")

    first.enabled = False
    first.save()
    wait_until(lambda: not ListenerHeartbeat.objects.filter(config=first, stopped_at__isnull=True).exists(),
               what="the disabled queue's consumers to stop")
    InternalMessage.objects.create(queue=first.name, message_id="to-disabled", body="{}")
    InternalMessage.objects.create(queue=added.name, message_id="to-added-2", body="{}")
    wait_until(lambda: ReceivedMessage.objects.filter(message_id="to-added-2").exists(), what="the added queue")
    assert InternalMessage.objects.filter(message_id="to-disabled").exists()

    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0


def test_it_delivers_again_each_message_in_flight_when_the_listener_is_killed(kind, make_config, providers,
                                                                               listener_process):
    config = make_config(kind, wait_seconds=1, visibility_timeout=1)
    provider = providers(config.spec())
    sent = {f"m-{n}" for n in range(3)}
    for message_id in sent:
        provider.publish(json.dumps({"id": message_id}), message_id=message_id)
    process = listener_process(slow=60)
    wait_until(lambda: in_flight(kind, 3), what="three messages in flight")
    process.kill()
    process.wait(10)

    listener = Listener(events=[config.event])
    for _ in range(10):
        if ReceivedMessage.objects.filter(outcome=Outcome.ACKNOWLEDGED).count() == 3:
            break
        listener.run_once(wait=2)
    listener.close()
    again = ReceivedMessage.objects.filter(outcome=Outcome.ACKNOWLEDGED)
    assert {r.message_id for r in again} == sent
    assert all(r.delivery_count >= 2 for r in again)
    assert provider.receive(10, 1) == []
