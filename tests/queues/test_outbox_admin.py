"""The outbox in the admin: pending and failed messages with filters, a retry action that reports counts,
and "publish a test message" on queue configs (an intermediate form with a JSON payload)."""

import json

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from queues.models import InternalMessage, OutboxMessage, QueueConfig

from ..conftest import make_user

pytestmark = pytest.mark.django_db
CHANGELIST = "admin:queues_outboxmessage_changelist"
CONFIGS = "admin:queues_queueconfig_changelist"


def row(status: str, event: str = "sqs:orders", message_id: str = "m") -> OutboxMessage:
    return OutboxMessage.objects.create(event=event, payload={"n": 1}, message_id=message_id, status=status,
                                        last_error="ProviderError: broker down" if status == "FAILED" else "")


def notes(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_it_lists_pending_and_failed_messages_filtered_by_status_and_event(admin_client,
                                                                          django_assert_max_num_queries):
    row("PENDING", message_id="p-1")
    row("FAILED", message_id="f-1")
    row("SENT", event="nats:orders", message_id="s-1")
    with django_assert_max_num_queries(9):  # (one of them the open-alert count every admin page shows)
        response = admin_client.get(reverse(CHANGELIST), {"status__exact": "FAILED"})
    assert [m.message_id for m in response.context["cl"].result_list] == ["f-1"]
    assert "broker down" in response.content.decode()
    response = admin_client.get(reverse(CHANGELIST), {"event": "nats:orders"})
    assert [m.message_id for m in response.context["cl"].result_list] == ["s-1"]


def test_the_retry_action_requeues_failed_messages_and_says_how_many(admin_client):
    failed, sent = row("FAILED", message_id="f-1"), row("SENT", message_id="s-1")
    OutboxMessage.objects.filter(pk=failed.pk).update(attempts=10)
    response = admin_client.post(reverse(CHANGELIST), {"action": "retry", "_selected_action": [failed.pk, sent.pk]},
                                 follow=True)
    assert "Queued 1 failed message(s) for another attempt; 1 were not failed" in notes(response)[0]
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == ("PENDING", 0)
    assert OutboxMessage.objects.get(pk=sent.pk).status == "SENT"


def test_outbox_messages_cannot_be_added_or_edited_in_the_admin(admin_client):
    item = row("PENDING")
    assert admin_client.get(reverse("admin:queues_outboxmessage_add")).status_code == 403
    response = admin_client.post(reverse("admin:queues_outboxmessage_change", args=[item.pk]),
                                 {"event": "sqs:elsewhere"})
    assert response.status_code == 403 and OutboxMessage.objects.get().event == "sqs:orders"


def config(event: str) -> QueueConfig:
    kind, name = event.split(":", 1)
    item = QueueConfig(kind=kind, name=name)
    item.full_clean()
    item.save()
    return item


def test_publish_a_test_message_asks_for_a_payload_then_publishes_it(admin_client):
    queue = config("conductor:admin_test")
    form = admin_client.post(reverse(CONFIGS), {"action": "publish_test_message", "_selected_action": [queue.pk]})
    assert form.status_code == 200 and "payload" in form.context["form"].fields
    response = admin_client.post(reverse(CONFIGS), {
        "action": "publish_test_message", "_selected_action": [queue.pk], "apply": "Publish",
        "payload": '{"status": "signed"}', "message_id": "admin-1"}, follow=True)
    assert notes(response) == ["conductor:admin_test: message admin-1 sent."]
    message = InternalMessage.objects.get()
    assert (message.queue, message.message_id, json.loads(message.body)) == ("admin_test", "admin-1",
                                                                               {"status": "signed"})


def test_publish_a_test_message_goes_through_the_outbox_to_a_real_broker(admin_client, make_config, providers):
    queue = make_config("sqs")
    response = admin_client.post(reverse(CONFIGS), {
        "action": "publish_test_message", "_selected_action": [queue.pk], "apply": "Publish",
        "payload": '{"n": 1}', "message_id": ""}, follow=True)
    sent = OutboxMessage.objects.get()
    assert sent.status == "SENT" and sent.source == "admin: admin"
    assert notes(response) == [f"{queue.event}: message {sent.message_id} sent."]
    assert [m.message_id for m in providers(queue.spec()).receive(10, 1)] == [sent.message_id]


def test_publish_a_test_message_refuses_a_payload_that_is_not_json(admin_client):
    queue = config("conductor:admin_test")
    response = admin_client.post(reverse(CONFIGS), {
        "action": "publish_test_message", "_selected_action": [queue.pk], "apply": "Publish",
        "payload": "{not json", "message_id": ""})
    assert response.status_code == 200 and response.context["form"].errors["payload"]
    assert not InternalMessage.objects.exists()


def test_publish_to_an_unreachable_broker_leaves_the_message_pending_and_says_so(admin_client):
    queue = QueueConfig(kind="amqp_queue", name="eh.test.unreachable", url="amqp://127.0.0.1:1/")
    queue.save()
    response = admin_client.post(reverse(CONFIGS), {
        "action": "publish_test_message", "_selected_action": [queue.pk], "apply": "Publish",
        "payload": "[1, 2]", "message_id": "later-1"}, follow=True)
    assert notes(response) == ["amqp_queue:eh.test.unreachable: message later-1 pending."]
    pending = OutboxMessage.objects.get()
    assert pending.status == "PENDING" and pending.payload == [1, 2] and pending.last_error


def test_staff_without_the_outbox_add_permission_cannot_publish(client, django_user_model):
    queue = config("conductor:admin_test")
    client.force_login(make_user(django_user_model, "viewer", "view_queueconfig", "change_queueconfig"))
    response = client.get(reverse(CONFIGS))
    assert "publish_test_message" not in response.content.decode()
    client.post(reverse(CONFIGS), {"action": "publish_test_message", "_selected_action": [queue.pk],
                                   "apply": "Publish", "payload": "{}", "message_id": ""})
    assert not InternalMessage.objects.exists()
