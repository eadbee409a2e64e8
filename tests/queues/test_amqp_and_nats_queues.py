"""What RabbitMQ and NATS JetStream queues do beyond the contract: Conductor's AMQP options, dead-lettering
kept on the broker, classic queues, and reconnecting after the broker dropped the connection."""

import json
import subprocess
import time

import pika
import pytest
from django.conf import settings

from queues.providers.amqp_options import parse_amqp_name
from queues.providers.base import ProviderError

from ..brokers import make_spec, unique_name


def test_it_reads_conductors_amqp_options_with_conductors_defaults():
    plain = parse_amqp_name("amqp_queue", "orders")
    assert (plain.queue, plain.durable, plain.exclusive, plain.auto_delete, plain.delivery_mode) == (
        "orders", True, False, False, 2)
    exchange = parse_amqp_name(
        "amqp_exchange", "events?exchangeType=direct&bindQueueName=mine&routingKey=order.created&durable=false"
        "&deliveryMode=1&maxPriority=5",
    )
    assert (exchange.target, exchange.queue, exchange.exchange_type, exchange.routing_key) == (
        "events", "mine", "direct", "order.created")
    assert (exchange.durable, exchange.delivery_mode, exchange.max_priority) == (False, 1, 5)
    assert parse_amqp_name("amqp_exchange", "events").queue == "bound_to_events"


def test_it_consumes_an_exchange_through_its_bound_queue_and_routing_key(providers):
    suffix = unique_name("nats").rsplit(".", 1)[1]
    name = f"eh.test.x.{suffix}?exchangeType=direct&routingKey=wanted&bindQueueName=eh.test.b.{suffix}"
    provider = providers(make_spec("amqp_exchange", name=name))
    provider.publish('{"routed": true}', message_id="in")
    with pytest.raises(ProviderError, match="no queue is bound"):
        providers(make_spec("amqp_exchange", name=name.replace("wanted", "other"), provision=False)).publish("{}")
    [message] = provider.receive(10, 2)
    assert (message.message_id, message.payload) == ("in", {"routed": True})


def test_it_acknowledges_a_batch_together_and_a_broken_run_one_by_one(providers):
    """`multiple` covers every delivery up to the batch's last: only safe when all of them are acknowledged."""
    provider = providers(make_spec("amqp_queue", visibility_timeout=60))
    for n in range(6):
        provider.publish(json.dumps({"n": n}), message_id=f"m-{n}")
    messages = []
    while len(messages) < 6:
        messages += provider.receive(6 - len(messages), 2)
    first, second = messages[:3], messages[3:]
    provider.ack_many(first)  # all handed out up to m-2: one frame
    provider.ack_many(second[1:])  # m-4, m-5 while m-3 is still held: one by one, m-3 stays out
    provider.nack(second[0], delay=0)  # now m-3 goes back
    [again] = provider.receive(10, 2)
    assert (again.message_id, again.delivery_count) == ("m-3", 2)
    provider.ack_many([again])
    assert provider.receive(10, 1) == []
    assert provider.depth().ready == 0


def test_it_dead_letters_to_a_kept_queue_after_the_delivery_limit(providers):
    provider = providers(make_spec("amqp_queue", max_deliveries=1))
    provider.publish('{"doomed": 1}', message_id="dl")
    for _ in range(2):  # the quorum queue delivers max_deliveries + 1 times, then dead-letters
        [message] = provider.receive(1, 2)
        provider.nack(message, delay=0)
    assert provider.receive(1, 1) == []
    assert provider.depth().dead == 1
    channel = provider.channel
    _, properties, body = channel.basic_get(provider.dead_queue, auto_ack=True)
    assert (properties.message_id, body) == ("dl", b'{"doomed": 1}')


def test_it_counts_redeliveries_on_a_classic_queue_as_it_can(providers):
    provider = providers(make_spec("amqp_queue", name=f"{unique_name('amqp_queue')}?durable=false&autoDelete=true",
                                   visibility_timeout=0))
    provider.publish("{}", message_id="classic")
    assert [provider.receive(1, 2)[0].delivery_count for _ in range(3)] == [1, 2, 2]


def test_messages_held_for_a_later_requeue_do_not_stop_new_deliveries(providers):
    provider = providers(make_spec("amqp_queue", batch_size=1, visibility_timeout=3))
    provider.publish("{}", message_id="waiting")
    [waiting] = provider.receive(1, 2)
    provider.nack(waiting)  # held for 3 s: RabbitMQ counts it against the prefetch of 1
    provider.publish("{}", message_id="next")
    [message] = provider.receive(1, 2)
    assert message.message_id == "next"
    provider.ack(message)
    [again] = provider.receive(1, 5)  # still held meanwhile, and requeued once its time was up
    assert (again.message_id, again.delivery_count) == ("waiting", 2)
    provider.ack(again)
    assert provider.receive(1, 1) == [] and provider.depth().ready == 0


