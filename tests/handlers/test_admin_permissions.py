import json

import pytest
from django.urls import reverse

from handlers.changes import save_handler
from handlers.models import EventHandler, HandlerRevision
from tests.conftest import make_user

CHANGELIST = reverse("admin:handlers_eventhandler_changelist")
START = {"action": "start_workflow", "start_workflow": {"name": "shipping_workflow", "version": 1}}


@pytest.fixture
def handler(db) -> EventHandler:
    handler = EventHandler(name="ship", event="sqs:orders", actions=[START], active=False)
    save_handler(handler, user=None, source="api")
    return handler


@pytest.fixture
def viewer_client(client, django_user_model):
    client.force_login(make_user(django_user_model, "viewer", "view_eventhandler"))
    return client


def change_url(handler: EventHandler) -> str:
    return reverse("admin:handlers_eventhandler_change", args=[handler.pk])


@pytest.mark.django_db
@pytest.mark.parametrize("staff", [False, None])
def test_only_staff_reach_the_admin(client, django_user_model, handler, staff):
    if staff is not None:
        client.force_login(make_user(django_user_model, "outsider", "view_eventhandler", "change_eventhandler",
                                     staff=staff))
    for url in (CHANGELIST, change_url(handler), reverse("admin:handlers_eventhandler_import")):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


@pytest.mark.django_db
def test_staff_without_handler_permissions_see_nothing(client, django_user_model, handler):
    client.force_login(make_user(django_user_model, "bystander"))
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(change_url(handler)).status_code == 403


@pytest.mark.django_db
def test_a_viewer_sees_the_list_without_add_or_change_actions(viewer_client, handler):
    response = viewer_client.get(CHANGELIST)
    assert response.status_code == 200
    assert reverse("admin:handlers_eventhandler_add") not in response.content.decode()
    choices = [name for name, _ in response.context["action_form"].fields["action"].choices if name]
    assert choices == ["export_selected"]


@pytest.mark.django_db
def test_a_viewer_sees_a_handler_read_only_with_pretty_json(viewer_client, handler):
    response = viewer_client.get(change_url(handler))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<textarea name="actions"' not in html and 'name="_save"' not in html
    assert "&quot;start_workflow&quot;: {\n      &quot;name&quot;: &quot;shipping_workflow&quot;" in html
    assert reverse("admin:handlers_eventhandler_delete", args=[handler.pk]) not in html


@pytest.mark.django_db
def test_a_viewer_cannot_add_change_or_delete(viewer_client, handler):
    data = {"name": "ship", "event": "sqs:hijacked", "active": "on", "actions": json.dumps([START])}
    assert viewer_client.post(change_url(handler), data).status_code == 403
    assert viewer_client.get(reverse("admin:handlers_eventhandler_add")).status_code == 403
    assert viewer_client.post(reverse("admin:handlers_eventhandler_add"), {**data, "name": "new"}).status_code == 403
    delete_url = reverse("admin:handlers_eventhandler_delete", args=[handler.pk])
    assert viewer_client.post(delete_url, {"post": "yes"}).status_code == 403
    handler.refresh_from_db()
    assert (handler.event, handler.active) == ("sqs:orders", False)
    assert EventHandler.objects.count() == 1
    assert HandlerRevision.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["activate_selected", "deactivate_selected", "delete_selected"])
def test_a_viewer_cannot_run_the_bulk_change_actions(viewer_client, handler, action):
    response = viewer_client.post(CHANGELIST, {"action": action, "_selected_action": [handler.pk], "post": "yes"},
                                  follow=True)
    assert [str(m) for m in response.context["messages"]] == ["No action selected."]
    handler.refresh_from_db()
    assert handler.active is False
    assert HandlerRevision.objects.count() == 1


@pytest.mark.django_db
def test_a_viewer_can_export(viewer_client, handler):
    response = viewer_client.post(CHANGELIST, {"action": "export_selected", "_selected_action": [handler.pk]})
    assert json.loads(response.content) == [handler.to_conductor()]
