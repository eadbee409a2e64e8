import copy
import json
from urllib.parse import quote

import pytest

from handlers.models import EventHandler, HandlerRevision

from .seeds import COMPLETE_DOCUSIGN, SEEDS, START_SHIPPING

pytestmark = pytest.mark.django_db


def post(api, body, path="/api/event"):
    return api.post(path, data=json.dumps(body), content_type="application/json")


def put(api, body, path="/api/event"):
    return api.put(path, data=json.dumps(body), content_type="application/json")


def test_it_accepts_the_documented_handlers_verbatim_and_reads_them_back_unchanged(api):
    for seed in SEEDS:
        response = post(api, seed)
        assert response.status_code == 200, response.content
        assert response.content == b""
    listed = api.get("/api/event").json()
    assert sorted(listed, key=lambda h: h["name"]) == sorted(SEEDS, key=lambda h: h["name"])


def test_it_leaves_out_nulls_and_ignores_unknown_fields(api):
    body = {
        **copy.deepcopy(START_SHIPPING),
        "condition": None,
        "evaluatorType": None,
        "tags": ["ignored"],
        "createdBy": "someone",
    }
    body["actions"][0]["start_workflow"]["correlationId"] = None
    assert post(api, body).status_code == 200
    stored = api.get("/api/event").json()[0]
    assert "condition" not in stored and "evaluatorType" not in stored and "tags" not in stored
    assert "correlationId" not in stored["actions"][0]["start_workflow"]
    assert stored["actions"] == START_SHIPPING["actions"]


def test_it_defaults_active_to_false_when_omitted(api):
    body = {key: value for key, value in START_SHIPPING.items() if key != "active"}
    assert post(api, body).status_code == 200
    assert EventHandler.objects.get(name=body["name"]).active is False
    assert api.get("/api/event").json()[0]["active"] is False


def test_it_answers_409_when_the_name_exists(api):
    post(api, START_SHIPPING)
    response = post(api, START_SHIPPING)
    assert response.status_code == 409
    body = response.json()
    assert body["status"] == 409 and body["retryable"] is False
    assert "start_shipping_workflow" in body["message"]


def test_it_reports_every_violation_at_once_with_paths(api):
    body = {
        "name": "broken",
        "event": "kafka:orders",
        "evaluatorType": "python",
        "actions": [
            {"action": "start_workflow", "start_workflow": {"version": 1}},
            {"action": "complete_task", "complete_task": {"output": {}}},
            {"action": "explode"},
        ],
    }
    response = post(api, body)
    assert response.status_code == 400
    error = response.json()
    assert error["status"] == 400
    assert error["message"] == "Validation failed, check below errors for detail."
    assert error["retryable"] is False
    assert error["instance"]
    paths = {item["path"] for item in error["validationErrors"]}
    assert paths == {
        "event",
        "evaluatorType",
        "actions[0].start_workflow.name",
        "actions[1].complete_task.taskRefName",
        "actions[2].action",
    }
    assert not EventHandler.objects.exists()


def test_it_reports_a_condition_that_does_not_compile(api):
    response = post(api, {**START_SHIPPING, "condition": "$.status == "})
    assert response.status_code == 400
    [error] = response.json()["validationErrors"]
    assert error["path"] == "condition"
    assert "does not compile" in error["message"]


