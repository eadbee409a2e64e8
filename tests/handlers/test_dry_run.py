import json

import pytest
from django.urls import reverse

from handlers.dryrun import dry_run
from handlers.models import ActionExecution, EventHandler
from queues.models import ReceivedMessage
from workflows.models import Workflow

from ..workflows.conftest import ADDRESS, register, shipping_definition
from .seeds import COMPLETE_DOCUSIGN, START_SHIPPING
from .test_dispatch import handler

pytestmark = pytest.mark.django_db


@pytest.fixture
def shipping():
    return register(shipping_definition())
PAYLOAD = {"customer": {"name": ADDRESS["name"], "address": ADDRESS}}


def nothing_written() -> bool:
    return not (ActionExecution.objects.exists() or ReceivedMessage.objects.exists() or Workflow.objects.exists())


def test_it_resolves_each_action_with_the_event_keys_and_runs_nothing(shipping):
    item = handler(START_SHIPPING, event="conductor:shipping_start", condition="$.customer.address.country == 'GB'")
    result = dry_run(item, PAYLOAD)
    assert (result.matched, result.value, result.error) == (True, "true", None)
    [action] = result.actions
    assert action.action == "start_workflow" and action.wouldRun
    assert action.input["input"] == {
        "customerName": ADDRESS["name"],
        "address": {key: ADDRESS[key] for key in ("street", "city", "zip")},
        "conductor.event.messageId": "dry-run", "conductor.event.name": "conductor:shipping_start",
    }
    assert action.input["name"] == "shipping_workflow"
    assert nothing_written()
    item.refresh_from_db()
    assert item.actions[0]["start_workflow"]["input"]["customerName"] == "${customer.name}"


def test_a_false_condition_says_what_it_returned_and_that_nothing_would_run(shipping):
    item = handler(START_SHIPPING, event="conductor:shipping_start", condition="$.customer.address.country")
    result = dry_run(item, PAYLOAD)
    assert (result.matched, result.value) == (False, '"GB"')
    assert not result.actions[0].wouldRun


def test_a_failing_condition_gives_its_error():
    item = handler(START_SHIPPING, event="conductor:shipping_start", condition="$.a.b.c")
    result = dry_run(item, {})
    assert not result.matched and "TypeError" in result.error
    assert nothing_written()


def test_task_actions_get_the_event_keys_in_their_output_and_input_is_a_synonym():
    item = handler(COMPLETE_DOCUSIGN, event="conductor:docusign_completed", actions=[{
        "action": "complete_task", "complete_task": {
            "workflowId": "${workflowInstanceId}", "taskRefName": "human_docusign_step_ref",
            "input": {"signedBy": "${signer.email}"}}}])
    [action] = dry_run(item, {"workflowInstanceId": "wf-1", "signer": {"email": "a@b.c"}}, message_id="m-7").actions
    assert action.input == {
        "workflowId": "wf-1", "taskRefName": "human_docusign_step_ref",
        "output": {"workflowId": "wf-1", "taskRefName": "human_docusign_step_ref", "taskId": None,
                   "signedBy": "a@b.c", "conductor.event.messageId": "m-7",
                   "conductor.event.name": "conductor:docusign_completed"},
    }


def test_inline_json_is_expanded_for_the_condition_and_for_actions_that_ask():
    item = EventHandler(name="unsaved", event="conductor:orders", condition="$.order.total > 10", actions=[
        {"action": "terminate_workflow", "expandInlineJSON": True,
         "terminate_workflow": {"workflowId": "${order.id}", "terminationReason": "${order.total}"}},
        {"action": "terminate_workflow", "terminate_workflow": {"workflowId": "${order.id}"}},
    ])
    result = dry_run(item, {"order": json.dumps({"id": "wf-9", "total": 12})})
    assert result.matched
    assert result.actions[0].input == {"workflowId": "wf-9", "terminationReason": 12}
    assert result.actions[1].input == {"workflowId": None}
    assert not EventHandler.objects.exists()


def test_a_value_param_condition_on_a_payload_that_is_not_an_object_shows_its_error():
    item = EventHandler(name="unsaved", event="conductor:orders", condition="ready", evaluator_type="value-param",
                        actions=[{"action": "terminate_workflow", "terminate_workflow": {"workflowId": "${id}"}}])
    result = dry_run(item, ["ready"])
    assert not result.matched and result.error == "value-param needs a JSON object as payload, not an array"
    assert not result.actions[0].wouldRun


def test_a_shadow_handlers_dry_run_says_it_is_in_shadow_mode_and_would_run_nothing(shipping, admin_client, api):
    item = handler(START_SHIPPING, event="conductor:shipping_start", mode="shadow")
    assert dry_run(item, PAYLOAD).mode == "shadow" and dry_run(item, PAYLOAD).as_dict()["mode"] == "shadow"
    body = api.post("/api/eventhub/handlers/dry-run", {"name": item.name, "payload": PAYLOAD}, format="json").json()
    assert (body["mode"], body["matched"]) == ("shadow", True)
    url = reverse("admin:handlers_eventhandler_dry_run", args=[item.pk])
    page = admin_client.post(url, {"payload": json.dumps(PAYLOAD), "message_id": ""}).content.decode()
    result = page.split('id="dry-run-result"')[1]
    assert 'id="dry-run-shadow"' in page and "every action would run" not in result
    assert "in shadow mode: it would record each action as SHADOW and run nothing" in result
    live = handler(START_SHIPPING, name="live", event="conductor:shipping_start")
    assert dry_run(live, PAYLOAD).mode == "live"
    url = reverse("admin:handlers_eventhandler_dry_run", args=[live.pk])
    page = admin_client.post(url, {"payload": json.dumps(PAYLOAD), "message_id": ""}).content.decode()
    assert "every action would run" in page and 'id="dry-run-shadow"' not in page
