import pytest
from django.core.exceptions import ValidationError

from eventhub.lib.api.errors import problems_of
from handlers.models import CONDUCTOR_NAMES, EventHandler

from .seeds import SEEDS, START_SHIPPING

pytestmark = pytest.mark.django_db


def problems(data: dict) -> dict[str, str]:
    handler = EventHandler()
    try:
        handler.apply_conductor(data)
        handler.full_clean(validate_unique=False)
    except ValidationError as exc:
        return dict(problems_of(exc, CONDUCTOR_NAMES))
    return {}


def with_action(action: dict) -> dict:
    return {**START_SHIPPING, "actions": [action]}


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: s["name"])
def test_it_accepts_the_documented_handlers(seed):
    assert problems(seed) == {}


@pytest.mark.parametrize("event", ["sqs:q", "conductor:wf:ref", "amqp_queue:q?durable=true",
                                   "amqp_exchange:x?exchangeType=topic&routingKey=a.b", "nats:orders.created",
                                   "sqs:arn:aws:sqs:us-east-1:123456789012:orders"])
def test_it_accepts_every_known_queue_kind(event):
    assert problems({**START_SHIPPING, "event": event}) == {}


@pytest.mark.parametrize("event,fragment", [("kafka:orders", "unknown queue kind 'kafka'"),
                                            ("orders", "unknown queue kind 'orders'"),
                                            ("sqs:", "no queue name")])
def test_it_rejects_an_event_without_a_known_kind_and_a_queue(event, fragment):
    assert fragment in problems({**START_SHIPPING, "event": event})["event"]


def test_it_requires_name_event_and_actions():
    found = problems({"name": "", "event": "", "actions": []})
    assert set(found) == {"name", "event", "actions"}


def test_it_names_the_valid_actions_when_one_is_unknown():
    message = problems(with_action({"action": "send_email"}))["actions[0].action"]
    assert "start_workflow" in message and "update_workflow_variables" in message


def test_start_workflow_needs_a_workflow_name():
    assert "actions[0].start_workflow.name" in problems(with_action({"action": "start_workflow",
                                                                     "start_workflow": {"input": {}}}))


def test_an_action_needs_its_body():
    assert "actions[0].fail_task" in problems(with_action({"action": "fail_task", "complete_task": {"taskId": "1"}}))


@pytest.mark.parametrize("body,ok", [({"taskId": "t1"}, True), ({"workflowId": "w", "taskRefName": "r"}, True),
                                     ({"workflowId": "w"}, False), ({"taskRefName": "r"}, False), ({}, False)])
def test_task_actions_need_a_task_id_or_a_workflow_and_reference(body, ok):
    found = problems(with_action({"action": "complete_task", "complete_task": body}))
    assert (found == {}) is ok


def test_terminate_and_update_variables_need_a_workflow():
    assert "actions[0].terminate_workflow.workflowId" in problems(
        with_action({"action": "terminate_workflow", "terminate_workflow": {"terminationReason": "x"}}))
    found = problems(with_action({"action": "update_workflow_variables",
                                  "update_workflow_variables": {"appendArray": "yes"}}))
    assert set(found) == {"actions[0].update_workflow_variables.workflowId",
                          "actions[0].update_workflow_variables.variables",
                          "actions[0].update_workflow_variables.appendArray"}


@pytest.mark.parametrize("evaluator", [None, "", "javascript", "graaljs", "value-param"])
def test_it_accepts_the_known_evaluators(evaluator):
    assert problems({**START_SHIPPING, "evaluatorType": evaluator, "condition": "status"}) == {}


def test_it_rejects_an_unknown_evaluator():
    assert "value-param" in problems({**START_SHIPPING, "evaluatorType": "jq"})["evaluatorType"]


@pytest.mark.parametrize("condition", ["$.status == 'signed'", "$.amount > 10 && $.currency === 'EUR'",
                                       "var x = $.a; x > 1", ""])
def test_it_accepts_conditions_that_compile(condition):
    assert problems({**START_SHIPPING, "condition": condition}) == {}


def test_it_compiles_a_condition_without_running_it():
    # An endless loop compiles; it would only time out when evaluated.
    assert problems({**START_SHIPPING, "condition": "while (true) {}"}) == {}


@pytest.mark.parametrize("condition", ["$.status ==", "function (", "}"])
def test_it_rejects_conditions_that_do_not_compile(condition):
    assert "does not compile as JavaScript" in problems({**START_SHIPPING, "condition": condition})["condition"]


def test_it_rejects_fields_of_the_wrong_type_with_their_paths():
    found = problems({**START_SHIPPING, "name": 5, "active": "yes", "condition": ["x"]})
    assert set(found) == {"name", "active", "condition"}


def test_it_rejects_a_name_that_is_too_long():
    assert "name" in problems({**START_SHIPPING, "name": "x" * 256})


def test_it_rejects_an_event_whose_queue_cannot_exist():
    assert "cannot be consumed as a queue" in problems({**START_SHIPPING, "event": "sqs:has spaces!"})["event"]
