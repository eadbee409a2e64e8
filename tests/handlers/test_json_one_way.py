"""NaN and Infinity are not JSON anywhere: what a condition sees is what the records store. And JSON typed
into any admin form, however deep or odd, is a form error rather than a 500."""

import json

import pytest
from django.urls import reverse

from handlers.listener import Listener
from handlers.models import ActionExecution, EventHandler
from handlers.payload import expand_inline_json
from queues.models import InternalMessage, QuarantinedMessage, QueueConfig, ReceivedMessage
from queues.publish import publish_raw
from workflows.models import WorkflowDefinition

from ..workflows.conftest import shipping_definition
from .seeds import START_SHIPPING
from .test_dispatch import dispatch, handler, message

Outcome = ReceivedMessage.Outcome
DEEP = "[" * 100_000 + "]" * 100_000  # deeper than Python's json reads (RecursionError)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_body_with_nan_is_unreadable_and_quarantined_with_its_reason_while_its_batch_goes_on(make_config,
                                                                                                 constant):
    config = make_config("conductor")
    handler({**START_SHIPPING, "condition": "$.a != null"}, event=config.event)
    publish_raw(config.event, f'{{"a": {constant}}}', message_id="m-nan")
    publish_raw(config.event, '{"b": 1}', message_id="m-plain")

    assert Listener().run_once(wait=0) == 2

    nan = ReceivedMessage.objects.get(message_id="m-nan")
    assert (nan.outcome, nan.payload, nan.raw_body) == (Outcome.QUARANTINED, None, f'{{"a": {constant}}}')
    kept = QuarantinedMessage.objects.get()
    assert kept.message_id == "m-nan" and kept.reason == QuarantinedMessage.Reason.UNREADABLE
    assert f"{constant.lstrip('-')} is not a JSON value" in kept.last_error
    plain = ReceivedMessage.objects.get(message_id="m-plain")
    assert plain.outcome == Outcome.ACKNOWLEDGED
    assert ActionExecution.objects.get().message_id == "m-plain"  # its condition ran: false, SKIPPED
    assert not InternalMessage.objects.exists()


@pytest.mark.django_db
def test_inline_json_holding_nan_stays_the_string_the_condition_and_the_record_both_see():
    payload = {"data": '{"a": NaN}'}
    assert expand_inline_json(payload) == payload
    handler({**START_SHIPPING, "condition": "typeof $.data == 'string'", "actions": [
        {"action": "complete_task", "expandInlineJSON": True,
         "complete_task": {"workflowId": "w-1", "taskRefName": "ref", "output": {"data": "${data}"}}},
    ]}, event="conductor:inline")
    dispatch("conductor:inline", message(payload))
    execution = ActionExecution.objects.get()
    assert execution.index == 0  # the condition matched: it saw a string
    assert execution.input["output"] == {"data": '{"a": NaN}'}


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/event", "/api/eventhub/queues/publish", "/api/eventhub/handlers/dry-run"])
def test_the_api_refuses_nan_with_a_400(api, path):
    body = '{"name": "x", "event": "conductor:x", "payload": {"a": NaN}, "actions": [{"a": Infinity}]}'
    response = api.post(path, data=body, content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["message"]


@pytest.fixture
def staff(admin_client):
    return admin_client


def handler_form(actions: str) -> dict:
    return {"name": "h", "event": "conductor:h", "active": "on", "description": "", "condition": "",
            "evaluator_type": "", "actions": actions, "_save": "Save"}


@pytest.mark.django_db
@pytest.mark.parametrize(("typed", "error"), [
    ('[{"action": "start_workflow", "start_workflow": {"name": "w", "version": NaN}}]',
     "NaN is not a JSON value (JSON has no NaN or Infinity; send null or a number)."),
    (DEEP, "JSON nested more than 200 levels deep."),
])
def test_the_handler_form_refuses_nan_and_deep_json_and_keeps_what_was_typed(staff, typed, error):
    response = staff.post(reverse("admin:handlers_eventhandler_add"), handler_form(typed))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors["actions"] == [error]
    assert form["actions"].value() == typed
    assert not EventHandler.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("typed", ['{"a": -Infinity}', DEEP])
def test_the_dry_run_form_refuses_nan_and_deep_json(staff, typed):
    item = handler(START_SHIPPING)
    response = staff.post(reverse("admin:handlers_eventhandler_dry_run", args=[item.pk]),
                          {"payload": typed, "message_id": ""})
    assert response.status_code == 200
    assert response.context["form"].errors["payload"]
    assert response.context["result"] is None


@pytest.mark.django_db
@pytest.mark.parametrize("typed", ['{"status": NaN}', DEEP])
def test_the_publish_form_refuses_nan_and_deep_json(staff, typed):
    queue = QueueConfig(kind="conductor", name="admin_test")
    queue.save()
    response = staff.post(reverse("admin:queues_queueconfig_changelist"), {
        "action": "publish_test_message", "_selected_action": [queue.pk], "apply": "Publish",
        "payload": typed, "message_id": ""})
    assert response.status_code == 200 and response.context["form"].errors["payload"]
    assert not InternalMessage.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("typed", [json.dumps(shipping_definition()).replace('"version": 1', '"version": NaN'), DEEP])
def test_the_workflow_definition_form_refuses_nan_and_deep_json(staff, typed):
    response = staff.post(reverse("admin:workflows_workflowdefinition_add"), {"definition": typed})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["definition"]
    assert not WorkflowDefinition.objects.exists()
