"""Workflow A's EVENT task publishes through the outbox and the relay; a handler hears it on a real broker
and starts workflow B with values from A's payload. The records link B back to A's EVENT task."""

import json
import uuid

import pytest

from handlers.changes import save_handler
from handlers.listener import Listener
from handlers.models import ActionExecution, EventHandler
from queues.models import OutboxMessage
from workflows.builtin import BuiltinEngine
from workflows.models import Task, Workflow

from ..workflows.conftest import one_task, register, unique

pytestmark = pytest.mark.django_db(transaction=True)


def handler(event: str, actions: list[dict]) -> EventHandler:
    item = EventHandler()
    item.apply_conductor({"name": unique("round_trip"), "event": event, "active": True, "actions": actions})
    item.full_clean()
    save_handler(item, user=None, source="test")
    return item


def start_b(name: str, **extra_input) -> dict:
    return {"action": "start_workflow", "start_workflow": {
        "name": name, "input": {"orderId": "${orderId}", "parentWorkflowId": "${workflowInstanceId}", **extra_input}}}


def consume_until(listener: Listener, done, attempts: int = 40):
    for _ in range(attempts):
        listener.run_once(wait=0.2)  # relays the outbox, then one batch from every queue
        result = done()
        if result:
            return result
    raise AssertionError("the listener did not get there")


def exchange_name() -> str:
    suffix = uuid.uuid4().hex[:12]
    return f"eh.test.x.{suffix}?exchangeType=topic&routingKey=orders.signed&bindQueueName=eh.test.bound.{suffix}"


SINKS = {
    # The SQS sink names its queue through the workflow's input: `${...}` in a sink is resolved first.
    "sqs": lambda config: "sqs:${workflow.input.queue}",
    "amqp_exchange": lambda config: config.event,
    "nats": lambda config: config.event,
    "conductor": lambda config: "conductor",
}


@pytest.mark.parametrize("kind", list(SINKS))
def test_an_event_task_starts_workflow_b_through_a_real_broker(kind, make_config):
    b = register(one_task("HUMAN", ref="review_ref"))
    a_data = one_task("EVENT", ref="notify_ref", inputParameters={"orderId": "${workflow.input.orderId}"})
    if kind == "conductor":  # `conductor` publishes to conductor:<workflow>:<taskRef>
        config = make_config("conductor", name=f"{a_data['name']}:notify_ref")
    else:
        config = make_config(kind, **({"name": exchange_name()} if kind == "amqp_exchange" else {}))
    a_data["tasks"][0]["sink"] = SINKS[kind](config)
    a = register(a_data)
    handler(config.event, [start_b(b.name)])

    a_id = BuiltinEngine().start_workflow(a.name, input={"orderId": 7, "queue": config.name})
    event_task = Task.objects.get(workflow_id=a_id)
    assert event_task.status == "COMPLETED" and event_task.output["event_produced"] == config.event
    assert Workflow.objects.get(pk=a_id).status == "COMPLETED"
    if kind != "conductor":  # handed over to the outbox, in A's transaction; not yet published
        assert OutboxMessage.objects.get(message_id=event_task.id).status == "PENDING"

    listener = Listener()
    workflow_b = consume_until(listener, lambda: Workflow.objects.filter(name=b.name).first())
    listener.close()
    assert workflow_b.input["orderId"] == 7 and workflow_b.input["parentWorkflowId"] == a_id
    assert workflow_b.trigger["messageId"] == event_task.id and workflow_b.trigger["event"] == config.event
    execution = ActionExecution.objects.get(message_id=event_task.id)
    assert execution.status == "COMPLETED" and execution.workflow_id == workflow_b.id
    assert execution.output == {"workflowId": workflow_b.id}
    if kind != "conductor":
        sent = OutboxMessage.objects.get(message_id=event_task.id)
        assert sent.status == "SENT" and sent.sent_at is not None and sent.attempts == 1