def test_it_rejects_a_body_that_is_not_an_object_or_not_json(api):
    assert post(api, ["not", "a", "handler"]).status_code == 400
    response = api.post("/api/event", data="{nope", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["status"] == 400


def test_put_replaces_the_handler_of_that_name(api):
    post(api, START_SHIPPING)
    changed = {**START_SHIPPING, "active": False, "condition": "$.priority > 1"}
    response = put(api, changed)
    assert response.status_code == 200 and response.content == b""
    assert api.get("/api/event").json() == [changed]


def test_put_answers_404_for_an_unknown_name(api):
    response = put(api, START_SHIPPING)
    assert response.status_code == 404
    assert response.json()["status"] == 404


def test_put_validates_like_post(api):
    post(api, START_SHIPPING)
    response = put(api, {**START_SHIPPING, "actions": []})
    assert response.status_code == 400
    assert response.json()["validationErrors"][0]["path"] == "actions"
    assert EventHandler.objects.get(name=START_SHIPPING["name"]).actions == START_SHIPPING["actions"]


def test_it_lists_handlers_of_one_event_active_only_by_default(api):
    post(api, START_SHIPPING)
    post(api, {**START_SHIPPING, "name": "inactive_one", "active": False})
    post(api, COMPLETE_DOCUSIGN)
    names = lambda response: sorted(h["name"] for h in response.json())  # noqa: E731
    assert names(api.get("/api/event/sqs:shipping_start")) == ["start_shipping_workflow"]
    for flag in ("false", "False"):
        assert names(api.get(f"/api/event/sqs:shipping_start?activeOnly={flag}")) == [
            "inactive_one",
            "start_shipping_workflow",
        ]
    assert names(api.get("/api/event/sqs:shipping_start?activeOnly=True")) == ["start_shipping_workflow"]


def test_it_rejects_a_boolean_it_cannot_read(api):
    response = api.get("/api/event/sqs:shipping_start?activeOnly=perhaps")
    assert response.status_code == 400
    assert response.json()["validationErrors"][0]["path"] == "activeOnly"


def test_it_takes_the_event_as_a_whole_percent_encoded_path(api):
    event = "sqs:https://sqs.eu-west-1.amazonaws.com/123456789012/orders"
    post(api, {**START_SHIPPING, "event": event})
    response = api.get("/api/event/" + quote(event, safe=""))
    assert [h["event"] for h in response.json()] == [event]
    assert [h["event"] for h in api.get("/api/event/" + quote(event, safe=":/")).json()] == [event]


def test_it_never_redirects_for_a_trailing_slash(api):
    assert post(api, START_SHIPPING, path="/api/event/").status_code == 200
    assert api.get("/api/event/").status_code == 200
    assert len(api.get("/api/event/sqs:shipping_start/").json()) == 1
    assert put(api, START_SHIPPING, path="/api/event/").status_code == 200
    assert api.delete("/api/event/start_shipping_workflow/").status_code == 200


def test_delete_removes_the_handler_and_then_answers_404(api):
    post(api, START_SHIPPING)
    response = api.delete("/api/event/start_shipping_workflow")
    assert response.status_code == 200 and response.content == b""
    assert not EventHandler.objects.exists()
    again = api.delete("/api/event/start_shipping_workflow")
    assert again.status_code == 404
    assert again.json()["message"] == "EventHandler with name start_shipping_workflow not found!"


def test_every_change_is_kept_as_a_revision_with_who_and_what(api, superuser):
    post(api, START_SHIPPING)
    put(api, {**START_SHIPPING, "active": False})
    api.delete("/api/event/start_shipping_workflow")
    revisions = HandlerRevision.objects.order_by("number")
    assert [(r.number, r.change, r.source) for r in revisions] == [
        (1, "created", "api"),
        (2, "changed", "api"),
        (3, "deleted", "api"),
    ]
    assert all(r.changed_by == superuser and r.changed_by_name == "root" for r in revisions)
    assert revisions[0].snapshot == START_SHIPPING
    assert revisions[1].snapshot["active"] is False


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", ["/api/nothing/here", "/api/eventhub/executions/abc"])
def test_an_unknown_api_route_answers_404_in_conductors_shape(api, settings, debug, path):
    settings.DEBUG = debug  # (with DEBUG on, Django answers its own HTML page unless told otherwise)
    response = api.get(path)
    assert response.status_code == 404
    assert response.json()["status"] == 404 and path in response.json()["message"]


def test_a_routes_own_404_keeps_its_message_in_the_browsable_api(api, settings):
    settings.DEBUG = True
    response = api.get("/api/workflow/no-such-workflow", HTTP_ACCEPT="text/html")
    assert response.status_code == 404
    assert "no-such-workflow" in response.content.decode() and "No route for" not in response.content.decode()


def test_an_unexpected_error_is_a_500_without_a_traceback(api, monkeypatch):
    post(api, START_SHIPPING)

    def explode(self):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(EventHandler, "to_conductor", explode)
    response = api.get("/api/event")
    assert response.status_code == 500
    body = response.json()
    assert body["status"] == 500 and body["retryable"] is True
    assert "secret internals" not in response.content.decode()
    assert "Traceback" not in response.content.decode()


def test_it_answers_json_even_when_the_client_asks_for_text(api):
    post(api, START_SHIPPING)
    response = api.get("/api/event", HTTP_ACCEPT="text/plain")
    assert response.status_code == 200
    assert response.json()[0]["name"] == "start_shipping_workflow"


def test_creating_a_handler_gives_its_queue_a_config_with_the_defaults(api, settings):
    from queues.models import QueueConfig

    post(api, START_SHIPPING)
    config = QueueConfig.objects.get(event="sqs:shipping_start")
    assert (config.kind, config.name, config.enabled) == ("sqs", "shipping_start", True)
    assert config.max_deliveries == settings.QUEUES_DEFAULTS["max_deliveries"]
    post(api, {**START_SHIPPING, "name": "second_on_same_queue"})
    assert QueueConfig.objects.filter(event="sqs:shipping_start").count() == 1


@pytest.mark.parametrize("text", ["nul\\u0000inside", "lone \\ud800 surrogate"])
def test_it_refuses_text_no_database_can_store(api, text):
    body = json.dumps(START_SHIPPING).replace("start_shipping_workflow", text)
    response = api.post("/api/event", data=body, content_type="application/json")
    assert response.status_code == 400
    assert "cannot be stored" in response.json()["message"]
    assert not EventHandler.objects.exists()


@pytest.mark.parametrize("path", ["/api/event/sqs:orders%00", "/api/event/sqs:orders?activeOnly=%00",
                                  "/api/tasks/poll/batch/F?domain=%F3%B1%B9%91%00"])
def test_it_refuses_a_path_or_query_no_database_can_compare(api, path):
    response = api.get(path)
    assert response.status_code == 400
    assert "cannot be stored" in response.json()["message"]


CONDUCTOR_TEXTS = {
    "name": "Missing event handler name",
    "event": "Missing event location",
    "actions": "No actions specified. Please specify at-least one action",
}


@pytest.mark.parametrize("body", [{}, {"name": "", "event": "", "actions": []}, {"actions": None}])
def test_it_answers_conductors_own_texts_for_a_handler_without_name_event_or_actions(api, body):
    for response in (post(api, body), put(api, body)):
        assert response.status_code == 400
        problems = {item["path"]: item["message"] for item in response.json()["validationErrors"]}
        assert problems == CONDUCTOR_TEXTS


def test_it_answers_conductors_text_for_a_null_handler(api):
    for response in (post(api, None), put(api, None)):
        assert response.status_code == 400
        assert response.json()["validationErrors"] == [{"path": "$", "message": "EventHandler cannot be null."}]
