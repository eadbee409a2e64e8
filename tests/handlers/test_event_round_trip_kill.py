"""The relay (inside a real `listen_queues` process) is killed with SIGKILL again and again while 1,000
EVENT tasks hand their messages over: every message arrives, and each workflow B starts exactly once."""

import logging
import os
import random
import signal
import time

import pytest

from handlers.models import ActionExecution
from queues.models import ListenerHeartbeat, OutboxMessage, QuarantinedMessage
from workflows.builtin import BuiltinEngine
from workflows.models import Task, Workflow

from ..brokers import wait_until
from ..workflows.conftest import one_task, register
from .test_event_round_trip import handler, start_b

pytestmark = pytest.mark.django_db(transaction=True)
MESSAGES = int(os.environ.get("OUTBOX_KILL_MESSAGES", "1000"))
KILLS = 8
# The relay's claim expires fast, so rows a killed relay claimed (and perhaps published) go out again.
RELAY_ENV = {"OUTBOX_CLAIM_SECONDS": "2", "OUTBOX_BATCH_SIZE": "40", "OUTBOX_POLL_MS": "50"}


def sent() -> int:
    return OutboxMessage.objects.filter(status="SENT").count()


def test_a_relay_killed_repeatedly_loses_no_message_and_starts_each_workflow_once(make_config, spawn_listener):
    config = make_config("amqp_queue", wait_seconds=1, visibility_timeout=2, max_deliveries=50, batch_size=25)
    b = register(one_task("HUMAN", ref="review_ref"))
    a = register(one_task("EVENT", ref="notify_ref", sink=config.event,
                          inputParameters={"orderId": "${workflow.input.orderId}"}))
    handler(config.event, [start_b(b.name)])
    engine = BuiltinEngine()
    chance = random.Random(MESSAGES)
    per_round = MESSAGES // KILLS

    for round_ in range(KILLS):
        numbers = range(round_ * per_round, MESSAGES if round_ == KILLS - 1 else (round_ + 1) * per_round)
        half = len(numbers) // 2
        seen = sent()
        for n in numbers[:half]:  # a backlog, so the relay has claimed rows in hand when it dies
            engine.start_workflow(a.name, input={"orderId": n})
        process = spawn_listener(**RELAY_ENV)
        for n in numbers[half:]:  # the rest hand their messages over while this relay runs
            engine.start_workflow(a.name, input={"orderId": n})
        wait_until(lambda seen=seen: sent() > seen, timeout=60, what="the relay to send something")
        time.sleep(chance.uniform(0.0, 0.3))  # somewhere inside its work, not at a safe point
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    final = spawn_listener(**RELAY_ENV)
    wait_until(lambda: Workflow.objects.filter(name=b.name).count() >= MESSAGES and sent() == MESSAGES,
               timeout=300, what="every message to arrive")
    # The killed listeners may have finished the work already: SIGTERM only once this one is running.
    wait_until(lambda: ListenerHeartbeat.objects.filter(pid=final.pid).exists(), timeout=60, what="the listener")
    final.send_signal(signal.SIGTERM)
    assert final.wait(30) == 0

    task_ids = set(Task.objects.filter(workflow__name=a.name).values_list("id", flat=True))
    assert len(task_ids) == MESSAGES
    assert set(OutboxMessage.objects.values_list("message_id", flat=True)) == task_ids
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {"SENT"}
    started = Workflow.objects.filter(name=b.name)
    assert started.count() == MESSAGES  # exactly once each
    assert {w.trigger["messageId"] for w in started} == task_ids
    assert sorted(w.input["orderId"] for w in started) == list(range(MESSAGES))
    originals = ActionExecution.objects.filter(duplicate_of=None)
    assert originals.count() == MESSAGES and set(originals.values_list("status", flat=True)) == {"COMPLETED"}
    # Republished copies (a relay killed between publishing and marking) ran nothing: each one is a
    # SKIPPED record pointing at the original of its own message id.
    for duplicate in ActionExecution.objects.exclude(duplicate_of=None).select_related("duplicate_of"):
        assert duplicate.status == "SKIPPED" and duplicate.duplicate_of.message_id == duplicate.message_id
    assert not QuarantinedMessage.objects.exists()
    # Some relay did die holding claimed rows: they were claimed again (the path this test is about).
    assert sum(OutboxMessage.objects.values_list("attempts", flat=True)) > MESSAGES
    logging.getLogger(__name__).info(
        "outbox kill test: %d publish attempts for %d messages, %d duplicate deliveries suppressed",
        sum(OutboxMessage.objects.values_list("attempts", flat=True)), MESSAGES,
        ActionExecution.objects.exclude(duplicate_of=None).count())
