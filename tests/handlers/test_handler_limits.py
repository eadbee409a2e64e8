"""A handler that could not be evaluated is refused when saved, naming the field; one that still fails at
run time (saved before the limits) costs a FAILED record for itself alone, never its event's messages."""

import json

import pytest
from django.test import override_settings

from handlers.dryrun import dry_run
from handlers.listener import Listener
from handlers.models import ActionExecution, EventHandler
from queues.models import QuarantinedMessage, ReceivedMessage
from queues.publish import publish
from workflows.models import Workflow

from ..workflows.conftest import register, shipping_definition
from .seeds import START_SHIPPING
from .test_dispatch import handler

Outcome = ReceivedMessage.Outcome


def nested(depth: int, inner: str = "customer.name") -> str:
    """`${${...${inner}...}}`, `${` nested `depth` deep."""
    return "${" * depth + inner + "}" * depth


def post(api, body, path="/api/event"):
    return api.post(path, data=json.dumps(body), content_type="application/json")


def problems_of(response) -> dict[str, str]:
    assert response.status_code == 400, response.content
    return {item["path"]: item["message"] for item in response.json()["validationErrors"]}


def shipping_with(body: dict, kind: str = "start_workflow") -> dict:
    return {**START_SHIPPING, "actions": [{"action": kind, kind: body}]}


@pytest.mark.django_db
@pytest.mark.parametrize(("kind", "body", "path"), [
    ("start_workflow", {"name": "shipping_workflow", "input": {"who": nested(2000)}},
     "actions[0].start_workflow.input.who"),
    ("start_workflow", {"name": "shipping_workflow", "correlationId": nested(9)},
     "actions[0].start_workflow.correlationId"),
    ("terminate_workflow", {"workflowId": nested(50)}, "actions[0].terminate_workflow.workflowId"),
    ("complete_task", {"workflowId": "w", "taskRefName": "r", "output": {"a b": [nested(9)]}},
     'actions[0].complete_task.output["a b"][0]'),
])
def test_it_refuses_placeholders_nested_too_deep_in_any_field_with_its_path(api, kind, body, path):
    found = problems_of(post(api, shipping_with(body, kind)))
    assert path in found and set(found) <= {path, "actions"}  # (2,000 nested are also 2,000 placeholders)
    assert "nests `${...}`" in found[path] and "at most 8 (TEMPLATE_MAX_NESTING)" in found[path]
    assert not EventHandler.objects.exists()


@pytest.mark.django_db
def test_it_accepts_placeholders_nested_up_to_the_limit(api):
    body = {"name": "shipping_workflow", "input": {"who": nested(8)}, "correlationId": "$${literal}"}
    assert post(api, shipping_with(body)).status_code == 200


@pytest.mark.django_db
@override_settings(TEMPLATE_MAX_LENGTH=100, TEMPLATE_MAX_PLACEHOLDERS=5, CONDITION_MAX_LENGTH=50)
def test_it_refuses_a_long_template_too_many_placeholders_and_a_long_condition(api):
    long_template = "${customer.name}" + "x" * 100
    body = {"name": "shipping_workflow", "input": {"a": long_template, "b": ["${b}"] * 5}}
    found = problems_of(post(api, {**shipping_with(body), "condition": "$.a == 1 || " * 5 + "true"}))
    assert found == {
        "actions[0].start_workflow.input.a": "is a template of 116 characters; at most 100 (TEMPLATE_MAX_LENGTH)",
        "actions": "holds 6 placeholders; at most 5 (TEMPLATE_MAX_PLACEHOLDERS)",
        "condition": "is 64 characters long; at most 50 (CONDITION_MAX_LENGTH)",
    }
    # A long string without placeholders is data, not a template.
    assert post(api, shipping_with({"name": "shipping_workflow", "input": {"a": "x" * 500}})).status_code == 200


@pytest.mark.django_db
def test_it_refuses_action_json_nested_deeper_than_a_record_of_its_result_could_hold(api):
    deep: object = "${customer}"
    for _ in range(40):
        deep = {"d": deep}
    found = problems_of(post(api, shipping_with({"name": "shipping_workflow", "input": deep})))
    [(path, message)] = found.items()
    assert path.startswith("actions[0].start_workflow.input.d.d.") and message == "nests JSON more than 32 levels deep"


@pytest.mark.django_db
def test_a_workflow_definition_is_refused_for_the_same_limits_in_its_sink_and_inputs(api):
    definition = {**shipping_definition("limits"), "tasks": [
        {"name": "notify", "taskReferenceName": "notify_ref", "type": "EVENT",
         "sink": f"sqs:{nested(9, 'workflow.input.queue')}"},
        {"name": "wait", "taskReferenceName": "wait_ref", "type": "HUMAN",
         "inputParameters": {"who": nested(9, "workflow.input.who")}},
    ]}
    found = problems_of(api.post("/api/metadata/workflow", definition, format="json"))
    assert set(found) == {"tasks[0].sink", "tasks[1].inputParameters.who"}


@pytest.mark.django_db
def test_dry_run_refuses_an_unsaved_handler_beyond_the_limits_with_a_400(api):
    body = {"handler": shipping_with({"name": "shipping_workflow", "input": {"who": nested(1000)}}),
            "payload": {"customer": {"name": "Ada"}}}
    found = problems_of(post(api, body, "/api/eventhub/handlers/dry-run"))
    assert "nests `${...}` 1000 deep" in found["handler.actions[0].start_workflow.input.who"]


def poisoned(name: str, event: str) -> EventHandler:
    """A handler saved before the limits existed: written past the model's validation."""
    return EventHandler.objects.create(
        name=name, event=event, active=True,
        actions=[{"action": "start_workflow", "start_workflow": {"name": "shipping_workflow",
                                                                 "input": {"who": nested(2000)}}}],
    )


@pytest.mark.django_db
def test_dry_run_of_a_saved_handler_that_cannot_be_resolved_names_the_cause(api):
    poisoned("poisoned", "conductor:orders")
    response = post(api, {"name": "poisoned", "payload": {"customer": {"name": "Ada"}}},
                    "/api/eventhub/handlers/dry-run")
    assert response.status_code == 200
    [action] = response.json()["actions"]
    assert action["input"] is None
    assert action["error"].startswith("its input could not be built: the template nests too deeply")
    assert dry_run(EventHandler.objects.get(), {}).actions[0].error == action["error"]


@pytest.mark.django_db(transaction=True)
def test_a_handler_that_cannot_be_resolved_fails_alone_and_the_message_is_acknowledged(make_config):
    config = make_config("conductor")
    register(shipping_definition())
    poisoned("a_poisoned", config.event)
    handler(START_SHIPPING, event=config.event)
    publish(config.event, {"customer": {"name": "Ada", "address": {"street": "s", "city": "c", "zip": "z"}}},
            message_id="m-1")

    assert Listener().run_once(wait=0) == 1

    record = ReceivedMessage.objects.get()
    assert (record.outcome, record.delivery_count) == (Outcome.ACKNOWLEDGED, 1)
    failed = ActionExecution.objects.get(handler_name="a_poisoned")
    assert failed.status == "FAILED" and failed.input is None
    assert failed.error.startswith("its input could not be built: the template nests too deeply")
    assert ActionExecution.objects.get(handler_name=START_SHIPPING["name"]).status == "COMPLETED"
    assert Workflow.objects.count() == 1
    assert not QuarantinedMessage.objects.exists()
