"""The EVENT task hands its message to the outbox in the task's own transaction; `${...}` in the sink;
a sink that cannot work fails the task, naming it; asyncComplete waits for the outside world."""

import pytest
from django.db import transaction

from queues.models import InternalMessage, OutboxMessage
from workflows.builtin import BuiltinEngine
from workflows.models import Task, Workflow

from .conftest import one_task, register

pytestmark = pytest.mark.django_db


def run_event(sink: str, workflow_input: dict | None = None, **extra) -> Task:
    definition = register(one_task("EVENT", ref="notify_ref", sink=sink,
                                   inputParameters={"orderId": "${workflow.input.orderId}"}, **extra))
    workflow_id = BuiltinEngine().start_workflow(definition.name, input={"orderId": 3, **(workflow_input or {})},
                                                 correlation_id="order-3")
    return Task.objects.get(workflow_id=workflow_id)


def test_it_hands_the_message_to_the_outbox_and_completes():
    task = run_event("sqs:orders_signed")
    assert task.status == "COMPLETED" and task.output["event_produced"] == "sqs:orders_signed"
    row = OutboxMessage.objects.get()
    assert (row.event, row.message_id, row.status, row.attempts) == ("sqs:orders_signed", task.id, "PENDING", 0)
    assert row.payload == {"orderId": 3, "sink": "sqs:orders_signed", "asyncComplete": False,
                           "workflowInstanceId": task.workflow_id, "workflowType": task.workflow.name,
                           "workflowVersion": 1, "correlationId": "order-3", "taskToDomain": {},
                           "event_produced": "sqs:orders_signed"}
    assert row.payload == task.output
    assert Workflow.objects.get(pk=task.workflow_id).status == "COMPLETED"


def test_nothing_is_handed_over_when_the_tasks_transaction_rolls_back():
    definition = register(one_task("EVENT", ref="notify_ref", sink="sqs:orders_signed"))
    with pytest.raises(RuntimeError), transaction.atomic():
        BuiltinEngine().start_workflow(definition.name, input={})
        raise RuntimeError("the caller failed after the task ran")
    assert not Task.objects.exists() and not OutboxMessage.objects.exists()


def test_the_internal_queue_gets_its_row_in_the_same_transaction_without_the_outbox():
    task = run_event("conductor:signed")
    message = InternalMessage.objects.get()
    assert message.queue == f"{task.workflow.name}:signed" and message.message_id == task.id
    assert not OutboxMessage.objects.exists()


@pytest.mark.parametrize(("sink", "event"), [
    ("sqs:${workflow.input.queue}", "sqs:orders_eu"),
    ("nats:orders.${workflow.input.region}.signed", "nats:orders.eu.signed"),
    ("amqp_exchange:orders?exchangeType=topic&routingKey=${workflow.input.region}", "amqp_exchange:orders?"
                                                                                     "exchangeType=topic&routingKey=eu"),
])
def test_it_resolves_parameters_in_the_sink(sink, event):
    task = run_event(sink, {"queue": "orders_eu", "region": "eu"})
    assert task.status == "COMPLETED" and task.output["event_produced"] == event
    assert OutboxMessage.objects.get().event == event


@pytest.mark.parametrize(("sink", "why"), [
    ("sqs:${workflow.input.missing}", "${workflow.input.missing} resolved to null"),
    ("${workflow.input.nested}", "not an event string"),
    ("kafka:orders", "unknown queue kind 'kafka'"),
    ("sqs:no spaces allowed", "SQS queue name"),
    ("amqp_exchange:orders?exchangeType=fanout&durable=maybe", "durable"),
    ("nats:orders.>", "NATS subject"),
])
def test_a_sink_it_cannot_publish_to_fails_the_task_naming_the_sink(sink, why):
    task = run_event(sink, {"nested": {"a": 1}})
    assert task.status == "FAILED"
    assert sink in task.reason_for_incompletion and why in task.reason_for_incompletion
    assert Workflow.objects.get(pk=task.workflow_id).status == "FAILED"
    assert not OutboxMessage.objects.exists()


def test_an_async_event_task_stays_in_progress_until_completed_from_outside():
    task = run_event("sqs:orders_signed", asyncComplete=True)
    assert task.status == "IN_PROGRESS" and task.output["event_produced"] == "sqs:orders_signed"
    assert task.input["asyncComplete"] is True and task.output["asyncComplete"] is True
    assert OutboxMessage.objects.get().message_id == task.id
    assert Workflow.objects.get(pk=task.workflow_id).status == "RUNNING"
    published = dict(task.output)
    BuiltinEngine().complete_task(task_id=task.id, output={"ack": True})
    task.refresh_from_db()
    assert task.status == "COMPLETED" and task.output == {**published, "ack": True}
    assert Workflow.objects.get(pk=task.workflow_id).status == "COMPLETED"


def test_its_input_carries_the_sink_and_async_complete_and_its_output_is_what_it_publishes():
    definition = register(one_task("EVENT", ref="notify_ref", sink="sqs:orders_${workflow.input.region}",
                                   inputParameters={"orderId": "${workflow.input.orderId}", "note": None}))
    workflow_id = BuiltinEngine().start_workflow(definition.name, input={"orderId": 3, "region": "eu"},
                                                 task_to_domain={"*": "blue"})
    task = Task.objects.get(workflow_id=workflow_id)
    assert task.input == {"orderId": 3, "note": None, "sink": "sqs:orders_eu", "asyncComplete": False}
    assert task.status == "COMPLETED"
    assert task.output == {
        **task.input, "workflowInstanceId": workflow_id, "workflowType": definition.name, "workflowVersion": 1,
        "correlationId": None, "taskToDomain": {"*": "blue"}, "event_produced": "sqs:orders_eu",
    }
    # The message is the whole output, without the keys whose value is null.
    row = OutboxMessage.objects.get()
    assert row.payload == {key: value for key, value in task.output.items() if key not in ("note", "correlationId")}


@pytest.mark.parametrize("sink", ["conductorx", "conductor:", "kafka:orders", "orders"])
def test_a_sink_that_names_no_queue_fails_the_task_with_status_failed_naming_it(sink):
    task = run_event(sink)
    assert task.status == "FAILED" and repr(sink) in task.reason_for_incompletion
    assert Workflow.objects.get(pk=task.workflow_id).status == "FAILED"
    assert not OutboxMessage.objects.exists() and not InternalMessage.objects.exists()


def test_a_broker_that_is_down_does_not_fail_the_task_once_its_message_is_in_the_outbox(settings):
    settings.AMQP_URL = "amqp://guest:guest@127.0.0.1:1/"  # nothing listens there
    task = run_event("amqp_queue:orders_signed")
    assert task.status == "COMPLETED"
    assert OutboxMessage.objects.get().status == "PENDING"
