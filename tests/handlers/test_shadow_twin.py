"""Shadow twins (issue 24): a twin recording SHADOW decisions on live traffic through RabbitMQ while its original
acts, the comparison page, and Promote (one revision, the twin gone, in one transaction); the twin's page says
when its original changed or was deleted."""

import copy
import json
import re
from unittest import mock

import pytest
from django.urls import reverse

from handlers import shadow
from handlers.changes import save_handler
from handlers.listener import Listener
from handlers.models import ActionExecution, EventHandler, HandlerRevision
from queues.models import ReceivedMessage
from queues.publish import publish
from workflows.models import Workflow

from ..conftest import make_user
from ..workflows.conftest import register, shipping_definition
from .seeds import START_SHIPPING
from .test_dispatch import dispatch, message
from .test_end_to_end import consume_until, handler
from .test_event_api import put

NAME = START_SHIPPING["name"]
TWIN = f"{NAME}__shadow"
ADDRESS = {"street": "1 Main St", "city": "Paris", "zip": "75001"}


def change_url(item: EventHandler) -> str:
    return reverse("admin:handlers_eventhandler_change", args=[item.pk])


def customer(name: str, vip: bool) -> dict:
    return {"customer": {"name": name, "vip": vip, "address": ADDRESS}}


@pytest.mark.django_db(transaction=True)
def test_a_twin_watches_live_traffic_on_rabbitmq_while_its_original_acts_and_is_then_promoted(
        make_config, admin_client, api):
    config = make_config("amqp_queue")
    register(shipping_definition())
    original = handler(START_SHIPPING, event=config.event)
    assert original.revision == 1

    # Shadow copy in the admin: the twin opens, in shadow mode, active, pointing at its original.
    response = admin_client.post(reverse("admin:handlers_eventhandler_shadow_copy", args=[original.pk]))
    twin = EventHandler.objects.get(name=TWIN)
    assert response.status_code == 302 and response.url == change_url(twin)
    assert (twin.mode, twin.active, twin.shadow_of, twin.shadow_base_revision) == ("shadow", True, original, 1)
    assert twin.actions == original.actions and twin.event == original.event
    # Edited over the API (a Conductor client's PUT without `mode` keeps it shadow): VIPs only, and their name.
    edited = {**copy.deepcopy(START_SHIPPING), "name": TWIN, "event": config.event, "condition": "$.customer.vip"}
    edited["actions"][0]["start_workflow"]["input"]["customerName"] = "VIP ${customer.name}"
    assert put(api, edited).status_code == 200
    # A twin cannot be made live by accident: only Promote makes its definition live.
    refused = put(api, {**edited, "mode": "live"})
    assert refused.status_code == 400 and refused.json()["validationErrors"][0]["path"] == "mode"

    publish(config.event, customer("Ada", vip=True), message_id="order-ada")
    publish(config.event, customer("Bob", vip=False), message_id="order-bob")
    listener = Listener()
    consume_until(listener, lambda: ReceivedMessage.objects.filter(outcome="ACKNOWLEDGED").count() == 2)
    listener.close()

    # The original acted on both; the twin recorded what it would have done, and ran nothing.
    assert Workflow.objects.count() == 2
    assert set(ActionExecution.objects.filter(handler_name=NAME).values_list("status", flat=True)) == {"COMPLETED"}
    ada = ActionExecution.objects.get(handler_name=TWIN, message_id="order-ada")
    bob = ActionExecution.objects.get(handler_name=TWIN, message_id="order-bob")
    assert (ada.status, ada.index, bob.status, bob.index) == ("SHADOW", 0, "SHADOW", -1)
    assert ada.input["input"]["customerName"] == "VIP Ada" and bob.condition_value == "false"
    listed = api.get("/api/eventhub/executions", {"handler": TWIN, "status": "SHADOW"}).json()["results"]
    assert {e["messageId"] for e in listed} == {"order-ada", "order-bob"}

    # The comparison: Ada's input differs, Bob is matched by the original only.
    comparison = shadow.compare(EventHandler.objects.get(name=TWIN))
    assert comparison.compared == 2
    assert comparison.counts == {"twin_only": 0, "original_only": 1, "inputs": 1}
    assert {(d.message_id, d.kind) for d in comparison.differences} == {("order-ada", "inputs"),
                                                                       ("order-bob", "original_only")}
    page = admin_client.get(reverse("admin:handlers_eventhandler_shadow_compare", args=[twin.pk])).content.decode()
    assert 'data-message="order-ada"' in page and 'data-message="order-bob"' in page
    assert "VIP Ada" in page and "both matched, different action inputs" in page
    assert "matched by the original only" in page

    # Promote: one new revision of the original with the twin's definition; the twin gone, its records kept.
    confirm = admin_client.get(reverse("admin:handlers_eventhandler_promote", args=[twin.pk]))
    assert confirm.status_code == 200 and "$.customer.vip" in confirm.content.decode()
    revisions = HandlerRevision.objects.filter(handler_name=NAME).count()
    response = admin_client.post(reverse("admin:handlers_eventhandler_promote", args=[twin.pk]),
                                 confirmation(confirm.content.decode()))
    assert response.status_code == 302 and response.url == change_url(original)
    original.refresh_from_db()
    assert (original.condition, original.mode, original.revision) == ("$.customer.vip", "live", 2)
    assert original.actions[0]["start_workflow"]["input"]["customerName"] == "VIP ${customer.name}"
    latest = HandlerRevision.objects.filter(handler_name=NAME).order_by("-number")
    assert latest.count() == revisions + 1 and latest.first().source == "promote"
    assert not EventHandler.objects.filter(name=TWIN).exists()
    assert ActionExecution.objects.filter(handler_name=TWIN, status="SHADOW").count() == 2

    # Promoted, it acts: a VIP starts a workflow named as the twin would have.
    publish(config.event, customer("Cy", vip=True), message_id="order-cy")
    listener = Listener()
    done = consume_until(listener, lambda: ActionExecution.objects.filter(message_id="order-cy").first())
    listener.close()
    assert done.status == "COMPLETED" and done.input["input"]["customerName"] == "VIP Cy"


