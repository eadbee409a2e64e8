"""What the listener leaves behind tells the truth: a queue's last error clears once it works again, dead
consumers' heartbeats do not pile up, and a delivery whose work a later delivery settled says so."""

import json
import re
from datetime import timedelta

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from handlers import dispatch
from handlers.explain import explain
from handlers.listener import Consumer, Listener
from handlers.models import ActionExecution
from handlers.tasks import purge_old_records
from queues import records
from queues.models import ListenerHeartbeat, QueueConfig, ReceivedMessage
from queues.providers.base import ProviderError
from workflows.models import Workflow

from ..workflows.conftest import register, shipping_definition
from .seeds import START_SHIPPING
from .test_dispatch import handler

Outcome = ReceivedMessage.Outcome


def fail_once(monkeypatch, consumer: Consumer) -> None:
    real = consumer.provider.receive

    def receive(*args):
        monkeypatch.setattr(consumer.provider, "receive", real)
        raise ProviderError("connection refused")

    monkeypatch.setattr(consumer.provider, "receive", receive)


@pytest.mark.django_db(transaction=True)
def test_a_queues_last_error_clears_on_its_next_good_poll_and_its_time_stays(make_config, monkeypatch, admin_client):
    config = make_config("conductor")
    consumer = Consumer(config)
    fail_once(monkeypatch, consumer)
    with pytest.raises(ProviderError):
        consumer.poll_once(wait=0)
    consumer.failed(ProviderError("connection refused"))
    config.refresh_from_db()
    assert config.last_error == "ProviderError: connection refused"
    failed_at = config.last_error_at
    listed = admin_client.get(reverse("admin:queues_queueconfig_changelist")).content.decode().replace("\xa0", " ")
    assert re.search(r"(just now|\d+ s ago)ProviderError: connection refused", re.sub(r"<[^>]+>", "", listed))

    consumer._last_beat = 0.0  # (a heartbeat is written every few seconds; this poll writes one)
    assert consumer.poll_once(wait=0) == 0
    config.refresh_from_db()
    assert (config.last_error, config.last_error_at) == ("", failed_at)
    assert config.last_poll_at > failed_at
    consumer.close()
    listed = admin_client.get(reverse("admin:queues_queueconfig_changelist")).content.decode().replace("\xa0", " ")
    assert "connection refused" not in listed and re.search(r"none now; last <time [^>]+>(just now|\d+ s ago)", listed)


def heartbeat(consumer: str, silent_for: timedelta, **fields) -> ListenerHeartbeat:
    return ListenerHeartbeat.objects.create(consumer=consumer, event="conductor:q", hostname="h", pid=1,
                                            last_beat_at=timezone.now() - silent_for, **fields)


@pytest.mark.django_db
@override_settings(LISTENER_HEARTBEAT_KEEP_MINUTES=10)
def test_heartbeats_of_consumers_silent_longer_than_the_set_time_are_pruned():
    heartbeat("dead", timedelta(minutes=11))
    heartbeat("stopped", timedelta(minutes=30), stopped_at=timezone.now() - timedelta(minutes=30))
    heartbeat("stopped-lately", timedelta(minutes=2), stopped_at=timezone.now() - timedelta(minutes=2))
    heartbeat("alive", timedelta(seconds=3))
    purge_old_records()
    assert sorted(ListenerHeartbeat.objects.values_list("consumer", flat=True)) == ["alive", "stopped-lately"]


@pytest.mark.django_db(transaction=True)
@override_settings(LISTENER_HEARTBEAT_KEEP_MINUTES=10)
def test_a_running_listener_prunes_dead_consumers_heartbeats(make_config):
    config = make_config("conductor")
    heartbeat("dead", timedelta(hours=5))
    consumer = Consumer(config)
    consumer.poll_once(wait=0)  # the first poll writes its heartbeat and the stats, and prunes
    assert list(ListenerHeartbeat.objects.values_list("consumer", flat=True)) == [consumer.name]
    consumer.close()


@pytest.mark.django_db(transaction=True)
def test_a_delivery_whose_listener_died_before_the_ack_is_marked_settled_by_the_redelivery(make_config, providers,
                                                                                           monkeypatch):
    """On RabbitMQ: the first delivery's work commits, then its listener dies before acknowledging; the broker
    delivers the message again, and that delivery (finding the work done) is acknowledged."""
    config = make_config("amqp_queue", visibility_timeout=1)
    register(shipping_definition())
    handler(START_SHIPPING, event=config.event)
    providers(config.spec()).publish(json.dumps({"customer": {"name": "Ada", "address": {}}}), message_id="m-1")

    dying = providers(config.spec())
    [first] = dying.receive(10, 5)
    dispatch.dispatch_batch(config, [first])  # committed: the workflow started, the record says RECEIVED
    dying.close()  # (the process is gone: no acknowledgement; the broker delivers the message again)
    assert ReceivedMessage.objects.get().outcome == Outcome.RECEIVED

    listener = Listener(events=[config.event])
    for _ in range(10):
        if listener.run_once(wait=1):
            break
    listener.close()

    earlier, later = ReceivedMessage.objects.order_by("received_at")
    assert (later.delivery_count, later.outcome) == (2, Outcome.ACKNOWLEDGED)
    assert earlier.outcome == Outcome.SUPERSEDED
    assert "settled by delivery 2 of the message" in earlier.detail and "acknowledged" in earlier.detail
    assert earlier.detail.startswith("start_shipping_workflow[0] start_workflow: COMPLETED")  # what it did stays
    why = explain(earlier)
    assert why.headline == "It did something: 1 action completed."
    assert any("a later delivery settled it" in line for line in why.lines)
    assert Workflow.objects.count() == 1
    assert ActionExecution.objects.get(duplicate_of__isnull=False).delivery == later


@pytest.mark.django_db
def test_only_a_redelivery_supersedes_and_only_earlier_deliveries_of_its_own_message():
    config = QueueConfig.objects.create(kind="conductor", name="q")
    earlier = timezone.now() - timedelta(minutes=5)

    def record(message_id: str, count: int, **fields) -> ReceivedMessage:
        return ReceivedMessage.objects.create(config=config, event=config.event, message_id=message_id,
                                              delivery_count=count, **fields)

    stuck = record("m", 1, received_at=earlier)
    other = record("other", 1, received_at=earlier)
    records.acknowledged([record("m", 1)])  # the id again, as a first delivery: a new message, not this one
    stuck.refresh_from_db()
    assert stuck.outcome == Outcome.RECEIVED
    records.quarantined(config, None, record("m", 3), "delivered 3 times")
    stuck.refresh_from_db(), other.refresh_from_db()
    assert (stuck.outcome, other.outcome) == (Outcome.SUPERSEDED, Outcome.RECEIVED)
    assert "settled by delivery 3 of the message" in stuck.detail and stuck.detail.endswith("quarantined")
