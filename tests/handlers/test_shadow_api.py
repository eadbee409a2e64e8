"""`mode` on Conductor's `/api/event` (issue 24): an Eventhub field a Conductor client never sends, so a POST
without it is live and a PUT without it keeps the handler's mode."""

import copy

import pytest

from handlers.models import EventHandler, HandlerRevision

from .seeds import START_SHIPPING
from .test_conductor_client import events, shipping_handler  # noqa: F401 - the SDK fixture
from .test_event_api import post, put

NAME = START_SHIPPING["name"]


@pytest.mark.django_db
def test_a_post_without_mode_creates_a_live_handler_that_reads_as_conductors(api):
    assert post(api, START_SHIPPING).status_code == 200
    assert EventHandler.objects.get(name=NAME).mode == "live"
    assert api.get("/api/event").json() == [START_SHIPPING]  # no `mode` key: Conductor's shape exactly


@pytest.mark.django_db
def test_a_post_with_mode_shadow_creates_a_shadow_handler_listed_with_its_mode(api):
    assert post(api, {**START_SHIPPING, "mode": "shadow"}).status_code == 200
    assert EventHandler.objects.get(name=NAME).mode == "shadow"
    [listed] = api.get("/api/event").json()
    assert listed["mode"] == "shadow"
    [by_event] = api.get(f"/api/event/{START_SHIPPING['event']}").json()
    assert by_event["mode"] == "shadow"


@pytest.mark.django_db
def test_a_put_without_mode_keeps_shadow_and_a_put_with_it_changes_it(api):
    post(api, {**START_SHIPPING, "mode": "shadow"})
    changed = copy.deepcopy(START_SHIPPING)
    changed["condition"] = "$.customer != null"
    assert put(api, changed).status_code == 200
    handler = EventHandler.objects.get(name=NAME)
    assert (handler.mode, handler.condition) == ("shadow", "$.customer != null")
    assert HandlerRevision.objects.filter(handler_name=NAME).order_by("-number").first().snapshot["mode"] == "shadow"

    assert put(api, {**changed, "mode": "live"}).status_code == 200
    assert EventHandler.objects.get(name=NAME).mode == "live"
    assert put(api, changed).status_code == 200
    assert EventHandler.objects.get(name=NAME).mode == "live"


@pytest.mark.django_db
def test_an_unknown_mode_is_a_400_naming_the_field_and_changes_nothing(api):
    post(api, {**START_SHIPPING, "mode": "shadow"})
    response = put(api, {**START_SHIPPING, "mode": "dark", "condition": "$.x"})
    assert response.status_code == 400
    [problem] = response.json()["validationErrors"]
    assert problem["path"] == "mode" and "live, shadow" in problem["message"]
    handler = EventHandler.objects.get(name=NAME)
    assert (handler.mode, handler.condition) == ("shadow", "")


@pytest.mark.django_db(transaction=True)
def test_conductors_own_client_updating_a_shadow_handler_leaves_it_shadow(events):  # noqa: F811
    events.add_event_handler(shipping_handler())
    EventHandler.objects.filter(name="start_shipping_workflow").update(mode="shadow")
    [listed] = events.get_event_handlers()  # (the SDK's model has no `mode`: it drops it)
    listed.condition = "$.customer.vip == true"
    events.update_event_handler(listed)
    handler = EventHandler.objects.get(name="start_shipping_workflow")
    assert (handler.mode, handler.condition) == ("shadow", "$.customer.vip == true")
