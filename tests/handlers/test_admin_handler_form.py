import json

import pytest
from django.urls import reverse

from handlers.changes import save_handler
from handlers.models import EventHandler, HandlerRevision
from tests.conftest import make_user

ADD = reverse("admin:handlers_eventhandler_add")
CHANGELIST = reverse("admin:handlers_eventhandler_changelist")
SHIPPING_ACTIONS = [
    {"action": "start_workflow",
     "start_workflow": {"name": "shipping_workflow", "version": 1, "input": {"address": "${address}"}}}
]


def change_url(handler: EventHandler) -> str:
    return reverse("admin:handlers_eventhandler_change", args=[handler.pk])


def form_data(**overrides) -> dict:
    data = {
        "name": "start_shipping_workflow",
        "event": "sqs:shipping_start",
        "active": "on",
        "description": "",
        "condition": "",
        "evaluator_type": "",
        "actions": json.dumps(SHIPPING_ACTIONS),
        "_save": "Save",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def make_handler(name: str = "start_shipping_workflow", **fields) -> EventHandler:
    event = fields.pop("event", "sqs:shipping_start")
    handler = EventHandler(name=name, event=event, actions=SHIPPING_ACTIONS, **fields)
    handler.full_clean()
    save_handler(handler, user=None, source="api")
    return handler


@pytest.fixture
def editor(django_user_model):
    return make_user(
        django_user_model, "editor", "view_eventhandler", "add_eventhandler", "change_eventhandler",
        "delete_eventhandler",
    )


@pytest.fixture
def editor_client(client, editor):
    client.force_login(editor)
    return client


@pytest.mark.django_db
def test_it_shows_the_actions_as_pretty_printed_json(editor_client):
    handler = make_handler()
    response = editor_client.get(change_url(handler))
    assert response.status_code == 200
    textarea = response.context["adminform"].form["actions"].value()
    assert json.loads(textarea) == SHIPPING_ACTIONS
    assert textarea.startswith('[\n  {\n    "action": "start_workflow",')


@pytest.mark.django_db
def test_it_defaults_active_to_true_on_the_add_form_and_says_why(editor_client):
    response = editor_client.get(ADD)
    field = response.context["adminform"].form.fields["active"]
    assert field.initial is True
    assert "Conductor's rule" in field.help_text
    assert " checked" in response.context["adminform"].form["active"].as_widget()


@pytest.mark.django_db
def test_it_creates_a_handler_and_keeps_the_creation_as_a_revision(editor_client, editor):
    response = editor_client.post(ADD, form_data())
    assert response.status_code == 302, response.context["adminform"].form.errors
    handler = EventHandler.objects.get(name="start_shipping_workflow")
    assert handler.active is True
    assert handler.actions == SHIPPING_ACTIONS
    revision = HandlerRevision.objects.get(handler=handler)
    assert (revision.number, revision.change, revision.source, revision.changed_by) == (1, "created", "admin", editor)
    assert handler.revision == 1


@pytest.mark.django_db
def test_it_drops_null_fields_of_actions_like_the_api(editor_client):
    actions = [{"action": "start_workflow", "start_workflow": {"name": "shipping_workflow", "version": None},
                "expandInlineJSON": None}]
    editor_client.post(ADD, form_data(actions=json.dumps(actions)))
    assert EventHandler.objects.get().actions == [{"action": "start_workflow",
                                                   "start_workflow": {"name": "shipping_workflow"}}]


@pytest.mark.django_db
def test_it_accepts_the_documented_docusign_handler_verbatim(editor_client):
    actions = [{"action": "complete_task", "complete_task": {
        "workflowId": "${workflowInstanceId}", "taskRefName": "human_docusign_step_ref", "input": {}}}]
    response = editor_client.post(ADD, form_data(
        name="complete_docusign_human_task_event", event="sqs:conductor_docusign_completed",
        actions=json.dumps(actions)))
    assert response.status_code == 302
    assert EventHandler.objects.get().actions == actions


@pytest.mark.django_db
def test_it_shows_every_model_error_with_its_path_on_the_form(editor_client):
    actions = [{"action": "start_workflow", "start_workflow": {"version": 1}}, {"action": "fly"}]
    response = editor_client.post(ADD, form_data(
        event="kafka:orders", evaluator_type="python", condition="$.a ==", actions=json.dumps(actions)))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "actions[0].start_workflow.name: is required" in errors["actions"][0]
    assert errors["actions"][1].startswith("actions[1].action: unknown action 'fly'")
    assert "unknown queue kind 'kafka'" in errors["event"][0]
    assert "unknown evaluator 'python'" in errors["evaluator_type"][0]
    assert "actions[0].start_workflow.name" in response.content.decode()
    assert not EventHandler.objects.exists()
    assert not HandlerRevision.objects.exists()


@pytest.mark.django_db
def test_it_reports_a_condition_that_does_not_compile(editor_client):
    response = editor_client.post(ADD, form_data(condition="$.status == ", evaluator_type="javascript"))
    assert response.status_code == 200
    assert "condition: does not compile as JavaScript" in response.context["adminform"].form.errors["condition"][0]


@pytest.mark.django_db
def test_it_says_where_invalid_json_breaks_and_keeps_what_was_typed(editor_client):
    typed = '[{"action": "start_workflow",\n  "start_workflow": {"name": "x",}}]'
    response = editor_client.post(ADD, form_data(actions=typed))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors["actions"] == [
        "Not valid JSON: Expecting property name enclosed in double quotes at line 2, column 34."
    ]
    assert form["actions"].value() == typed
    assert not EventHandler.objects.exists()


@pytest.mark.django_db
def test_it_rejects_actions_that_are_not_a_list(editor_client):
    response = editor_client.post(ADD, form_data(actions='{"action": "start_workflow"}'))
    assert response.context["adminform"].form.errors["actions"] == ["actions: must be a list of actions"]
    response = editor_client.post(ADD, form_data(actions="[]"))
    assert response.context["adminform"].form.errors["actions"] == [
        "actions: No actions specified. Please specify at-least one action"
    ]


@pytest.mark.django_db
def test_it_saves_a_change_as_the_next_revision(editor_client, editor):
    handler = make_handler(active=True)
    response = editor_client.post(change_url(handler), form_data(description="ships orders", active=None))
    assert response.status_code == 302
    handler.refresh_from_db()
    assert (handler.description, handler.active, handler.revision) == ("ships orders", False, 2)
    latest = HandlerRevision.objects.filter(handler=handler).order_by("-number").first()
    assert (latest.change, latest.source, latest.changed_by_name) == ("changed", "admin", "editor")
    assert latest.snapshot["description"] == "ships orders"


@pytest.mark.django_db
def test_it_keeps_a_deletion_as_a_revision(editor_client):
    handler = make_handler()
    url = reverse("admin:handlers_eventhandler_delete", args=[handler.pk])
    assert editor_client.post(url, {"post": "yes"}).status_code == 302
    assert not EventHandler.objects.exists()
    deleted = HandlerRevision.objects.get(change="deleted")
    assert (deleted.handler_name, deleted.number, deleted.source) == ("start_shipping_workflow", 2, "admin")


@pytest.mark.django_db
def test_it_keeps_each_bulk_deletion_as_a_revision(editor_client):
    handlers = [make_handler("one"), make_handler("two")]
    response = editor_client.post(CHANGELIST, {
        "action": "delete_selected", "_selected_action": [h.pk for h in handlers], "post": "yes"})
    assert response.status_code == 302
    assert not EventHandler.objects.exists()
    assert sorted(HandlerRevision.objects.filter(change="deleted").values_list("handler_name", flat=True)) == [
        "one", "two"]


@pytest.mark.django_db
def test_it_shows_the_history_newest_first_on_the_change_page(editor_client):
    handler = make_handler()
    handler.description = "second"
    save_handler(handler, user=None, source="api")
    response = editor_client.get(change_url(handler))
    html = response.content.decode()
    assert html.index(">r2<") < html.index(">r1<")
    assert "All 2 revisions" in html
    assert reverse("admin:handlers_handlerrevision_change", args=[handler.revisions.get(number=2).pk]) in html


@pytest.mark.django_db
def test_it_refuses_once_to_overwrite_a_change_made_since_the_form_was_opened(editor_client):
    handler = make_handler()
    opened = editor_client.get(change_url(handler))
    assert '<input type="hidden" name="loaded_revision" value="1"' in opened.content.decode()
    handler.description = "changed through the API meanwhile"
    save_handler(handler, user=None, source="api")
    response = editor_client.post(change_url(handler), form_data(event="sqs:mine", loaded_revision=1))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.non_field_errors() == [
        "Someone saved revision 2 of this handler after you opened revision 1; your edits are kept below but not "
        "saved. Compare with its history, then save again to overwrite."]
    assert form["event"].value() == "sqs:mine"
    handler.refresh_from_db()
    assert (handler.event, handler.revision) == ("sqs:shipping_start", 2)
    assert form["loaded_revision"].value() == "2"
    response = editor_client.post(change_url(handler), form_data(event="sqs:mine", loaded_revision=2))
    assert response.status_code == 302
    handler.refresh_from_db()
    assert (handler.event, handler.revision) == ("sqs:mine", 3)


@pytest.mark.django_db
@pytest.mark.parametrize(("actions", "shown"), [("", ""), ("[]", "actions: ")])  # (the model's rule names its path)
def test_it_shows_conductors_texts_for_a_missing_name_event_or_actions(editor_client, actions, shown):
    response = editor_client.post(ADD, form_data(name="", event="", actions=actions))
    errors = response.context["adminform"].form.errors
    assert errors["name"] == ["Missing event handler name"]
    assert errors["event"] == ["Missing event location"]
    assert errors["actions"] == [f"{shown}No actions specified. Please specify at-least one action"]
    assert not EventHandler.objects.exists()
