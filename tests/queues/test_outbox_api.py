"""`POST /api/eventhub/queues/publish`: a JSON payload to a configured queue, through the outbox."""

import json

import pytest

from queues.models import InternalMessage, OutboxMessage, QueueConfig

from ..conftest import make_user, token_client

pytestmark = pytest.mark.django_db
URL = "/api/eventhub/queues/publish"


def test_it_publishes_to_a_real_broker_with_the_given_message_id(api, make_config, providers):
    queue = make_config("nats")
    response = api.post(URL, {"event": queue.event, "payload": {"status": "signed"}, "messageId": "api-1"},
                        format="json")
    assert response.status_code == 200
    assert response.json() == {"messageId": "api-1", "event": queue.event, "status": "SENT",
                               "outboxId": OutboxMessage.objects.get().pk}
    (message,) = providers(queue.spec()).receive(10, 1)
    assert message.message_id == "api-1" and json.loads(message.body) == {"status": "signed"}
    assert OutboxMessage.objects.get().source == "api: root"


def test_it_works_with_and_without_a_trailing_slash_and_a_fresh_id(api):
    QueueConfig.objects.create(kind="conductor", name="api_q")
    first = api.post(URL + "/", {"event": "conductor:api_q", "payload": [1]}, format="json")
    assert first.status_code == 200 and first.json()["status"] == "SENT" and first.json()["outboxId"] is None
    assert InternalMessage.objects.get().message_id == first.json()["messageId"]


def test_a_broker_that_is_down_leaves_the_message_pending_for_the_relay(api):
    QueueConfig.objects.create(kind="amqp_queue", name="eh.test.unreachable", url="amqp://127.0.0.1:1/")
    response = api.post(URL, {"event": "amqp_queue:eh.test.unreachable", "payload": {}}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "PENDING" and body["lastError"].startswith("ProviderError")
    assert OutboxMessage.objects.get().status == "PENDING"


@pytest.mark.parametrize(("body", "path"), [
    ({"event": "sqs:nowhere", "payload": {}}, "event"),
    ({"event": "kafka:orders", "payload": {}}, "event"),
    ({"payload": {}}, "event"),
    ({"event": "conductor:api_q"}, "payload"),
    ({"event": "conductor:api_q", "payload": {}, "messageId": ""}, "messageId"),
])
def test_it_refuses_a_bad_request_naming_the_field(api, body, path):
    QueueConfig.objects.create(kind="conductor", name="api_q")
    response = api.post(URL, body, format="json")
    assert response.status_code == 400
    assert [e["path"] for e in response.json()["validationErrors"]] == [path]
    assert not OutboxMessage.objects.exists() and not InternalMessage.objects.exists()


def test_it_needs_the_outbox_add_permission(django_user_model):
    QueueConfig.objects.create(kind="conductor", name="api_q")
    body = {"event": "conductor:api_q", "payload": {}}
    editor = token_client(make_user(django_user_model, "editor", "change_queueconfig", "view_outboxmessage"))
    assert editor.post(URL, body, format="json").status_code == 403
    publisher = token_client(make_user(django_user_model, "publisher", "add_outboxmessage"))
    assert publisher.post(URL, body, format="json").status_code == 200
    assert InternalMessage.objects.count() == 1


def test_it_needs_authentication(client):
    response = client.post(URL, {"event": "conductor:api_q", "payload": {}}, content_type="application/json")
    assert response.status_code == 401 and not InternalMessage.objects.exists()


def test_the_route_is_in_the_openapi_schema(api):
    schema = api.get("/api/schema", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/eventhub/queues/publish"]["post"]
    assert operation["operationId"] == "publishMessage" and "add_outboxmessage" in operation["description"]
