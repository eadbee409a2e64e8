"""Where lint warnings show: the `X-Eventhub-Warnings` header of `POST`/`PUT /api/event`, the dry-run (API and
admin, from real consumed), backtests, the admin's save and its handler list."""

import json

import pytest

from handlers import backtests
from handlers import lint as lint_module
from handlers.dryrun import dry_run
from handlers.lint import HEADER_MAX
from handlers.models import EventHandler, EventShape
from queues.models import ReceivedMessage

from ..conftest import make_user
from .test_dispatch import handler
from .test_event_api import post, put
from .test_shapes import SIGNED, complete

pytestmark = pytest.mark.django_db
HEADER = "X-Eventhub-Warnings"


def test_the_api_answers_conductors_empty_200_with_the_warnings_in_a_header(api, consumed):
    event = consumed(SIGNED)
    response = post(api, complete("${workflowInstnceId}", event=event))
    assert (response.status_code, response.content) == (200, b"")
    [message] = json.loads(response[HEADER])
    assert message.startswith("actions[0].complete_task.workflowId: ${workflowInstnceId} reads workflowInstnceId")
    fixed = put(api, complete(event=event))
    assert (fixed.status_code, fixed.content) == (200, b"") and HEADER not in fixed
    broken = put(api, complete(event=event, condition="$.sttaus == 'signed'"))
    assert "condition: $.sttaus reads sttaus" in json.loads(broken[HEADER])[0]


def test_no_header_before_any_message_was_sampled_or_for_a_correct_handler(api, consumed):
    assert HEADER not in post(api, complete("${workflowInstnceId}"))
    event = consumed(SIGNED)
    assert HEADER not in post(api, complete(event=event, signer="${signer.email}") | {"name": "correct"})


