import json

import pytest

from workflows.event_task import UnknownSink, event_output, event_payload, resolve_sink


@pytest.mark.parametrize(
    ("sink", "expected"),
    [
        ("conductor", "conductor:shipping_workflow:notify_ref"),
        ("conductor:signed", "conductor:shipping_workflow:signed"),
        ("sqs:shipping_events", "sqs:shipping_events"),
        ("sqs:https://sqs.eu-west-1.amazonaws.com/123/q", "sqs:https://sqs.eu-west-1.amazonaws.com/123/q"),
        ("amqp_exchange:orders?routingKey=a.b", "amqp_exchange:orders?routingKey=a.b"),
        ("nats:orders.signed", "nats:orders.signed"),
    ],
)
def test_it_resolves_sinks_the_way_conductor_does(sink, expected):
    assert resolve_sink(sink, "shipping_workflow", "notify_ref") == expected


@pytest.mark.parametrize("sink", ["kafka:orders", "orders", "sqs:", ""])
def test_it_refuses_a_sink_it_cannot_publish_to_naming_it(sink):
    with pytest.raises(UnknownSink) as error:
        resolve_sink(sink, "shipping_workflow", "notify_ref")
    assert repr(sink) in str(error.value)


def test_it_builds_the_output_from_the_task_input_and_the_workflow_and_publishes_it_without_nulls():
    task_input = {"orderId": 7, "address": {"city": "Oslo"}, "sink": "conductor", "asyncComplete": False}
    output = event_output(task_input, workflow_id="wf-1", workflow_name="shipping_workflow", workflow_version=2,
                          correlation_id=None, task_to_domain=None, event="conductor:shipping_workflow:notify_ref")
    assert output == {
        "orderId": 7, "address": {"city": "Oslo"}, "sink": "conductor", "asyncComplete": False,
        "workflowInstanceId": "wf-1", "workflowType": "shipping_workflow", "workflowVersion": 2,
        "correlationId": None, "taskToDomain": {}, "event_produced": "conductor:shipping_workflow:notify_ref",
    }
    assert event_payload(output) == {key: value for key, value in output.items() if key != "correlationId"}
    assert task_input == {"orderId": 7, "address": {"city": "Oslo"}, "sink": "conductor", "asyncComplete": False}


@pytest.mark.django_db
def test_an_event_task_publishes_to_the_internal_queue_and_completes():
    from queues.models import InternalMessage
    from workflows.builtin import BuiltinEngine
    from workflows.models import Task, Workflow

    from .conftest import one_task, register

    definition = register(one_task("EVENT", ref="notify_ref", sink="conductor",
                                   inputParameters={"orderId": "${workflow.input.orderId}"}))
    workflow_id = BuiltinEngine().start_workflow(definition.name, input={"orderId": 42}, correlation_id="c-9")
    task = Task.objects.get(workflow_id=workflow_id)
    assert task.status == "COMPLETED" and task.output["event_produced"] == f"conductor:{definition.name}:notify_ref"
    message = InternalMessage.objects.get()
    assert message.queue == f"{definition.name}:notify_ref" and message.message_id == task.id
    assert json.loads(message.body) == {
        "orderId": 42, "sink": "conductor", "asyncComplete": False, "workflowInstanceId": workflow_id,
        "workflowType": definition.name, "workflowVersion": 1, "correlationId": "c-9", "taskToDomain": {},
        "event_produced": f"conductor:{definition.name}:notify_ref",
    }
    assert Workflow.objects.get(pk=workflow_id).status == "COMPLETED"