def test_holding_nacked_messages_neither_counts_deliveries_nor_keeps_more_than_a_batch(providers):
    """Rounds as the listener makes them while one message in five waits for a retry."""
    provider = providers(make_spec("amqp_queue", batch_size=5, visibility_timeout=60))
    for n in range(30):
        provider.publish("{}", message_id=f"m-{n}")
    first_seen: dict[str, int] = {}
    while len(first_seen) < 30:
        batch = provider.receive(5, 2)
        assert batch, f"stalled after {len(first_seen)} messages"
        fresh = [m for m in batch if m.message_id not in first_seen]
        first_seen.update((m.message_id, m.delivery_count) for m in fresh)
        provider.ack_many([m for m in batch if m is not batch[-1]])
        provider.nack(batch[-1])
        assert len(provider._returned) <= 5  # past a batch, the longest held went back early
    assert set(first_seen.values()) == {1}  # nothing was requeued on its way to Eventhub


def _close_from_the_broker(connection_name: str) -> None:
    listing = subprocess.run(["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
                             capture_output=True, text=True, check=True, timeout=60).stdout
    [line] = [line for line in listing.splitlines() if connection_name in line]
    subprocess.run(["rabbitmqctl", "-q", "close_connection", line.split("\t")[0], "test: broker went away"],
                   check=True, timeout=60, capture_output=True)


def test_it_reconnects_after_the_broker_dropped_the_connection(providers):
    provider = providers(make_spec("amqp_queue"))
    provider.publish(json.dumps({"n": 1}), message_id="survivor")
    [held] = provider.receive(1, 2)
    _close_from_the_broker(f"eventhub {provider.spec.event}")
    with pytest.raises(ProviderError):
        provider.receive(1, 1)  # notices the dropped connection
    with pytest.raises(ProviderError, match="will be delivered again"):
        provider.ack(held)
    [again] = provider.receive(1, 3)
    assert (again.message_id, again.delivery_count) == ("survivor", 2)
    provider.ack(again)


def test_it_keeps_nats_messages_past_their_maximum_deliveries(providers):
    provider = providers(make_spec("nats", max_deliveries=1, visibility_timeout=0))
    provider.publish('{"kept": true}', message_id="kept")
    counts = [m.delivery_count for _ in range(3) for m in provider.receive(1, 1)]
    assert counts == [1, 2]  # max_deliver is max_deliveries + 1
    depth = provider.depth()
    assert (depth.ready, depth.dead) == (0, 1)


def test_a_nats_batchs_acks_are_all_applied_once_the_last_is_confirmed(providers):
    """One confirmation per batch, for its last ack: the server has applied every earlier one by then."""
    provider = providers(make_spec("nats", visibility_timeout=60))
    provider.ack_many([])  # nothing to send
    for round_ in range(5):
        for n in range(100):
            provider.publish("{}", message_id=f"r{round_}-{n}")
        batch = provider.receive(100, 2)
        assert len(batch) == 100
        provider.ack_many(batch)
        depth = provider.depth()  # asked right after the confirmation, no waiting
        assert (depth.ready, depth.in_flight, depth.dead) == (0, 0, 0)
    assert provider.receive(10, 0.2) == []


def test_it_uses_the_jetstream_stream_that_already_holds_the_subject(providers):
    spec = make_spec("nats")
    first = providers(spec)
    first.publish("{}", message_id="one")  # creates EH_<subject>
    other = providers(make_spec("nats", name=spec.name, provision=False))
    [message] = other.receive(1, 2)
    assert other.stream == first.stream and message.message_id == "one"


def test_it_sends_the_amqp_delivery_mode_it_was_given(providers):
    name = f"{unique_name('amqp_queue')}?deliveryMode=1"
    provider = providers(make_spec("amqp_queue", name=name))
    provider.publish("{}", message_id="transient")
    connection = pika.BlockingConnection(pika.URLParameters(settings.AMQP_URL))
    try:
        _, properties, _ = connection.channel().basic_get(provider.options.queue, auto_ack=False)
        assert properties.delivery_mode == 1
    finally:
        connection.close()


def test_it_uses_an_existing_queue_whose_arguments_differ(providers):
    first = providers(make_spec("amqp_queue", max_deliveries=1))
    first.publish("{}", message_id="before-edit")
    edited = providers(make_spec("amqp_queue", name=first.spec.name, max_deliveries=5))
    [message] = edited.receive(1, 2)
    assert message.message_id == "before-edit"
    edited.publish("{}", message_id="after-edit")
    assert [m.message_id for m in edited.receive(1, 2)] == ["after-edit"]


def test_a_nats_receive_after_an_expired_one_hands_over_its_message_at_once(providers):
    """The end of an expired pull request (status 408) may come in after its receive gave up: the next
    receive must not take it for the end of its own request and wait for a whole batch (nats-py's fetch
    did, for up to its full wait)."""
    spec = make_spec("nats", visibility_timeout=60)
    consumer, publisher = providers(spec), providers(spec)
    consumer.receive(10, 0)  # connects and provisions
    slow = []
    for n in range(20):
        assert consumer.receive(100, 0.05) == []  # a long poll that expires
        publisher.publish("{}", message_id=f"m{n}")
        started = time.monotonic()
        messages = consumer.receive(100, 5)
        took = time.monotonic() - started
        assert [m.message_id for m in messages] == [f"m{n}"]
        consumer.ack_many(messages)
        if took > 1:
            slow.append((n, round(took, 2)))
    assert slow == []


def _open_request(provider, batch: int) -> None:
    """A pull request of an earlier receive that is still open on the server (its answers come later)."""
    request = json.dumps({"batch": batch, "expires": 2_000_000_000}).encode()
    provider._run(provider._nc.publish(provider._next_subject, request, reply=f"{provider._inbox}.0"))


def test_a_nats_receive_keeps_what_an_earlier_request_received_for_later_batches(providers):
    spec = make_spec("nats", visibility_timeout=60)
    consumer, publisher = providers(spec), providers(spec)
    consumer.receive(10, 0)  # connects and provisions
    _open_request(consumer, 3)
    for n in range(5):
        publisher.publish("{}", message_id=f"m{n}")
    time.sleep(0.2)  # three of them go to the open request
    batches = [consumer.receive(2, 1) for _ in range(3)]
    assert [len(batch) for batch in batches] == [2, 2, 1]  # never more than asked for
    assert sorted(m.message_id for batch in batches for m in batch) == [f"m{n}" for n in range(5)]
    for batch in batches:
        consumer.ack_many(batch)
    assert consumer.receive(10, 0.2) == []


def test_a_nats_batch_holds_one_delivery_of_each_message(providers):
    """A copy held since an earlier request, delivered again meanwhile, is handed over once: the latest."""
    spec = make_spec("nats", visibility_timeout=1)
    consumer, publisher = providers(spec), providers(spec)
    consumer.receive(10, 0)
    _open_request(consumer, 1)
    publisher.publish("{}", message_id="twice")
    time.sleep(1.5)  # held by the open request's answer, and given out again after the ack wait
    [message] = consumer.receive(10, 1)
    assert (message.message_id, message.delivery_count) == ("twice", 2)
    consumer.ack(message)
    assert consumer.receive(10, 1.5) == []


def test_a_nats_consumer_deleted_under_a_receive_is_an_error_until_it_connects_again(providers):
    spec = make_spec("nats")
    consumer, publisher = providers(spec), providers(spec)
    consumer.receive(10, 0)
    consumer._run(consumer._js.delete_consumer(consumer.stream, consumer.durable))
    with pytest.raises(ProviderError, match="NATS pull request: the consumer eventhub_.* is gone"):
        consumer.receive(10, 0.5)
    consumer.close()
    publisher.publish("{}", message_id="after")
    [message] = consumer.receive(10, 2)  # the consumer is made again
    assert message.message_id == "after"


def test_a_nats_pull_left_unanswered_while_the_consumer_is_there_is_not_an_outage(providers, monkeypatch):
    """The server may leave a pull request unanswered (a consumer at its max_ack_pending limit, a
    passing state): nothing to hand over now, not an error, as long as the consumer is there."""
    from queues.providers import nats as nats_provider

    monkeypatch.setattr(nats_provider, "ANSWER_SECONDS", 0.5)
    spec = make_spec("nats", visibility_timeout=60)
    consumer, publisher = providers(spec), providers(spec)
    consumer.receive(10, 0)
    answered = consumer._next_subject
    consumer._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{consumer.stream}.nobody_answers"
    publisher.publish("{}", message_id="later")
    assert consumer.receive(10, 0.2) == []
    consumer._next_subject = answered
    [message] = consumer.receive(10, 1)
    assert message.message_id == "later"
