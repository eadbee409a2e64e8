from datetime import timedelta

import pytest
from django.utils import timezone

from handlers.dispatch import dispatch_batch
from handlers.models import ActionExecution, EventHandler
from queues.configs import ensure_config
from queues.models import ReceivedMessage
from workflows.models import Workflow

from ..conftest import make_user, token_client
from ..workflows.conftest import ADDRESS, register, shipping_definition
from .seeds import START_SHIPPING
from .test_dispatch import handler, message

pytestmark = pytest.mark.django_db
EVENT = "conductor:shipping_start"
CUSTOMER = {"customer": {"name": ADDRESS["name"], "address": ADDRESS}}


@pytest.fixture
def records():
    """Two messages: one starts a workflow, one is skipped by a second handler's condition only."""
    register(shipping_definition())
    handler(START_SHIPPING, event=EVENT)
    handler(START_SHIPPING, event=EVENT, name="gb_only", condition="$.x != 1")
    dispatch_batch(ensure_config(EVENT), [message(CUSTOMER, message_id="m-1"), message({"x": 1}, message_id="m-2")])


def results(response) -> list:
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_it_lists_executions_newest_first_with_filters(api, records):
    every = results(api.get("/api/eventhub/executions"))
    assert len(every) == 4 and every[0]["id"] > every[-1]["id"]
    workflow = Workflow.objects.get(trigger__messageId="m-1", trigger__handler="start_shipping_workflow")
    [skipped] = results(api.get("/api/eventhub/executions", {"status": "SKIPPED"}))
    assert (skipped["handler"], skipped["messageId"], skipped["index"]) == ("gb_only", "m-2", -1)
    assert skipped["conditionValue"] == "false" and "returned false" in skipped["reason"]
    assert skipped["handlerRevision"] == 1
    by_workflow = results(api.get("/api/eventhub/executions/", {"workflowId": workflow.id}))
    assert [(e["messageId"], e["handler"]) for e in by_workflow] == [("m-1", "start_shipping_workflow")]
    assert len(results(api.get("/api/eventhub/executions", {"handler": "gb_only", "event": EVENT}))) == 2
    assert len(results(api.get("/api/eventhub/executions", {"messageId": "m-1"}))) == 2
    assert results(api.get("/api/eventhub/executions", {"event": "conductor:elsewhere"})) == []


def test_it_filters_by_time_range_and_paginates(api, records):
    ActionExecution.objects.filter(message_id="m-1").update(created_at=timezone.now() - timedelta(days=3))
    since = (timezone.now() - timedelta(days=1)).isoformat()
    recent = results(api.get("/api/eventhub/executions", {"from": since}))
    assert {e["messageId"] for e in recent} == {"m-2"}
    old = results(api.get("/api/eventhub/executions", {"to": since}))
    assert {e["messageId"] for e in old} == {"m-1"}
    page = api.get("/api/eventhub/executions", {"limit": 3}).json()
    assert page["count"] == 4 and len(page["results"]) == 3 and "offset=3" in page["next"]
    assert len(api.get(page["next"]).json()["results"]) == 1


def test_bad_filters_are_a_400_in_conductors_error_shape(api, records):
    response = api.get("/api/eventhub/executions", {"from": "yesterday", "status": "DONE"})
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400 and {e["path"] for e in body["validationErrors"]} == {"from", "status"}
    later, earlier = timezone.now().isoformat(), (timezone.now() - timedelta(hours=1)).isoformat()
    assert api.get("/api/eventhub/messages", {"from": later, "to": earlier}).status_code == 400


def test_it_lists_messages_with_their_executions_inline(api, records, django_assert_max_num_queries):
    with django_assert_max_num_queries(5):  # no query per message, whatever the page size
        listed = results(api.get("/api/eventhub/messages"))
    assert [m["messageId"] for m in listed] == ["m-2", "m-1"]
    first = listed[1]
    assert first["payload"] == CUSTOMER and first["event"] == EVENT and first["deliveryCount"] == 1
    assert [(e["handler"], e["status"]) for e in first["executions"]] == [
        ("gb_only", "COMPLETED"), ("start_shipping_workflow", "COMPLETED")]
    [skipped] = results(api.get("/api/eventhub/messages", {"status": "SKIPPED"}))
    assert skipped["messageId"] == "m-2" and "unmatched" not in skipped["detail"]
    workflow_id = first["executions"][1]["workflowId"]
    assert [m["messageId"] for m in results(api.get("/api/eventhub/messages", {"workflowId": workflow_id}))] == [
        "m-1"]
    assert len(results(api.get("/api/eventhub/messages", {"handler": "gb_only", "outcome": "RECEIVED"}))) == 2
    one = api.get(f"/api/eventhub/messages/{first['id']}").json()
    assert one == first
    assert api.get("/api/eventhub/messages/999999").status_code == 404
    execution = first["executions"][0]
    assert api.get(f"/api/eventhub/executions/{execution['id']}/").json() == execution


