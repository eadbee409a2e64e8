"""Executions and received messages in the admin: read-only lists, the "why" panel, replay, dry-run, links."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from handlers.dispatch import dispatch_batch
from handlers.models import ActionExecution, EventHandler
from queues.configs import ensure_config
from queues.models import ReceivedMessage
from workflows.models import Workflow

from ..conftest import make_user
from ..workflows.conftest import ADDRESS, register, shipping_definition
from .seeds import START_SHIPPING
from .test_dispatch import handler, message

pytestmark = pytest.mark.django_db
EVENT = "conductor:shipping_start"
CUSTOMER = {"customer": {"name": ADDRESS["name"], "address": ADDRESS}}
EXECUTIONS = reverse("admin:handlers_actionexecution_changelist")
MESSAGES = reverse("admin:queues_receivedmessage_changelist")


@pytest.fixture
def shipping():
    return register(shipping_definition())


def deliver(*payloads, event: str = EVENT, first: int = 1) -> list[ReceivedMessage]:
    batch = [message(p, message_id=f"m-{first + n}") for n, p in enumerate(payloads)]
    return [decision.record for decision in dispatch_batch(ensure_config(event), batch)]


def page(client, url: str, **params) -> str:
    response = client.get(url, params)
    assert response.status_code == 200
    return response.content.decode()


def test_the_execution_list_shows_links_and_filters_in_a_constant_number_of_queries(admin_client, shipping):
    handler(START_SHIPPING, event=EVENT)
    deliver(CUSTOMER)
    with CaptureQueriesContext(connection) as few:
        page(admin_client, EXECUTIONS)
    deliver(*[CUSTOMER] * 5, first=10)
    with CaptureQueriesContext(connection) as many:
        html = page(admin_client, EXECUTIONS)
    assert len(many) == len(few)  # no query per row
    workflow = Workflow.objects.first()
    assert reverse("admin:workflows_workflow_change", args=[workflow.pk]) in html
    assert reverse("admin:handlers_eventhandler_change", args=[EventHandler.objects.get().pk]) in html
    assert "m-1_0" in page(admin_client, EXECUTIONS, q="m-1") and "m-10_0" not in page(admin_client, EXECUTIONS,
                                                                                          q="m-1")
    assert "m-1" not in page(admin_client, EXECUTIONS, q=workflow.pk).replace(workflow.trigger["messageId"], "")
    for params in ({"status__exact": "COMPLETED"}, {"event": EVENT}, {"handler_name": "start_shipping_workflow"},
                   {"decision": "matched"}):
        assert "m-1_0" in page(admin_client, EXECUTIONS, **params), params
    assert "m-1_0" not in page(admin_client, EXECUTIONS, status__exact="FAILED")


def test_messages_filter_by_their_executions_status_and_handler(admin_client, shipping):
    handler(START_SHIPPING, event=EVENT, condition="$.customer.address.country == 'GB'")
    handler(START_SHIPPING, name="other_handler", event="conductor:other")
    deliver(CUSTOMER, {"customer": {"address": {"country": "FR"}}})
    deliver(CUSTOMER, event="conductor:other", first=3)

    def listed(**params) -> set[str]:
        html = page(admin_client, MESSAGES, **params)
        return {f"m-{n}" for n in range(1, 4) if f">m-{n}<" in html}

    assert listed() == {"m-1", "m-2", "m-3"}
    assert listed(execution_status="COMPLETED") == {"m-1", "m-3"}
    assert listed(execution_status="SKIPPED") == {"m-2"}
    assert listed(handler="start_shipping_workflow") == {"m-1", "m-2"}
    assert listed(handler="other_handler", execution_status="COMPLETED") == {"m-3"}
    assert listed(handler="other_handler", execution_status="SKIPPED") == set()


def test_executions_are_read_only(admin_client, shipping):
    handler(START_SHIPPING, event=EVENT)
    deliver(CUSTOMER)
    execution = ActionExecution.objects.get()
    url = reverse("admin:handlers_actionexecution_change", args=[execution.pk])
    html = page(admin_client, url)
    assert 'name="_save"' not in html and "Resolved input" in html and "customerName" in html
    assert admin_client.post(url, {}).status_code == 403
    assert admin_client.get(reverse("admin:handlers_actionexecution_add")).status_code == 403
    assert admin_client.get(reverse("admin:handlers_actionexecution_delete", args=[execution.pk])).status_code == 403


def test_the_message_page_shows_its_executions_and_why_it_did_nothing(admin_client, shipping):
    handler(START_SHIPPING, event=EVENT, condition="$.customer.address.country == 'FR'")
    handler(START_SHIPPING, event=EVENT, name="broken", condition="$.a.b.c")
    [record] = deliver(CUSTOMER)
    html = page(admin_client, reverse("admin:queues_receivedmessage_change", args=[record.pk]))
    assert "It did nothing" in html
    assert "start_shipping_workflow: its condition returned false, which is not true" in html
    assert "broken: its condition failed with an error" in html and "TypeError" in html
    assert ">m-1_0</a>" in html  # the inline rows link to the executions


def test_the_why_panel_names_a_missing_handler_duplicates_and_failures(admin_client, shipping):
    [nobody] = deliver({"x": 1}, event="conductor:nobody_listens")
    html = page(admin_client, reverse("admin:queues_receivedmessage_change", args=[nobody.pk]))
    assert "No handler listens on conductor:nobody_listens" in html
    handler(START_SHIPPING, event=EVENT)
    [first] = deliver(CUSTOMER)
    again = message(CUSTOMER, delivery_count=2, message_id="m-1")
    [decision] = dispatch_batch(ensure_config(EVENT), [again])
    html = page(admin_client, reverse("admin:queues_receivedmessage_change", args=[decision.record.pk]))
    assert "a duplicate delivery; the original execution m-1_0 had already COMPLETED" in html
    handler(START_SHIPPING, event="conductor:no_workflow", name="unknown_workflow", actions=[
        {"action": "start_workflow", "start_workflow": {"name": "no_such_workflow"}}])
    [failed] = deliver({"customer": {}}, event="conductor:no_workflow", first=5)
    html = page(admin_client, reverse("admin:queues_receivedmessage_change", args=[failed.pk]))
    assert "It did nothing" in html and "unknown_workflow, action 0 (start_workflow) failed:" in html
    assert "no_such_workflow" in html
    EventHandler.objects.filter(name="unknown_workflow").update(active=False)
    [inactive] = deliver({}, event="conductor:no_workflow", first=7)
    html = page(admin_client, reverse("admin:queues_receivedmessage_change", args=[inactive.pk]))
    assert "No active handler listens on conductor:no_workflow; inactive: unknown_workflow." in html


def test_the_why_panel_of_a_delivery_whose_actions_were_retried_later_points_there(admin_client, shipping):
    from .test_dispatch import _Down

    handler(START_SHIPPING, event=EVENT)
    handler(START_SHIPPING, event=EVENT, name="express_only", condition="$.express == true")
    first = message(CUSTOMER, message_id="m-1")
    [decision] = dispatch_batch(ensure_config(EVENT), [first], engine=_Down())
    ReceivedMessage.objects.filter(pk=decision.record.pk).update(outcome="RETURNED")  # as the listener settles it
    dispatch_batch(ensure_config(EVENT), [message(CUSTOMER, delivery_count=2, message_id="m-1")])
    html = page(admin_client, reverse("admin:queues_receivedmessage_change", args=[decision.record.pk]))
    # This delivery keeps the skipped handler's record; the retried action's record went on with delivery 2.
    assert "Its actions were tried again on a later delivery, where 1 action completed." in html
    assert "express_only: its condition returned" in html
    assert "On a later delivery (delivery 2, received" in html
    assert "start_shipping_workflow, action 0 (start_workflow) completed (workflow" in html
    assert "activated or created after it arrived" not in html


def test_messages_are_searched_by_message_id_and_workflow_id(admin_client, shipping):
    handler(START_SHIPPING, event=EVENT)
    deliver(CUSTOMER, CUSTOMER)
    workflow = Workflow.objects.get(trigger__messageId="m-2")
    html = page(admin_client, MESSAGES, q=workflow.pk)
    assert ">m-2<" in html and ">m-1<" not in html
    assert ">m-1<" in page(admin_client, MESSAGES, q="m-1")
    # And back: the workflow's page links to its message and its executions.
    workflow_page = page(admin_client, reverse("admin:workflows_workflow_change", args=[workflow.pk]))
    assert f"{MESSAGES}?q=m-2" in workflow_page and f"{EXECUTIONS}?q={workflow.pk}" in workflow_page


def test_replay_goes_through_a_form_with_a_reason_and_an_optional_edited_payload(admin_client, shipping):
    handler(START_SHIPPING, event=EVENT)
    [record] = deliver(CUSTOMER)
    form = admin_client.post(MESSAGES, {"action": "replay_selected", "_selected_action": [record.pk]})
    assert form.status_code == 200 and b"Replay messages" in form.content and b"Ada Lovelace" in form.content
    assert ReceivedMessage.objects.count() == 1
    refused = admin_client.post(MESSAGES, {"action": "replay_selected", "_selected_action": [record.pk],
                                           "apply": "1", "reason": "", "edited_payload": "{oops"})
    assert b"Not valid JSON" in refused.content and ReceivedMessage.objects.count() == 1
    edited = {"customer": {"name": "Grace Hopper", "address": ADDRESS}}
    done = admin_client.post(MESSAGES, {"action": "replay_selected", "_selected_action": [record.pk], "apply": "1",
                                        "reason": "wrong name", "edited_payload": json.dumps(edited)}, follow=True)
    assert b"Replayed as m-1:replay:1" in done.content
    replay = ReceivedMessage.objects.get(replay_of=record)
    assert (replay.replayed_by.username, replay.replay_reason, replay.payload) == ("admin", "wrong name", edited)
    assert Workflow.objects.filter(input__customerName="Grace Hopper").count() == 1
    html = page(admin_client, reverse("admin:queues_receivedmessage_change", args=[replay.pk]))
    assert "This delivery is a replay of message m-1 by admin" in html


def test_replay_takes_an_edit_from_1_to_true_as_an_edit(admin_client, shipping):
    # In Python {"express": 1} == {"express": True}: the edit must not be mistaken for the stored payload.
    handler(START_SHIPPING, event=EVENT, condition="$.express === true")
    [record] = deliver({**CUSTOMER, "express": 1})
    assert record.executions.get().status == "SKIPPED"  # its condition is false for 1
    admin_client.post(MESSAGES, {"action": "replay_selected", "_selected_action": [record.pk], "apply": "1",
                                 "reason": "express", "edited_payload": json.dumps({**CUSTOMER, "express": True})})
    replay = ReceivedMessage.objects.get(replay_of=record)
    assert replay.payload["express"] is True
    assert replay.executions.get().status == "COMPLETED"


def test_replay_refuses_an_edited_payload_of_null_instead_of_replaying_the_stored_one(admin_client, shipping):
    handler(START_SHIPPING, event=EVENT)
    [record] = deliver(CUSTOMER)
    refused = admin_client.post(MESSAGES, {"action": "replay_selected", "_selected_action": [record.pk],
                                           "apply": "1", "reason": "empty it", "edited_payload": "null"})
    assert b"null cannot be sent in place of the payload" in refused.content
    assert ReceivedMessage.objects.count() == 1


def test_replay_needs_the_change_permission_on_received_messages(client, django_user_model, shipping):
    handler(START_SHIPPING, event=EVENT)
    [record] = deliver(CUSTOMER)
    client.force_login(make_user(django_user_model, "viewer", "view_receivedmessage", "view_actionexecution"))
    assert b"replay_selected" not in client.get(MESSAGES).content
    client.post(MESSAGES, {"action": "replay_selected", "_selected_action": [record.pk], "apply": "1",
                           "reason": "sneaky"})
    assert ReceivedMessage.objects.count() == 1
    change_page = client.get(reverse("admin:queues_receivedmessage_change", args=[record.pk])).content.decode()
    assert "It did something" in change_page and "Replay…" not in change_page


def test_the_dry_run_page_shows_the_condition_and_resolved_actions_and_writes_nothing(admin_client, shipping):
    item = handler(START_SHIPPING, event=EVENT, condition="$.customer.address.country == 'GB'")
    change_page = page(admin_client, reverse("admin:handlers_eventhandler_change", args=[item.pk]))
    url = reverse("admin:handlers_eventhandler_dry_run", args=[item.pk])
    assert url in change_page
    assert "Dry-run" in page(admin_client, url)
    html = admin_client.post(url, {"payload": json.dumps(CUSTOMER), "message_id": "try-1"}).content.decode()
    assert "every action would run" in html and "Ada Lovelace" in html and "try-1" in html
    assert "Not valid JSON" in admin_client.post(url, {"payload": "{nope"}).content.decode()
    assert not (ActionExecution.objects.exists() or ReceivedMessage.objects.exists() or Workflow.objects.exists())