@pytest.mark.django_db
def test_promote_is_all_or_nothing(admin_client):
    original = handler(START_SHIPPING)
    twin = shadow.shadow_copy(original, user=None)
    twin.condition = "$.customer.vip"
    twin.save()
    with mock.patch("handlers.shadow.delete_handler", side_effect=RuntimeError("the database went away")), \
            pytest.raises(RuntimeError):
        shadow.promote(twin, user=None)
    original.refresh_from_db()
    assert (original.condition, original.revision) == ("", 1)
    assert EventHandler.objects.filter(name=TWIN).exists()
    assert HandlerRevision.objects.filter(handler_name=NAME).count() == 1


@pytest.mark.django_db
def test_the_twins_page_says_when_its_original_changed_or_was_deleted(admin_client, api):
    original = handler(START_SHIPPING)
    twin = shadow.shadow_copy(original, user=None)
    page = admin_client.get(change_url(twin)).content.decode()
    assert "Shadow twin" in page and 'id="shadow-changed"' not in page and 'id="shadow-promote"' in page
    assert 'id="shadow-twin-note"' in admin_client.get(change_url(original)).content.decode()

    assert put(api, {**START_SHIPPING, "condition": "$.customer != null"}).status_code == 200  # edit the original
    page = admin_client.get(change_url(twin)).content.decode()
    assert "changed since the copy: it was at revision 1, it is at revision 2 now" in page
    assert "changed since the copy" in admin_client.get(
        reverse("admin:handlers_eventhandler_promote", args=[twin.pk])).content.decode()

    assert api.delete(f"/api/event/{NAME}").status_code == 200  # delete it
    page = admin_client.get(change_url(twin)).content.decode()
    assert f"Its original {NAME} was deleted after the copy" in page and 'id="shadow-promote"' not in page
    assert admin_client.post(reverse("admin:handlers_eventhandler_promote", args=[twin.pk])).status_code == 404
    # With its original gone it is a shadow handler of its own, which may be made live.
    assert put(api, {**START_SHIPPING, "name": TWIN, "mode": "live"}).status_code == 200
    assert EventHandler.objects.get(name=TWIN).mode == "live"


