import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from handlers.changes import save_handler
from handlers.models import EventHandler, HandlerRevision
from tests.conftest import make_user

IMPORT = reverse("admin:handlers_eventhandler_import")
CHANGELIST = reverse("admin:handlers_eventhandler_changelist")
START = {"action": "start_workflow", "start_workflow": {"name": "shipping_workflow", "version": 1}}
SHIPPING = {"name": "start_shipping_workflow", "event": "sqs:shipping_start", "actions": [START], "active": True}
DOCUSIGN = {
    "name": "fail_docusign_human_task_event",
    "event": "sqs:conductor_docusign_failed",
    "actions": [{"action": "fail_task", "fail_task": {
        "workflowId": "${workflowInstanceId}", "taskRefName": "human_docusign_step_ref", "input": {}}}],
    "active": True,
    "createdBy": "conductor",  # Unknown fields are ignored, as the API does.
}


def upload(content) -> dict:
    body = content if isinstance(content, bytes) else json.dumps(content).encode()
    return {"file": SimpleUploadedFile("handlers.json", body, content_type="application/json")}


def make_handler(name: str, **fields) -> EventHandler:
    handler = EventHandler(name=name, event=fields.pop("event", "sqs:orders"), actions=[START], **fields)
    handler.full_clean()
    save_handler(handler, user=None, source="api")
    return handler


def problems(response) -> list[str]:
    return list(response.context["form"].non_field_errors()) + list(response.context["form"].errors.get("file", []))


@pytest.fixture
def importer(django_user_model):
    return make_user(django_user_model, "importer", "view_eventhandler", "add_eventhandler", "change_eventhandler")


@pytest.fixture
def importer_client(client, importer):
    client.force_login(importer)
    return client


@pytest.mark.django_db
def test_it_creates_new_handlers_and_updates_existing_ones(importer_client, importer):
    make_handler("start_shipping_workflow", event="sqs:old_queue")
    response = importer_client.post(IMPORT, upload([SHIPPING, DOCUSIGN]), follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        "Imported event handlers: 1 created, 1 updated, 0 unchanged."
    ]
    assert EventHandler.objects.get(name="start_shipping_workflow").event == "sqs:shipping_start"
    created = EventHandler.objects.get(name="fail_docusign_human_task_event")
    assert created.to_conductor() == {key: value for key, value in DOCUSIGN.items() if key != "createdBy"}
    imported = HandlerRevision.objects.filter(source="import", changed_by=importer)
    assert sorted(imported.values_list("handler_name", "change")) == [
        ("fail_docusign_human_task_event", "created"), ("start_shipping_workflow", "changed")]


@pytest.mark.django_db
def test_it_imports_a_single_handler_object(importer_client):
    importer_client.post(IMPORT, upload(SHIPPING))
    assert EventHandler.objects.get().name == "start_shipping_workflow"


@pytest.mark.django_db
def test_it_imports_a_handler_without_active_as_inactive(importer_client):
    importer_client.post(IMPORT, upload({key: value for key, value in SHIPPING.items() if key != "active"}))
    assert EventHandler.objects.get().active is False


@pytest.mark.django_db
def test_it_writes_nothing_when_any_handler_is_invalid_and_lists_every_problem(importer_client):
    make_handler("start_shipping_workflow", event="sqs:old_queue")
    broken = {"name": "broken", "event": "kafka:x", "actions": [{"action": "start_workflow", "start_workflow": {}}]}
    nameless = {"event": "sqs:x", "actions": [START]}
    response = importer_client.post(IMPORT, upload([SHIPPING, broken, nameless, "text"]))
    assert response.status_code == 200
    found = problems(response)
    assert "#2 “broken”: event: must be <kind>:<queue>; unknown queue kind 'kafka'; valid kinds are " \
           "sqs, conductor, amqp_queue, amqp_exchange, nats" in found
    assert any(line.startswith("#2 “broken”: actions[0].start_workflow.name: is required") for line in found)
    assert "#3: name: Missing event handler name" in found
    assert "#4: $: the body must be a JSON object (an event handler)" in found
    assert len(found) == 4
    assert "Nothing was imported: 4 problems found." in response.content.decode()
    assert EventHandler.objects.get().event == "sqs:old_queue"
    assert not HandlerRevision.objects.filter(source="import").exists()


@pytest.mark.django_db
def test_it_rejects_a_file_naming_the_same_handler_twice(importer_client):
    response = importer_client.post(IMPORT, upload([SHIPPING, SHIPPING]))
    assert problems(response) == [
        "#2 “start_shipping_workflow”: name: the file already has a handler of this name at #1"]
    assert not EventHandler.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("content", "message"), [
    (b'[{"name": "x",]', "Not valid JSON: Expecting property name enclosed in double quotes at line 1, column 15."),
    (b"\xff\xfe[]", "The file is not UTF-8 text; export the handlers as JSON and upload that."),
    (b"[]", "The file holds no event handlers."),
    (b'"start_shipping_workflow"', "The file must hold a JSON list of event handlers or one handler object."),
])
def test_it_explains_a_file_it_cannot_read(importer_client, content, message):
    response = importer_client.post(IMPORT, upload(content))
    assert problems(response) == [message]
    assert not EventHandler.objects.exists()


@pytest.mark.django_db
def test_it_counts_unchanged_handlers_without_a_new_revision(importer_client):
    importer_client.post(IMPORT, upload([SHIPPING]), follow=True)
    response = importer_client.post(IMPORT, upload([SHIPPING]), follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        "Imported event handlers: 0 created, 0 updated, 1 unchanged."]
    assert HandlerRevision.objects.count() == 1


@pytest.mark.django_db
def test_it_links_the_import_from_the_changelist_for_those_allowed(importer_client):
    assert IMPORT in importer_client.get(CHANGELIST).content.decode()
    page = importer_client.get(IMPORT)
    assert page.status_code == 200
    assert '<input type="file" name="file"' in page.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("codenames", [
    ("view_eventhandler",),
    ("view_eventhandler", "add_eventhandler"),
    ("view_eventhandler", "change_eventhandler"),
])
def test_it_needs_both_add_and_change_permission(client, django_user_model, codenames):
    client.force_login(make_user(django_user_model, "limited", *codenames))
    assert client.get(IMPORT).status_code == 403
    assert client.post(IMPORT, upload([SHIPPING])).status_code == 403
    assert IMPORT not in client.get(CHANGELIST).content.decode()
    assert not EventHandler.objects.exists()
