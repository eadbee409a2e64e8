"""The queues in the admin: configs with their handlers and health, quarantine inspect/retry/discard."""

import json

import pytest
from django.urls import reverse

from handlers.listener import Listener
from handlers.models import EventHandler
from queues.configs import ensure_config
from queues.models import InternalMessage, ListenerHeartbeat, QuarantinedMessage, QueueConfig

pytestmark = pytest.mark.django_db

CONFIG_FORM = {
    "kind": "sqs", "name": "orders", "enabled": "on", "unmatched": "record", "url": "", "url_ref": "", "region": "",
    "endpoint_url": "", "provision": "on", "authorized_accounts": "[]", "batch_size": "10", "wait_seconds": "20",
    "visibility_timeout": "60", "max_deliveries": "5", "poll_interval_minutes": "1", "concurrency": "2",
}


def handler(name: str, event: str, active: bool = True) -> EventHandler:
    return EventHandler.objects.create(name=name, event=event, active=active, actions=[
        {"action": "start_workflow", "start_workflow": {"name": "wf"}}])


def quarantined(body: str = "not json") -> QuarantinedMessage:
    config = ensure_config("conductor:admin_q")
    InternalMessage.objects.create(queue=config.name, message_id="q-1", body=body)
    Listener(events=[config.event]).run_once(wait=0)
    return QuarantinedMessage.objects.get()


def test_it_lists_queue_configs_with_their_handler_counts_in_few_queries(admin_client, django_assert_max_num_queries):
    for n in range(3):
        config = ensure_config(f"sqs:orders-{n}")
        handler(f"h-{n}-a", config.event)
        handler(f"h-{n}-b", config.event, active=False)
    with django_assert_max_num_queries(8):
        response = admin_client.get(reverse("admin:queues_queueconfig_changelist"))
    assert response.status_code == 200
    assert [c._handlers for c in response.context["cl"].result_list] == [2, 2, 2]


def test_it_shows_the_handlers_listening_on_a_queue(admin_client):
    config = ensure_config("nats:orders.created")
    handler("ship_it", config.event)
    handler("dormant", config.event, active=False)
    response = admin_client.get(reverse("admin:queues_queueconfig_change", args=[config.pk]))
    page = response.content.decode()
    assert "ship_it" in page and "dormant</a> (inactive)" in page


def test_it_explains_per_kind_errors_when_saving_a_config(admin_client):
    response = admin_client.post(reverse("admin:queues_queueconfig_add"), {
        **CONFIG_FORM, "batch_size": "50", "authorized_accounts": '["12"]', "concurrency": "40"})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "at most 10" in errors["batch_size"][0] and "12-digit" in errors["authorized_accounts"][0]
    assert "between 1 and 16" in errors["concurrency"][0]
    assert not QueueConfig.objects.exists()

    response = admin_client.post(reverse("admin:queues_queueconfig_add"), CONFIG_FORM)
    assert response.status_code == 302
    assert QueueConfig.objects.get().event == "sqs:orders"


def test_it_disables_and_enables_queues_in_bulk(admin_client):
    config = ensure_config("conductor:bulk")
    url = reverse("admin:queues_queueconfig_changelist")
    admin_client.post(url, {"action": "disable", "_selected_action": [config.pk]})
    assert not QueueConfig.objects.get().enabled
    admin_client.post(url, {"action": "enable", "_selected_action": [config.pk]})
    assert QueueConfig.objects.get().enabled


def test_it_retries_a_quarantined_message_with_an_edited_payload(admin_client):
    item = quarantined()
    url = reverse("admin:queues_quarantinedmessage_change", args=[item.pk])
    page = admin_client.get(url).content.decode()
    assert "not json" in page and "delivery history" in page.lower()
    response = admin_client.post(url, {"operation": "retry", "edited_payload": '{"fixed": 1}', "note": ""})
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.status == QuarantinedMessage.Status.RETRIED and item.resolved_by is not None
    resent = InternalMessage.objects.get()
    assert (json.loads(resent.body), resent.message_id) == ({"fixed": 1}, f"q-1.retry{item.pk}")


