"""The one contract every provider keeps, run against each real broker (and the database queue on the
database of this run)."""

import json
import threading
import time

import pytest
from django.db import connection

from ..brokers import make_spec

pytestmark = pytest.mark.django_db(transaction=True)


def receive_one(provider, wait: float = 3, max_messages: int = 10):
    """The first batch that is not empty, within a few short polls (brokers take a moment to requeue).
    With a zero visibility timeout a broker may hand out the same message twice in one batch, so
    tests of redelivery take one message at a time."""
    for _ in range(5):
        messages = provider.receive(max_messages, wait)
        if messages:
            return messages
    return []


def test_it_receives_what_was_published(kind, providers):
    provider = providers(make_spec(kind))
    provider.publish(json.dumps({"status": "signed"}), message_id="m-1")
    [message] = receive_one(provider)
    assert message.message_id == "m-1"
    assert message.payload == {"status": "signed"}
    assert message.delivery_count == 1
    assert message.readable


def test_it_returns_quickly_when_the_queue_is_empty(kind, providers):
    provider = providers(make_spec(kind))
    provider.receive(10, 0)  # connects and provisions
    started = time.monotonic()
    assert provider.receive(10, 0) == []
    assert time.monotonic() - started < 3


def test_a_waiting_receive_hands_over_the_first_message_at_once(kind, providers):
    """Not held back until a whole batch has arrived or the wait is over (nats-py's fetch does that)."""
    spec = make_spec(kind)
    consumer, publisher = providers(spec), providers(spec)
    consumer.receive(100, 0)  # connects and provisions
    publisher.publish('{"n": 1}', message_id="m-first")  # connected and provisioned in this thread
    [first] = receive_one(consumer, max_messages=100)
    consumer.ack(first)

    def publish_later() -> None:
        try:
            publisher.publish('{"n": 2}', message_id="m-soon")
        finally:
            connection.close()  # the internal queue's rows went through this thread's own connection

    timer = threading.Timer(0.5, publish_later)
    started = time.monotonic()
    timer.start()
    messages = consumer.receive(100, 8)
    timer.join()
    assert [m.message_id for m in messages] == ["m-soon"]
    assert time.monotonic() - started < 4


def test_it_forgets_acknowledged_messages(kind, providers):
    provider = providers(make_spec(kind))
    provider.publish('{"n": 1}', message_id="m-ack")
    [message] = receive_one(provider)
    provider.ack(message)
    assert provider.receive(10, 1) == []
    assert provider.depth().ready == 0


def test_it_delivers_again_what_was_not_acknowledged(kind, providers):
    provider = providers(make_spec(kind, visibility_timeout=0))
    provider.publish('{"n": 1}', message_id="m-again")
    first = receive_one(provider, max_messages=1)
    again = receive_one(provider, max_messages=1)
    assert [m.message_id for m in first] == [m.message_id for m in again] == ["m-again"]
    assert again[0].delivery_count == 2


def test_it_counts_each_delivery(kind, providers):
    provider = providers(make_spec(kind, visibility_timeout=0, max_deliveries=9))
    provider.publish('{"n": 1}', message_id="m-count")
    counts = [receive_one(provider, max_messages=1)[0].delivery_count for _ in range(3)]
    assert counts == [1, 2, 3]


def test_it_delivers_a_nacked_message_again(kind, providers):
    provider = providers(make_spec(kind, visibility_timeout=30))
    provider.publish('{"n": 1}', message_id="m-nack")
    [message] = receive_one(provider)
    provider.nack(message, delay=0)
    [again] = receive_one(provider)
    assert again.message_id == "m-nack"
    assert again.delivery_count == 2
    provider.ack(again)


def test_a_nacked_message_comes_back_after_the_visibility_timeout_not_before(kind, providers):
    """The way a transient failure waits (an event for a task that does not exist yet, say)."""
    provider = providers(make_spec(kind, visibility_timeout=3))
    provider.publish('{"n": 1}', message_id="m-later")
    [message] = receive_one(provider)
    nacked = time.monotonic()
    provider.nack(message)
    assert provider.receive(10, 1) == []
    [again] = receive_one(provider)
    assert (again.message_id, again.delivery_count) == ("m-later", 2)
    assert time.monotonic() - nacked >= 1.5  # (the timeout runs from the delivery, 3 s, give or take polls)
    provider.ack(again)


def test_it_delivers_malformed_bodies_as_they_are(kind, providers):
    provider = providers(make_spec(kind))
    provider.publish("not json {", message_id="m-bad")
    [message] = receive_one(provider)
    assert message.body == "not json {"
    assert message.payload is None
    assert "not JSON" in message.parse_error
    provider.ack(message)


def test_it_marks_bodies_over_the_size_limit_unreadable(kind, providers):
    provider = providers(make_spec(kind, max_message_bytes=64))
    provider.publish(json.dumps({"blob": "x" * 100}), message_id="m-big")
    [message] = receive_one(provider)
    assert "over the limit of 64" in message.parse_error
    assert message.payload is None


def test_it_reconnects_after_close(kind, providers):
    provider = providers(make_spec(kind))
    provider.publish('{"n": 1}', message_id="m-1")
    provider.close()
    provider.publish('{"n": 2}', message_id="m-2")
    provider.close()
    received = receive_one(provider)
    if len(received) < 2:
        received += receive_one(provider)
    assert sorted(m.message_id for m in received) == ["m-1", "m-2"]


def test_it_reports_the_depth_of_the_queue(kind, providers):
    provider = providers(make_spec(kind))
    for n in range(2):
        provider.publish(json.dumps({"n": n}), message_id=f"m-{n}")
    depth = provider.depth()
    assert depth.ready == 2
    assert depth.dead == 0


def test_it_forgets_messages_acknowledged_together(kind, providers):
    provider = providers(make_spec(kind))
    for n in range(12):
        provider.publish(json.dumps({"n": n}), message_id=f"m-{n}")
    received: list = []
    for _ in range(6):  # RabbitMQ hands out no more than the prefetch (10) until some are acknowledged
        batch = provider.receive(10, 1)
        provider.ack_many(batch)
        received += batch
        if len(received) >= 12:
            break
    assert sorted(m.payload["n"] for m in received) == list(range(12))
    assert provider.receive(10, 1) == []
    assert provider.depth().ready == 0