@pytest.mark.django_db
def test_shadow_copy_refuses_a_second_twin_a_shadow_handler_and_a_taken_name(admin_client):
    original = handler(START_SHIPPING)
    copy_url = reverse("admin:handlers_eventhandler_shadow_copy", args=[original.pk])
    admin_client.post(copy_url)
    response = admin_client.post(copy_url, follow=True)
    assert f"has a shadow twin already: {TWIN}" in response.content.decode()
    twin = EventHandler.objects.get(name=TWIN)
    response = admin_client.post(reverse("admin:handlers_eventhandler_shadow_copy", args=[twin.pk]), follow=True)
    assert "is in shadow mode already" in response.content.decode()
    other = handler(START_SHIPPING, name="other")
    handler(START_SHIPPING, name="other__shadow")
    response = admin_client.post(reverse("admin:handlers_eventhandler_shadow_copy", args=[other.pk]), follow=True)
    assert "A handler named other__shadow exists already" in response.content.decode()
    assert EventHandler.objects.count() == 4


@pytest.mark.django_db
def test_a_reader_sees_the_comparison_but_may_not_copy_or_promote(client, django_user_model):
    original = handler(START_SHIPPING)
    twin = shadow.shadow_copy(original, user=None)
    client.force_login(make_user(django_user_model, "reader", "view_eventhandler"))
    assert client.get(reverse("admin:handlers_eventhandler_shadow_compare", args=[twin.pk])).status_code == 200
    assert client.post(reverse("admin:handlers_eventhandler_shadow_copy", args=[original.pk])).status_code == 403
    assert client.post(reverse("admin:handlers_eventhandler_promote", args=[twin.pk])).status_code == 403


@pytest.mark.django_db
def test_promote_carries_a_cleared_condition_and_leaves_an_empty_text_as_the_original_has_it():
    original = handler(START_SHIPPING, condition="$.customer != null")
    twin = shadow.shadow_copy(original, user=None)
    twin.condition, twin.description = "", ""  # (as the admin form saves empty boxes)
    twin.save()
    shadow.promote(twin, user=None)
    original.refresh_from_db()
    assert (original.condition, original.description) == ("", None)
    assert "description" not in original.to_conductor()


@pytest.mark.django_db
def test_the_twins_page_says_its_original_changed_when_a_rename_and_edit_restarted_its_revision_numbers(
        admin_client):
    original = handler(START_SHIPPING)  # revision 1 of start_shipping_workflow
    twin = shadow.shadow_copy(original, user=None)
    # Renamed and edited in one save of its admin form: revisions count per name, so it is revision 1 again.
    response = admin_client.post(change_url(original), {
        "name": "start_shipping_v2", "event": original.event, "active": "on", "mode": "live", "description": "",
        "condition": "$.customer.vip == true", "evaluator_type": "", "actions": json.dumps(original.actions),
        "loaded_revision": "1", "_save": "Save"})
    assert response.status_code == 302
    original.refresh_from_db()
    twin.refresh_from_db()
    assert (original.name, original.revision) == ("start_shipping_v2", 1)
    assert "changed since the copy: it was revision 1 of start_shipping_workflow, it is revision 1 of " \
        "start_shipping_v2 now" in shadow.original_changed(twin)
    page = admin_client.get(reverse("admin:handlers_eventhandler_promote", args=[twin.pk])).content.decode()
    assert 'id="shadow-changed"' in page
    page = admin_client.get(change_url(twin)).content.decode()
    assert "copied from its revision 1 (as start_shipping_workflow)" in page and 'id="shadow-changed"' in page


@pytest.mark.django_db
def test_the_comparison_reads_the_originals_records_under_its_old_names_too():
    register(shipping_definition())
    event = "conductor:shipping_start"
    original = handler(START_SHIPPING, event=event)
    twin = shadow.shadow_copy(original, user=None)
    dispatch(event, message(customer("Ada", vip=False)))  # both match, with the same input
    original.name = "start_shipping_v2"
    save_handler(original, user=None, source="test")
    twin.refresh_from_db()
    comparison = shadow.compare(twin)
    assert (comparison.compared, comparison.counts["original_only"], comparison.counts["twin_only"]) == (1, 0, 0)
    # A handler that took the old name afterwards is not the original: its records are not read as the original's.
    handler(START_SHIPPING, event=event, condition="$.customer.vip")
    dispatch(event, message(customer("Bo", vip=False)))
    comparison = shadow.compare(twin)
    assert comparison.compared == 2 and comparison.counts == {"twin_only": 0, "original_only": 0, "inputs": 0}