def test_a_dry_run_without_payload_uses_the_latest_stored_message_and_warns_about_what_resolved_to_nothing(
        api, consumed):
    event = consumed(SIGNED)
    consumed({"status": "signed", "signer": {"email": "b@example.com"}})  # (the latest: no workflowInstanceId)
    post(api, complete(event=event))
    response = api.post("/api/eventhub/handlers/dry-run", {"name": "complete_docusign"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    latest = ReceivedMessage.objects.filter(event=event).latest("received_at")
    assert body["sample"]["id"] == latest.pk and body["sample"]["messageId"] == latest.message_id
    assert body["actions"][0]["input"]["output"]["conductor.event.messageId"] == latest.message_id
    assert [(w["kind"], w["where"], w["expression"]) for w in body["warnings"]] == [
        ("unresolved", "actions[0].complete_task.workflowId", "${workflowInstanceId}"),
        ("actionWouldFail", "actions[0]", "complete_task")]
    assert "workflowId resolved to None: nothing in the message filled it in" in body["warnings"][1]["message"]


def test_a_dry_run_can_pick_any_stored_message_of_the_event(api, consumed):
    event = consumed(SIGNED)
    consumed({"status": "signed"})
    post(api, complete(event=event))
    first = ReceivedMessage.objects.filter(event=event).earliest("received_at")
    body = api.post("/api/eventhub/handlers/dry-run", {"name": "complete_docusign", "message": first.pk},
                    format="json").json()
    assert body["sample"]["id"] == first.pk and body["warnings"] == [] and body["pathsUnchecked"] is None
    assert body["actions"][0]["input"]["workflowId"] == "wf-1"


def test_a_dry_run_of_a_message_of_another_event_or_with_none_stored_is_refused_clearly(api, consumed):
    other = consumed(SIGNED)
    post(api, complete())  # on conductor:docusign, where nothing arrived
    elsewhere = ReceivedMessage.objects.get(event=other)
    missing = api.post("/api/eventhub/handlers/dry-run", {"name": "complete_docusign", "message": elsewhere.pk},
                       format="json")
    assert missing.status_code == 404 and "conductor:docusign" in missing.json()["message"]
    none = api.post("/api/eventhub/handlers/dry-run", {"name": "complete_docusign"}, format="json")
    assert none.status_code == 400
    assert none.json()["validationErrors"] == [{"path": "payload", "message": "is required: no message on "
                                                "conductor:docusign is stored to dry-run with"}]


def test_a_typed_payload_still_works_and_gets_the_warnings_too(api):
    post(api, complete("${workflowInstanceId}", output="${signer.email} at ${when}"))
    body = api.post("/api/eventhub/handlers/dry-run", {"name": "complete_docusign",
                                                       "payload": {"workflowInstanceId": "wf-9"}}, format="json").json()
    assert body["sample"] is None
    assert body["pathsUnchecked"] == "no message on conductor:docusign has been sampled yet: paths not checked"
    assert [w["expression"] for w in body["warnings"]] == ["${signer.email}", "${when}"]
    assert body["actions"][0]["input"]["output"]["output"] == "null at null"


def test_the_dry_run_warns_about_paths_never_seen_as_well(consumed):
    event = consumed(SIGNED)
    item = EventHandler()
    item.apply_conductor(complete("${workflowInstnceId}", event=event))
    kinds = [(w["kind"], w["expression"]) for w in dry_run(item, SIGNED).warnings]
    assert kinds == [("unseenPath", "${workflowInstnceId}"), ("unresolved", "${workflowInstnceId}"),
                     ("actionWouldFail", "complete_task")]


def test_a_backtest_result_carries_the_lint_warnings(api, consumed):
    event = consumed(SIGNED)
    draft = complete("${workflowInstnceId}", event=event)
    body = api.post("/api/eventhub/handlers/backtest", {"handler": draft}, format="json").json()
    assert [w["expression"] for w in body["warnings"]] == ["${workflowInstnceId}"]
    assert api.get(f"/api/eventhub/backtests/{body['id']}").json()["warnings"] == body["warnings"]


# The admin ---------------------------------------------------------------------------------------


def form_data(handler: dict) -> dict:
    return {"name": handler["name"], "event": handler["event"], "active": "on", "description": "",
            "condition": handler.get("condition") or "", "evaluator_type": "",
            "actions": json.dumps(handler["actions"])}


def test_saving_in_the_admin_shows_each_unseen_path_as_a_warning(admin_client, consumed):
    event = consumed(SIGNED)
    response = admin_client.post("/admin/handlers/eventhandler/add/",
                                 form_data(complete("${workflowInstnceId}", event=event)), follow=True)
    shown = [(m.level_tag, m.message) for m in response.context["messages"]]
    assert ("warning", next(m for _, m in shown if "workflowInstnceId" in m)) in shown
    assert "did you mean workflowInstanceId?" in response.content.decode()


def test_the_handler_list_says_which_handlers_read_unseen_paths(admin_client, consumed):
    event = consumed(SIGNED)
    for name, template in (("broken", "${workflowInstnceId}"), ("fine", "${workflowInstanceId}")):
        item = EventHandler()
        item.apply_conductor(complete(template, event=event) | {"name": name})
        item.save()
    item = EventHandler()
    item.apply_conductor(complete("${anything}", event="conductor:quiet") | {"name": "unsampled"})
    item.save()
    page = admin_client.get("/admin/handlers/eventhandler/").content.decode()
    assert "⚠ 1 unseen path" in page and page.count("lint-warning") == 1
    assert page.count('class="lint-ok"') == 1 and page.count('class="lint-unchecked"') == 1


def test_the_admin_dry_run_starts_from_the_latest_message_and_can_pick_another(admin_client, consumed):
    event = consumed(SIGNED)
    consumed({"status": "signed"})
    item = EventHandler()
    item.apply_conductor(complete(event=event))
    item.save()
    first, latest = ReceivedMessage.objects.filter(event=event).order_by("received_at", "pk")
    url = f"/admin/handlers/eventhandler/{item.pk}/dry-run/"
    opened = admin_client.get(url)
    assert opened.context["picked"] == latest
    assert json.loads(opened.context["form"].initial["payload"]) == latest.payload
    picked = admin_client.get(url, {"message": first.pk})
    assert json.loads(picked.context["form"].initial["payload"]) == SIGNED
    ran = admin_client.post(url, {"payload": json.dumps(latest.payload), "message_id": latest.message_id,
                                  "sample": latest.pk})
    result = ran.context["result"]
    assert result.sample["id"] == latest.pk
    assert [w["kind"] for w in result.warnings] == ["unresolved", "actionWouldFail"]
    assert 'id="dry-run-warnings"' in ran.content.decode()


def test_the_admin_dry_run_says_when_no_message_is_stored_or_the_one_asked_is_not(admin_client):
    item = EventHandler()
    item.apply_conductor(complete())
    item.save()
    url = f"/admin/handlers/eventhandler/{item.pk}/dry-run/"
    assert 'id="no-recent"' in admin_client.get(url).content.decode()
    assert "No stored message 999 on conductor:docusign" in admin_client.get(url, {"message": 999}).content.decode()
    ran = admin_client.post(url, {"payload": json.dumps(SIGNED), "message_id": "typed"}).content.decode()
    assert 'id="dry-run-paths-unchecked"' in ran and "no message on conductor:docusign has been sampled" in ran


def test_the_backtest_result_page_shows_the_warnings(admin_client, consumed):
    event = consumed(SIGNED)
    item = EventHandler()
    item.apply_conductor(complete("${workflowInstnceId}", event=event))
    backtest, _ = backtests.start(item, backtests.Criteria.of(event), draft=True)
    page = admin_client.get(f"/admin/handlers/backtest/{backtest.pk}/change/").content.decode()
    assert 'id="backtest-warnings"' in page and "did you mean workflowInstanceId?" in page


def test_the_admin_shows_each_events_shape_read_only_to_whoever_may_see_handlers(client, consumed,
                                                                                     django_user_model):
    event = consumed(SIGNED)
    client.force_login(make_user(django_user_model, "viewer", "view_eventhandler"))
    listed = client.get("/admin/handlers/eventshape/").content.decode()
    assert event in listed
    shape = EventShape.objects.get(event=event)
    page = client.get(f"/admin/handlers/eventshape/{shape.pk}/change/").content.decode()
    assert "<code>items[*].sku</code>" in page and "<code>signer.email</code>" in page
    assert client.post(f"/admin/handlers/eventshape/{shape.pk}/delete/").status_code == 403


def test_a_dry_run_with_a_null_payload_uses_null_not_a_stored_message(api, consumed):
    event = consumed(SIGNED)
    post(api, complete(event=event, condition=None))
    body = api.post("/api/eventhub/handlers/dry-run", {"name": "complete_docusign", "payload": None},
                    format="json").json()
    assert body["sample"] is None and body["actions"][0]["input"]["workflowId"] is None


# Lint is advice: it never costs a save, a page or a dry-run --------------------------------------

# Valid JavaScript (a needless escape in a double-quoted string), which JSON does not allow.
JS_ESCAPE = r"""$["it\'s"] == 'x'"""
TEMPLATE_ESCAPE = r"""${signer["it\'s"]}"""  # (which python-jsonpath cannot read: it resolves to null)


def test_a_post_with_a_name_escaped_as_only_javascript_does_answers_200_with_the_handler_saved(api, consumed):
    event = consumed(SIGNED)
    response = post(api, complete(event=event, condition=JS_ESCAPE))
    saved = EventHandler.objects.filter(name="complete_docusign").exists()
    assert (saved, response.status_code) == (True, 200)  # not a 500 after the save: a client retrying gets 409
    assert "condition: $[\"it\\'s\"] reads [\"it's\"]" in json.loads(response[HEADER])[0]


def test_the_handler_list_and_the_dry_run_show_a_handler_with_names_escaped_as_json_does_not(
        api, admin_client, consumed):
    event = consumed(SIGNED)
    post(api, complete(TEMPLATE_ESCAPE, event=event, condition=JS_ESCAPE))
    page = admin_client.get("/admin/handlers/eventhandler/")
    assert page.status_code == 200 and "⚠ 1 unseen path" in page.content.decode()
    response = api.post("/api/eventhub/handlers/dry-run", {"name": "complete_docusign"}, format="json")
    assert response.status_code == 200, response.content
    assert [w["expression"] for w in response.json()["warnings"] if w["kind"] == "unseenPath"] == [
        JS_ESCAPE.split(" ")[0]]


@pytest.fixture
def defective_lint(monkeypatch):
    def defect(*args, **kwargs):
        raise ValueError("a defect in the lint")

    monkeypatch.setattr(lint_module, "read_paths", defect)


def test_a_defect_in_the_lint_costs_no_save_page_or_dry_run_only_its_warnings(api, admin_client, consumed,
                                                                               defective_lint):
    event = consumed(SIGNED)
    response = post(api, complete("${workflowInstnceId}", event=event))
    assert (response.status_code, HEADER in response) == (200, False)
    added = admin_client.post("/admin/handlers/eventhandler/add/",
                              form_data(complete("${workflowInstnceId}", event=event) | {"name": "other"}), follow=True)
    assert added.status_code == 200 and EventHandler.objects.count() == 2
    assert [m.message for m in added.context["messages"] if m.level_tag == "warning"] == [
        "Saved; its paths could not be checked (an error in the lint, logged): no warnings."]
    page = admin_client.get("/admin/handlers/eventhandler/").content.decode()
    assert page.count('class="lint-unchecked" title="its paths could not be checked') == 2
    dry = api.post("/api/eventhub/handlers/dry-run", {"name": "complete_docusign"}, format="json").json()
    assert dry["pathsUnchecked"].startswith("its paths could not be checked")
    assert [w["kind"] for w in dry["warnings"]] == ["unresolved", "actionWouldFail"]  # (the payload's, as ever)
    backtest = api.post("/api/eventhub/handlers/backtest", {"name": "complete_docusign"}, format="json")
    assert backtest.status_code == 200 and backtest.json()["warnings"] == []


def test_a_failed_shape_read_leaves_the_admins_save_committed(admin_client, consumed, monkeypatch):
    event = consumed(SIGNED)

    def broken(*args, **kwargs):  # inside the admin's transaction, as a dropped connection or a missing table
        from django.db import connection
        connection.cursor().execute("SELECT * FROM no_such_table")

    monkeypatch.setattr(lint_module, "shapes_of", broken)
    response = admin_client.post("/admin/handlers/eventhandler/add/", form_data(complete(event=event)), follow=True)
    assert response.status_code == 200 and EventHandler.objects.filter(name="complete_docusign").exists()


# The header --------------------------------------------------------------------------------------


def test_the_warnings_header_leaves_the_response_well_within_nginxs_default_4k_header_buffer(api, consumed):
    event = consumed(SIGNED)
    output = {f"k{n}": f"${{misspelled_field_number_{n}}}" for n in range(60)}
    response = post(api, complete(event=event, **output))
    assert response.status_code == 200
    shown = json.loads(response[HEADER])
    assert len(response[HEADER]) <= HEADER_MAX and shown[-1] == f"... and {61 - len(shown)} more: see a dry-run"
    added_by_gunicorn = "Date: Thu, 03 Dec 2026 14:00:00 GMT\r\nServer: gunicorn\r\nConnection: close\r\n"
    block = "HTTP/1.1 200 OK\r\n" + "".join(f"{name}: {value}\r\n" for name, value in response.items())
    assert len(block + added_by_gunicorn + "\r\n") <= 3072  # (nginx's proxy_buffer_size: 4096 by default)


# Many warnings ------------------------------------------------------------------------------------
# (Both took seconds when each unseen path was compared with every seen one: the number of comparisons is
# bounded in tests/handlers/test_shapes.py, timed in no unit test; these check what the answers hold.)

WIDE = {f"field_{n:03d}": {"inner_value": n, "other_value": str(n), "third": n, "fourth": n} for n in range(90)}


def test_the_handler_list_shows_warnings_on_every_handler_with_a_rich_shape(admin_client, consumed):
    event = consumed(WIDE)  # 450 paths
    for h in range(100):
        output = {f"o{n}": f"${{field_{n:03d}.innr_value}}" for n in range(5)}
        handler(complete(f"${{field_{h % 90:03d}.inner_value}}", None, event, **output), name=f"h{h:03d}")
    page = admin_client.get("/admin/handlers/eventhandler/")
    assert page.status_code == 200 and page.content.decode().count("⚠ 5 unseen paths") == 100


def test_a_post_with_hundreds_of_unseen_paths_answers_with_a_bounded_header(api, consumed):
    event = consumed(WIDE)
    output = {f"o{n}": f"${{field_{n % 90:03d}.innr_value_{n}}}" for n in range(450)}  # (at most 500 placeholders)
    response = post(api, complete(event=event, **output))
    assert response.status_code == 200 and 1 < len(json.loads(response[HEADER])) < 450
    assert len(response[HEADER]) <= HEADER_MAX


# Dry-run requests --------------------------------------------------------------------------------


def test_a_dry_run_given_both_a_payload_and_a_stored_message_is_refused(api, consumed):
    event = consumed(SIGNED)
    post(api, complete(event=event))
    first = ReceivedMessage.objects.get(event=event)
    response = api.post("/api/eventhub/handlers/dry-run", {"name": "complete_docusign", "payload": {},
                                                           "message": first.pk}, format="json")
    assert response.status_code == 400
    assert "give one of payload or message" in json.dumps(response.json())
