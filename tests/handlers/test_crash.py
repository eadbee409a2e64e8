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
