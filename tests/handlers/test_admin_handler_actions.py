import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from handlers.changes import save_handler
from handlers.models import EventHandler, HandlerRevision
from tests.conftest import make_user

CHANGELIST = reverse("admin:handlers_eventhandler_changelist")
START = {"action": "start_workflow", "start_workflow": {"name": "shipping_workflow", "version": 1}}


def make_handler(name: str, active: bool, **fields) -> EventHandler:
    handler = EventHandler(name=name, event=fields.pop("event", "sqs:orders"), active=active, actions=[START], **fields)
    handler.full_clean()
    save_handler(handler, user=None, source="api")
    return handler


def run_action(client, action: str, handlers: list[EventHandler]):
    return client.post(CHANGELIST, {"action": action, "_selected_action": [h.pk for h in handlers]}, follow=True)


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.fixture
def editor_client(client, django_user_model):
    client.force_login(make_user(django_user_model, "editor", "view_eventhandler", "change_eventhandler"))
    return client


@pytest.mark.django_db
def test_it_activates_the_selected_handlers_and_says_how_many_already_were(editor_client):
    paused = [make_handler("a", False), make_handler("b", False)]
    running = make_handler("c", True)
    response = run_action(editor_client, "activate_selected", [*paused, running])
    assert messages_of(response) == ["Activated 2 event handlers; 1 was already active."]
    assert set(EventHandler.objects.values_list("active", flat=True)) == {True}
    changed = HandlerRevision.objects.filter(change="changed", source="admin", changed_by_name="editor")
    assert sorted(changed.values_list("handler_name", flat=True)) == ["a", "b"]
    assert all(revision.snapshot["active"] is True for revision in changed)


@pytest.mark.django_db
def test_it_deactivates_the_selected_handlers(editor_client):
    handlers = [make_handler("a", True), make_handler("b", False), make_handler("c", False)]
    response = run_action(editor_client, "deactivate_selected", handlers)
    assert messages_of(response) == ["Deactivated 1 event handler; 2 were already inactive."]
    assert not EventHandler.objects.filter(active=True).exists()
    assert HandlerRevision.objects.filter(change="changed").count() == 1


@pytest.mark.django_db
def test_it_exports_the_selected_handlers_as_conductor_json(editor_client):
    handler = make_handler("ship", True, condition="$.status == 'new'", description="ships")
    make_handler("not_selected", True)
    response = editor_client.post(CHANGELIST, {"action": "export_selected", "_selected_action": [handler.pk]})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith('attachment; filename="eventhandlers-')
    assert response["Content-Disposition"].endswith('.json"')
    assert json.loads(response.content) == [{
        "name": "ship", "event": "sqs:orders", "condition": "$.status == 'new'", "actions": [START],
        "active": True, "description": "ships",
    }]


@pytest.mark.django_db
def test_an_export_can_be_imported_back_unchanged(client, django_user_model):
    client.force_login(make_user(django_user_model, "ops", "view_eventhandler", "add_eventhandler",
                                 "change_eventhandler"))
    handlers = [make_handler("a", True), make_handler("b", False, event="nats:orders.created")]
    exported = client.post(CHANGELIST, {"action": "export_selected", "_selected_action": [h.pk for h in handlers]})
    EventHandler.objects.filter(name="b").delete()
    upload = SimpleUploadedFile("handlers.json", exported.content, content_type="application/json")
    response = client.post(reverse("admin:handlers_eventhandler_import"), {"file": upload}, follow=True)
    assert messages_of(response) == ["Imported event handlers: 1 created, 0 updated, 1 unchanged."]
    assert EventHandler.objects.get(name="b").to_conductor() == handlers[1].to_conductor()