def test_reading_needs_the_view_permission(django_user_model, records):
    nobody = token_client(make_user(django_user_model, "nobody"))
    assert nobody.get("/api/eventhub/messages").status_code == 403
    reader = token_client(make_user(django_user_model, "reader", "view_receivedmessage"))
    assert reader.get("/api/eventhub/messages").status_code == 200
    assert reader.get("/api/eventhub/executions").status_code == 403
    assert reader.post(f"/api/eventhub/messages/{ReceivedMessage.objects.first().pk}/replay",
                       {"reason": "x"}, format="json").status_code == 403


def test_replay_runs_the_message_again_and_answers_the_new_record(api, records, superuser):
    original = ReceivedMessage.objects.get(message_id="m-1")
    workflows = Workflow.objects.count()
    response = api.post(f"/api/eventhub/messages/{original.pk}/replay", {"reason": "lost workflow"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["decision"] == "ack" and "COMPLETED" in body["summary"]
    replayed = body["message"]
    assert (replayed["messageId"], replayed["replayOf"], replayed["replayedBy"], replayed["replayReason"]) == (
        "m-1:replay:1", original.pk, superuser.username, "lost workflow")
    assert {e["status"] for e in replayed["executions"]} == {"COMPLETED"}
    assert Workflow.objects.count() == workflows + 2  # both handlers match m-1


def test_replay_with_an_edited_payload_and_its_errors(api, records):
    original = ReceivedMessage.objects.get(message_id="m-2")
    edited = api.post(f"/api/eventhub/messages/{original.pk}/replay/",
                      {"reason": "fixed", "payload": CUSTOMER}, format="json").json()
    assert edited["message"]["payload"] == CUSTOMER
    assert api.post(f"/api/eventhub/messages/{original.pk}/replay", {}, format="json").status_code == 400
    assert api.post("/api/eventhub/messages/987654/replay", {"reason": "x"}, format="json").status_code == 404
    assert ReceivedMessage.objects.count() == 3


def test_dry_run_by_name_and_with_an_unsaved_handler_writes_nothing(django_user_model, records):
    before = (ActionExecution.objects.count(), ReceivedMessage.objects.count(), Workflow.objects.count())
    viewer = token_client(make_user(django_user_model, "viewer", "view_eventhandler"))
    saved = viewer.post("/api/eventhub/handlers/dry-run", {"name": "gb_only", "payload": CUSTOMER}, format="json")
    assert saved.status_code == 200, saved.content
    body = saved.json()
    assert (body["matched"], body["value"], body["active"]) == (True, "true", True)
    assert body["actions"][0]["input"]["input"]["customerName"] == ADDRESS["name"]
    unsaved = {**START_SHIPPING, "name": "draft", "condition": "$.n > 1"}
    draft = viewer.post("/api/eventhub/handlers/dry-run/", {"handler": unsaved, "payload": {"n": 0},
                        "messageId": "sample"}, format="json").json()
    assert (draft["matched"], draft["value"], draft["actions"][0]["wouldRun"]) == (False, "false", False)
    assert draft["actions"][0]["input"]["input"]["conductor.event.messageId"] == "sample"
    after = (ActionExecution.objects.count(), ReceivedMessage.objects.count(), Workflow.objects.count())
    assert after == before and not EventHandler.objects.filter(name="draft").exists()


def test_dry_run_errors(api, records, django_user_model):
    invalid = api.post("/api/eventhub/handlers/dry-run", {"handler": {"name": "x", "event": "nope:q", "actions": []},
                                                          "payload": {}}, format="json")
    assert invalid.status_code == 400
    paths = {e["path"] for e in invalid.json()["validationErrors"]}
    assert {"handler.event", "handler.actions"} <= paths
    both = api.post("/api/eventhub/handlers/dry-run", {"payload": {}}, format="json")
    assert both.status_code == 400
    missing = api.post("/api/eventhub/handlers/dry-run", {"name": "ghost", "payload": {}}, format="json")
    assert missing.status_code == 404
    nobody = token_client(make_user(django_user_model, "nobody"))
    assert nobody.post("/api/eventhub/handlers/dry-run", {"name": "gb_only", "payload": {}},
                       format="json").status_code == 403


def test_page_bounds_are_checked(api):
    for params in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"offset": 10**9 + 1}, {"limit": "ten"}):
        response = api.get("/api/eventhub/messages", params)
        assert response.status_code == 400, params
        assert response.json()["validationErrors"][0]["path"] in params
    assert api.get("/api/eventhub/messages", {"limit": 500, "offset": 10**9}).json()["results"] == []
    repeated = api.get("/api/eventhub/executions?offset=1&offset=2&status=FAILED")
    assert repeated.status_code == 400 and repeated.json()["validationErrors"][0]["path"] == "offset"


def test_json_that_cannot_be_stored_or_answered_is_a_400(api, records):
    original = ReceivedMessage.objects.get(message_id="m-1")
    for text in ('"\\udb70"', '"a\\u0000b"'):
        dry = f'{{"name": "gb_only", "payload": {{"a": {text}}}}}'
        response = api.post("/api/eventhub/handlers/dry-run", dry, content_type="application/json")
        assert response.status_code == 400 and "cannot be stored" in response.json()["message"]
        replay = f'{{"reason": "x", "payload": {{{text}: 1}}}}'
        response = api.post(f"/api/eventhub/messages/{original.pk}/replay", replay, content_type="application/json")
        assert response.status_code == 400
    assert ReceivedMessage.objects.count() == 2