def test_an_async_event_task_waits_until_workflow_bs_handler_completes_it(make_config):
    """A → (sqs) → B started; B's own EVENT task replies with A's task id; the reply's handler completes it."""
    b = register(one_task("EVENT", ref="reply_ref", sink="conductor:reply", inputParameters={
        "taskId": "${workflow.input['conductor.event.messageId']}", "approvedBy": "ada"}))
    requests = make_config("sqs")
    replies = make_config("conductor", name=f"{b.name}:reply")
    a = register({"name": unique("flow"), "version": 1, "tasks": [
        {"name": "notify", "taskReferenceName": "notify_ref", "type": "EVENT", "asyncComplete": True,
         "sink": requests.event, "inputParameters": {"orderId": "${workflow.input.orderId}"}},
        {"name": "after", "taskReferenceName": "after_ref", "type": "HUMAN",
         "inputParameters": {"approvedBy": "${notify_ref.output.approvedBy}"}},
    ]})
    handler(requests.event, [start_b(b.name)])
    handler(replies.event, [{"action": "complete_task", "complete_task": {
        "taskId": "${taskId}", "output": {"approvedBy": "${approvedBy}"}}}])

    a_id = BuiltinEngine().start_workflow(a.name, input={"orderId": 9})
    notify = Task.objects.get(workflow_id=a_id, reference_task_name="notify_ref")
    assert notify.status == "IN_PROGRESS"  # handed over, and waiting for the outside world

    listener = Listener()
    consume_until(listener, lambda: Task.objects.filter(pk=notify.pk, status="COMPLETED").exists())
    listener.close()
    notify.refresh_from_db()
    assert notify.output["approvedBy"] == "ada" and notify.output["event_produced"] == requests.event
    assert Task.objects.get(workflow_id=a_id, reference_task_name="after_ref").input == {"approvedBy": "ada"}
    workflow_b = Workflow.objects.get(name=b.name)
    assert workflow_b.trigger["messageId"] == notify.id and workflow_b.status == "COMPLETED"
    reply_task = Task.objects.get(workflow=workflow_b)
    completion = ActionExecution.objects.get(message_id=reply_task.id)
    assert completion.action == "complete_task" and completion.output["taskId"] == notify.id
    assert notify.trigger["messageId"] == reply_task.id


@pytest.mark.parametrize("kind", ["sqs", "amqp_queue"])
def test_a_relay_dying_between_publishing_and_marking_sent_yields_a_duplicate_that_runs_nothing_twice(
        kind, make_config, providers):
    from django.utils import timezone

    from queues.outbox import claim

    b = register(one_task("HUMAN", ref="review_ref"))
    config = make_config(kind)
    a = register(one_task("EVENT", ref="notify_ref", sink=config.event,
                          inputParameters={"orderId": "${workflow.input.orderId}"}))
    handler(config.event, [start_b(b.name)])
    a_id = BuiltinEngine().start_workflow(a.name, input={"orderId": 5})
    task_id = Task.objects.get(workflow_id=a_id).id

    # The first relay claims the row and publishes it, then dies before marking it SENT...
    (row,) = claim(10)
    providers(config.spec()).publish(json.dumps(row.payload), message_id=row.message_id)
    OutboxMessage.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())  # ...and its claim runs out.

    listener = Listener()
    consume_until(listener, lambda: OutboxMessage.objects.filter(pk=row.pk, status="SENT").exists() and
                  ActionExecution.objects.exclude(duplicate_of=None).exists())
    listener.close()
    assert OutboxMessage.objects.get(pk=row.pk).attempts == 2  # published twice, same message id
    assert Workflow.objects.filter(name=b.name).count() == 1
    original = ActionExecution.objects.get(message_id=task_id, duplicate_of=None)
    duplicate = ActionExecution.objects.exclude(duplicate_of=None).get()
    assert duplicate.duplicate_of == original and duplicate.message_id == task_id