def test_it_refuses_an_edited_payload_that_is_not_json(admin_client):
    item = quarantined()
    url = reverse("admin:queues_quarantinedmessage_change", args=[item.pk])
    response = admin_client.post(url, {"operation": "retry", "edited_payload": "{nope", "note": ""})
    assert "Not valid JSON" in response.context["adminform"].form.errors["edited_payload"][0]
    assert QuarantinedMessage.objects.get().status == QuarantinedMessage.Status.QUARANTINED
    assert not InternalMessage.objects.exists()


def json_quarantined(payload) -> QuarantinedMessage:
    config = ensure_config("conductor:admin_q")
    return QuarantinedMessage.objects.create(config=config, event=config.event, message_id="q-1", payload=payload,
                                             reason=QuarantinedMessage.Reason.MAX_DELIVERIES)


def test_it_retries_with_an_edit_from_1_to_true_as_an_edit(admin_client):
    # In Python {"x": 1} == {"x": True}: the edit must not be mistaken for the quarantined payload.
    item = json_quarantined({"x": 1})
    url = reverse("admin:queues_quarantinedmessage_change", args=[item.pk])
    admin_client.post(url, {"operation": "retry", "edited_payload": '{"x": true}', "note": ""})
    assert InternalMessage.objects.get().body == '{"x": true}'
    item.refresh_from_db()
    assert item.resolution.endswith('with edited payload {"x": true}')


def test_it_refuses_an_edited_payload_of_null_instead_of_sending_the_quarantined_one(admin_client):
    item = json_quarantined({"x": 1})
    url = reverse("admin:queues_quarantinedmessage_change", args=[item.pk])
    response = admin_client.post(url, {"operation": "retry", "edited_payload": "null", "note": ""})
    assert "null cannot be sent" in response.context["adminform"].form.errors["edited_payload"][0]
    assert QuarantinedMessage.objects.get().status == QuarantinedMessage.Status.QUARANTINED
    assert not InternalMessage.objects.exists()


def test_it_discards_a_quarantined_message_only_with_a_reason(admin_client):
    item = quarantined()
    url = reverse("admin:queues_quarantinedmessage_change", args=[item.pk])
    response = admin_client.post(url, {"operation": "discard", "edited_payload": "", "note": ""})
    assert "Say why" in response.context["adminform"].form.errors["note"][0]
    admin_client.post(url, {"operation": "discard", "edited_payload": "", "note": "garbage from a load test"})
    item.refresh_from_db()
    assert (item.status, item.resolution) == (QuarantinedMessage.Status.DISCARDED, "garbage from a load test")


def test_it_shows_listener_health_and_the_audit_tables(admin_client):
    quarantined()
    assert ListenerHeartbeat.objects.exists()
    for model in ("listenerheartbeat", "receivedmessage", "internalmessage", "quarantinedmessage"):
        response = admin_client.get(reverse(f"admin:queues_{model}_changelist"))
        assert response.status_code == 200, model


def test_it_asks_the_broker_for_the_depth_on_request(admin_client):
    from queues.publish import publish

    config = ensure_config("conductor:depth")
    broken = QueueConfig.objects.create(kind="amqp_queue", name="eh.test.nowhere", url="amqp://127.0.0.1:1/")
    publish(config.event, {})
    publish(config.event, {})
    response = admin_client.post(reverse("admin:queues_queueconfig_changelist"),
                                 {"action": "refresh_depth", "_selected_action": [config.pk, broken.pk]}, follow=True)
    notes = [str(m) for m in response.context["messages"]]
    assert "conductor:depth: 2 ready, 0 dead-lettered." in notes
    assert any("RabbitMQ unavailable" in note for note in notes)
    assert QueueConfig.objects.get(pk=config.pk).depth == 2
