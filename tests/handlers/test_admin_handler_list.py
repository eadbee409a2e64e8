import pytest
from django.urls import reverse

from handlers.changes import save_handler
from handlers.models import EventHandler
from tests.conftest import make_user

CHANGELIST = reverse("admin:handlers_eventhandler_changelist")
START = {"action": "start_workflow", "start_workflow": {"name": "shipping_workflow"}}
COMPLETE = {"action": "complete_task", "complete_task": {"taskId": "${taskId}"}}


def make_handler(name: str, event: str = "sqs:orders", active: bool = True, actions=None) -> EventHandler:
    handler = EventHandler(name=name, event=event, active=active, actions=actions or [START])
    handler.full_clean()
    save_handler(handler, user=None, source="api")
    return handler


def listed(response) -> list[str]:
    return [handler.name for handler in response.context["cl"].result_list]


@pytest.fixture
def viewer_client(client, django_user_model):
    client.force_login(make_user(django_user_model, "viewer", "view_eventhandler"))
    return client


@pytest.mark.django_db
def test_it_lists_name_event_state_action_kinds_and_last_change(viewer_client):
    make_handler("ship", "sqs:shipping_start", actions=[START, COMPLETE])
    response = viewer_client.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert "ship" in html and "sqs:shipping_start" in html
    assert "start_workflow, complete_task" in html
    assert "Last change" in html
    assert "<title>Select event handler to view | Eventhub</title>" in html
    assert ">Eventhub<" in html


@pytest.mark.django_db
def test_it_filters_by_queue_kind(viewer_client):
    make_handler("on_sqs", "sqs:orders")
    make_handler("on_nats", "nats:orders.created")
    make_handler("sqs_lookalike", "conductor:sqs:orders")
    assert listed(viewer_client.get(CHANGELIST, {"kind": "sqs"})) == ["on_sqs"]
    assert listed(viewer_client.get(CHANGELIST, {"kind": "nats"})) == ["on_nats"]
    page = viewer_client.get(CHANGELIST).content.decode()
    assert "RabbitMQ exchange (amqp_exchange)" in page


@pytest.mark.django_db
def test_it_filters_by_active(viewer_client):
    make_handler("running", active=True)
    make_handler("paused", active=False)
    assert listed(viewer_client.get(CHANGELIST, {"active__exact": "1"})) == ["running"]
    assert listed(viewer_client.get(CHANGELIST, {"active__exact": "0"})) == ["paused"]


@pytest.mark.django_db
def test_it_searches_by_name_and_event(viewer_client):
    make_handler("start_shipping_workflow", "sqs:shipping_start")
    make_handler("docusign_done", "sqs:conductor_docusign_completed")
    assert listed(viewer_client.get(CHANGELIST, {"q": "shipping_workflow"})) == ["start_shipping_workflow"]
    assert listed(viewer_client.get(CHANGELIST, {"q": "docusign_completed"})) == ["docusign_done"]


@pytest.mark.django_db
def test_it_lists_twenty_handlers_in_a_constant_number_of_queries(viewer_client, django_assert_max_num_queries):
    make_handler("first")
    with django_assert_max_num_queries(50) as few:
        viewer_client.get(CHANGELIST)
    for index in range(20):
        make_handler(f"handler_{index:02}", actions=[START, COMPLETE])
    with django_assert_max_num_queries(len(few.captured_queries)) as many:
        response = viewer_client.get(CHANGELIST)
    assert len(response.context["cl"].result_list) == 21
    assert len(many.captured_queries) <= 12, [q["sql"] for q in many.captured_queries]
