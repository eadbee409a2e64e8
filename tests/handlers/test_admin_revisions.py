import pytest
from django.urls import reverse

from handlers.changes import delete_handler, save_handler
from handlers.models import EventHandler, HandlerRevision
from tests.conftest import make_user

REVISIONS = reverse("admin:handlers_handlerrevision_changelist")
START = {"action": "start_workflow", "start_workflow": {"name": "shipping_workflow", "version": 1}}


def revision_url(revision: HandlerRevision, view: str = "change") -> str:
    return reverse(f"admin:handlers_handlerrevision_{view}", args=[revision.pk])


def handler_with_two_revisions(user=None) -> EventHandler:
    handler = EventHandler(name="ship", event="sqs:orders", actions=[START], active=True)
    save_handler(handler, user=user, source="api")
    handler.event = "sqs:shipping_start"
    handler.description = "ships orders"
    save_handler(handler, user=user, source="admin")
    return handler


@pytest.fixture
def editor(django_user_model):
    return make_user(django_user_model, "editor", "view_eventhandler", "add_eventhandler", "change_eventhandler")


@pytest.fixture
def editor_client(client, editor):
    client.force_login(editor)
    return client


@pytest.mark.django_db
def test_it_shows_the_snapshot_and_the_differences_from_the_previous_revision(editor_client, editor):
    handler = handler_with_two_revisions(editor)
    response = editor_client.get(revision_url(handler.revisions.get(number=2)))
    assert response.status_code == 200
    html = response.content.decode()
    assert "&quot;event&quot;: &quot;sqs:shipping_start&quot;," in html
    assert "--- revision 1" in html and "+++ revision 2" in html
    assert "-  &quot;event&quot;: &quot;sqs:orders&quot;," in html
    assert "+  &quot;event&quot;: &quot;sqs:shipping_start&quot;," in html
    assert "+  &quot;description&quot;: &quot;ships orders&quot;" in html
    assert ">editor<" in html
    first = editor_client.get(revision_url(handler.revisions.get(number=1))).content.decode()
    assert "First revision" in first


@pytest.mark.django_db
def test_it_lists_revisions_newest_first_and_filters_them_by_handler(editor_client, django_assert_max_num_queries):
    handler_with_two_revisions()
    other = EventHandler(name="other", event="sqs:other", actions=[START])
    save_handler(other, user=None, source="api")
    for _ in range(18):
        save_handler(other, user=None, source="api")
    with django_assert_max_num_queries(12):
        response = editor_client.get(REVISIONS)
    assert len(response.context["cl"].result_list) == 21
    response = editor_client.get(REVISIONS, {"handler_name": "ship"})
    assert [(r.handler_name, r.number) for r in response.context["cl"].result_list] == [("ship", 2), ("ship", 1)]


@pytest.mark.django_db
def test_it_restores_a_revision_after_showing_what_will_change(editor_client, editor):
    handler = handler_with_two_revisions()
    first = handler.revisions.get(number=1)
    assert revision_url(first, "restore") in editor_client.get(revision_url(first)).content.decode()
    confirm = editor_client.get(revision_url(first, "restore"))
    assert confirm.status_code == 200
    assert "+  &quot;event&quot;: &quot;sqs:orders&quot;," in confirm.content.decode()
    response = editor_client.post(revision_url(first, "restore"), follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        "Restored “ship” as of revision 1; saved as revision 3."]
    assert response.redirect_chain[-1][0] == reverse("admin:handlers_eventhandler_change", args=[handler.pk])
    handler.refresh_from_db()
    assert (handler.event, handler.description, handler.revision) == ("sqs:orders", None, 3)
    restored = handler.revisions.get(number=3)
    assert (restored.change, restored.source, restored.changed_by) == ("restored", "restore", editor)


@pytest.mark.django_db
def test_it_recreates_a_deleted_handler_from_a_revision(editor_client):
    handler = handler_with_two_revisions()
    delete_handler(handler, user=None, source="api")
    deleted = HandlerRevision.objects.get(change="deleted")
    response = editor_client.post(revision_url(deleted, "restore"), follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        "Recreated deleted handler “ship” as of revision 3; saved as revision 4."]
    assert EventHandler.objects.get(name="ship").event == "sqs:shipping_start"


@pytest.mark.django_db
def test_it_refuses_to_restore_a_revision_that_no_longer_validates(editor_client):
    handler = handler_with_two_revisions()
    invalid = HandlerRevision.objects.create(
        handler=handler, handler_name="ship", number=3, change="changed", source="api",
        snapshot={"name": "ship", "event": "kafka:orders", "actions": [START]})
    response = editor_client.post(revision_url(invalid, "restore"), follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        "Revision 3 cannot be restored: event: must be <kind>:<queue>; unknown queue kind 'kafka'; "
        "valid kinds are sqs, conductor, amqp_queue, amqp_exchange, nats"]
    handler.refresh_from_db()
    assert (handler.event, handler.revision) == ("sqs:shipping_start", 2)


@pytest.mark.django_db
def test_revisions_are_read_only_for_everyone(admin_client):
    revision = handler_with_two_revisions().revisions.get(number=2)
    assert admin_client.get(reverse("admin:handlers_handlerrevision_add")).status_code == 403
    assert admin_client.get(revision_url(revision, "delete")).status_code == 403
    response = admin_client.post(revision_url(revision), {"source": "forged", "number": 9})
    assert response.status_code == 403
    revision.refresh_from_db()
    assert (revision.source, revision.number) == ("admin", 2)
    page = admin_client.get(revision_url(revision)).content.decode()
    assert 'name="_save"' not in page


@pytest.mark.django_db
def test_a_viewer_sees_the_history_but_cannot_restore(client, django_user_model):
    client.force_login(make_user(django_user_model, "viewer", "view_eventhandler"))
    first = handler_with_two_revisions().revisions.get(number=1)
    page = client.get(revision_url(first))
    assert page.status_code == 200
    assert revision_url(first, "restore") not in page.content.decode()
    assert client.get(revision_url(first, "restore")).status_code == 403
    assert client.post(revision_url(first, "restore")).status_code == 403
    assert EventHandler.objects.get().revision == 2


@pytest.mark.django_db
def test_recreating_a_deleted_handler_needs_the_add_permission(client, django_user_model):
    client.force_login(make_user(django_user_model, "changer", "view_eventhandler", "change_eventhandler"))
    handler = handler_with_two_revisions()
    delete_handler(handler, user=None, source="api")
    deleted = HandlerRevision.objects.get(change="deleted")
    assert client.post(revision_url(deleted, "restore")).status_code == 403
    assert not EventHandler.objects.exists()


@pytest.mark.django_db
def test_the_history_button_of_a_handler_leads_to_its_revisions(editor_client):
    handler = handler_with_two_revisions()
    response = editor_client.get(reverse("admin:handlers_eventhandler_history", args=[handler.pk]), follow=True)
    assert response.redirect_chain[-1][0] == REVISIONS + "?handler_name=ship"
    assert [r.number for r in response.context["cl"].result_list] == [2, 1]