@pytest.mark.django_db
def test_a_former_twin_set_live_is_a_handler_of_its_own_not_described_as_running_nothing(admin_client, api):
    original = handler(START_SHIPPING)
    twin = shadow.shadow_copy(original, user=None)
    assert api.delete(f"/api/event/{NAME}").status_code == 200
    assert put(api, {**START_SHIPPING, "name": TWIN, "mode": "live"}).status_code == 200
    twin.refresh_from_db()
    assert (twin.mode, twin.is_twin, twin.shadow_of_name, twin.shadow_base_revision) == ("live", False, "", None)
    page = admin_client.get(change_url(twin)).content.decode()
    assert "it runs nothing" not in page and 'id="shadow-note"' not in page
    assert "set its mode to live to make it act" not in page
    # Set back to shadow it is a shadow handler like any other, not the twin of a deleted one.
    assert put(api, {**START_SHIPPING, "name": TWIN, "mode": "shadow"}).status_code == 200
    page = admin_client.get(change_url(twin)).content.decode()
    assert 'id="shadow-note"' not in page and "In <strong>shadow mode</strong>" in page


@pytest.mark.django_db
def test_promote_is_offered_only_to_who_may_promote_change_on_the_original_and_delete_on_the_twin(
        client, django_user_model):
    original = handler(START_SHIPPING)
    twin = shadow.shadow_copy(original, user=None)
    compare_url = reverse("admin:handlers_eventhandler_shadow_compare", args=[twin.pk])
    promote_url = reverse("admin:handlers_eventhandler_promote", args=[twin.pk])
    client.force_login(make_user(django_user_model, "editor", "view_eventhandler", "change_eventhandler"))
    assert promote_url not in client.get(change_url(twin)).content.decode()
    assert promote_url not in client.get(compare_url).content.decode()
    assert client.get(promote_url).status_code == 403
    client.force_login(make_user(django_user_model, "promoter", "view_eventhandler", "change_eventhandler",
                                 "delete_eventhandler"))
    assert promote_url in client.get(change_url(twin)).content.decode()
    assert promote_url in client.get(compare_url).content.decode()
    assert client.get(promote_url).status_code == 200


def confirmation(page: str) -> dict:
    """The hidden fields of the promote page's form: the revisions of the twin and of its original it showed."""
    return dict(re.findall(r'<input type="hidden" name="(\w+_revision)" value="([^"]*)"', page))


@pytest.mark.django_db
def test_promote_refuses_when_the_twin_or_its_original_changed_since_the_page_was_shown(admin_client, api):
    original = handler(START_SHIPPING)
    twin = shadow.shadow_copy(original, user=None)
    url = reverse("admin:handlers_eventhandler_promote", args=[twin.pk])
    shown = confirmation(admin_client.get(url).content.decode())
    assert shown == {"twin_revision": f"{TWIN} r1", "original_revision": f"{NAME} r1"}
    # Someone saves the twin meanwhile: the confirmation was of another definition.
    assert put(api, {**START_SHIPPING, "name": TWIN, "mode": "shadow", "condition": "$.customer.vip"}).status_code \
        == 200
    response = admin_client.post(url, shown, follow=True)
    page = response.content.decode()
    assert response.redirect_chain == [(url, 302)]
    assert "Not promoted: the twin changed since the page you confirmed was shown" in page
    assert "$.customer.vip" in page and confirmation(page)["twin_revision"] == f"{TWIN} r2"
    original.refresh_from_db()
    assert (original.condition, original.revision) == ("", 1) and EventHandler.objects.filter(name=TWIN).exists()
    # Someone saves the original meanwhile.
    shown = confirmation(page)
    assert put(api, {**START_SHIPPING, "description": "edited meanwhile"}).status_code == 200
    page = admin_client.post(url, shown, follow=True).content.decode()
    assert "Not promoted: its original changed since the page you confirmed was shown" in page
    assert EventHandler.objects.get(name=NAME).revision == 2
    # A POST that says nothing of what it confirmed promotes nothing either; the current page's does.
    assert "Not promoted" in admin_client.post(url, follow=True).content.decode()
    response = admin_client.post(url, confirmation(page))
    assert response.status_code == 302 and not EventHandler.objects.filter(name=TWIN).exists()
    assert EventHandler.objects.get(name=NAME).condition == "$.customer.vip"
