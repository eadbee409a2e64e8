"""Kill the listener with SIGKILL again and again while messages flow: nothing is lost, nothing doubled."""

import json
import os
import random
import signal
import time

import pytest

from handlers.changes import save_handler
from handlers.models import ActionExecution, EventHandler
from queues.models import ListenerHeartbeat, ReceivedMessage
from workflows.models import Workflow

from ..brokers import wait_until
from ..workflows.conftest import one_task, register

pytestmark = pytest.mark.django_db(transaction=True)
MESSAGES = int(os.environ.get("CRASH_MESSAGES", "1000"))
KILLS = 6


def start_workflow_handler(event: str, workflow: str) -> EventHandler:
    handler = EventHandler()
    handler.apply_conductor({
        "name": f"crash_{event}", "event": event, "active": True,
        "actions": [{"action": "start_workflow", "start_workflow": {"name": workflow, "input": {"n": "${n}"}}}],
    })
    handler.full_clean()
    save_handler(handler, user=None, source="test")
    return handler


def finished() -> int:
    return ActionExecution.objects.filter(status="COMPLETED", duplicate_of=None).count()


@pytest.mark.parametrize("kind", ["conductor", "amqp_queue"])
def test_a_listener_killed_repeatedly_loses_nothing_and_doubles_nothing(kind, make_config, providers,
                                                                        spawn_listener):
    definition = register(one_task("HUMAN"))
    config = make_config(kind, wait_seconds=1, visibility_timeout=2, max_deliveries=50, batch_size=25)
    start_workflow_handler(config.event, definition.name)
    provider = providers(config.spec())
    sent = {f"{kind}-{n}" for n in range(MESSAGES)}
    for message_id in sorted(sent):
        provider.publish(json.dumps({"n": message_id}), message_id=message_id)

    chance = random.Random(MESSAGES)
    for _ in range(KILLS):
        seen = ReceivedMessage.objects.count()
        process = spawn_listener()
        wait_until(lambda seen=seen: ReceivedMessage.objects.count() > seen or finished() >= MESSAGES,
                   timeout=60, what="progress")
        time.sleep(chance.uniform(0.0, 0.5))  # kill it somewhere inside its work, not at a safe point
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    final = spawn_listener()
    wait_until(lambda: finished() >= MESSAGES, timeout=240, what="every message to be processed")
    # The killed listeners may have finished the work already: SIGTERM only once this one is running.
    wait_until(lambda: ListenerHeartbeat.objects.filter(pid=final.pid).exists(), timeout=60, what="the listener")
    final.send_signal(signal.SIGTERM)
    assert final.wait(30) == 0

    originals = ActionExecution.objects.filter(duplicate_of=None)
    assert originals.count() == MESSAGES
    assert set(originals.values_list("status", flat=True)) == {"COMPLETED"}
    assert set(originals.values_list("message_id", flat=True)) == sent
    workflows = Workflow.objects.filter(name=definition.name)
    assert workflows.count() == MESSAGES
    assert {w.trigger["messageId"] for w in workflows.all()} == sent
    assert sorted(w.input["n"] for w in workflows.all()) == sorted(sent)
    assert provider.receive(10, 1) == []


def test_two_consumers_retrying_one_message_at_once_run_its_action_once():
    """A message's claim expired while a consumer still worked on its retry, and a second consumer took the
    message: the second waits for the first's batch, then finds the action final (a duplicate)."""
    import threading
    import uuid

    from django.db import connection

    from handlers.dispatch import dispatch_batch
    from queues.configs import ensure_config
    from queues.providers.base import Message
    from workflows.builtin import BuiltinEngine
    from workflows.errors import EngineUnavailable

    flow = register(one_task("HUMAN"))
    event = "conductor:race"
    start_workflow_handler(event, flow.name)
    config, message_id = ensure_config(event), uuid.uuid4().hex

    class Down(BuiltinEngine):
        def start_workflow(self, *args, **kwargs):
            raise EngineUnavailable("not yet")

    class Slow(BuiltinEngine):
        def start_workflow(self, *args, **kwargs):
            started = super().start_workflow(*args, **kwargs)
            time.sleep(1.0)  # still working when the other consumer gets the message
            return started

    def deliver(count: int, engine) -> list:
        return dispatch_batch(config, [Message(message_id=message_id, body='{"n": 1}', delivery_count=count,
                                               payload={"n": 1})], engine=engine)

    assert deliver(1, Down())[0].action == "nack"
    decisions = []

    def second_delivery(delay: float) -> None:
        time.sleep(delay)
        try:
            decisions.append(deliver(2, Slow())[0].action)
        finally:
            connection.close()

    consumers = [threading.Thread(target=second_delivery, args=(delay,)) for delay in (0, 0.3)]
    for consumer in consumers:
        consumer.start()
    for consumer in consumers:
        consumer.join()
    assert decisions == ["ack", "ack"]
    assert Workflow.objects.count() == 1
    original = ActionExecution.objects.get(duplicate_of=None)
    assert original.status == "COMPLETED" and original.attempts == 2
    assert [d.status for d in original.duplicates.all()] == ["SKIPPED"]
