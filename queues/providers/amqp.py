"""The `amqp_queue` and `amqp_exchange` kinds: RabbitMQ through pika (blocking connection).

Delivery: at least once, with manual acknowledgements and a prefetch of the config's batch size.
ack is basic.ack. RabbitMQ never redelivers an unacknowledged message while its consumer stays connected,
so this provider keeps the visibility timeout itself: a message held longer than the timeout without ack
is requeued (basic.nack) at the next receive; a closed or lost connection requeues everything it held.
nack keeps holding the message and requeues it the same way, after the visibility timeout (counted from
its delivery, as SQS does) or after `delay`: RabbitMQ has no delayed requeue of its own. The prefetch is
twice the batch size, so up to a batch of messages so held does not stop new deliveries; past that, the
one held longest is requeued early. (RabbitMQ applies a new prefetch only to a new consumer, and starting
one again would requeue, and count as delivered, the messages on their way to the old one.)
Ordering: queue order, except for requeued messages.

Delivery count: queues Eventhub declares durable (the default) are quorum queues, whose
`x-delivery-count` header counts earlier deliveries; with `exclusive`, `autoDelete`, `durable=false` or
`maxPriority` the queue must be classic, where RabbitMQ only says "redelivered": the count is then 1 or
2, and the broker's delivery limit does not apply (quarantine still happens at the second delivery when
max_deliveries is 1; documented limitation).
Dead-lettering: the queue's dead-letter exchange `<queue>.dlx` routes to the queue `<queue>.dead`, where
messages stay; quorum queues dead-letter after max_deliveries + 1 deliveries (Eventhub quarantines first).

Options (Conductor's, in the name after `?`): exchangeType, bindQueueName, routingKey, durable, exclusive,
autoDelete, deliveryMode, maxPriority. `amqp_queue:<queue>` consumes and publishes to the queue;
`amqp_exchange:<exchange>` publishes to the exchange with routingKey and consumes from bindQueueName
(default `bound_to_<exchange>`), bound with routingKey. Connection: the config's URL, else AMQP_URL.
The message id given to publish travels as the AMQP `message_id` property; a message without one is
identified by a hash of its body.
"""

import hashlib
import logging
import time
from collections import deque

import pika
from pika.exceptions import AMQPError, ChannelClosedByBroker, UnroutableError

from .amqp_options import AmqpOptions, AmqpOptionsError, parse_amqp_name
from .base import ConfigurationError, Message, Provider, ProviderError, QueueDepth
from .bodies import make_message

log = logging.getLogger(__name__)
PRECONDITION_FAILED = 406


class AmqpProvider(Provider):
    kind = "amqp"

    def __init__(self, spec):
        super().__init__(spec)
        try:
            self.options: AmqpOptions = parse_amqp_name(spec.kind, spec.name)
        except AmqpOptionsError as exc:
            raise ConfigurationError(f"{spec.event}: {exc}") from None
        self._connection = None
        self._channel = None
        self._generation = 0  # delivery tags are only valid on the channel that gave them
        self._buffer: deque = deque()
        self._held: dict[int, float] = {}  # delivery tag -> when it was handed out
        self._returned: set[int] = set()  # of those, the nacked ones, waiting for their requeue

    @property
    def quorum(self) -> bool:
        o = self.options
        return o.durable and not o.exclusive and not o.auto_delete and o.max_priority is None

    @property
    def dead_queue(self) -> str:
        return f"{self.options.queue}.dead"

    # Connection and topology --------------------------------------------------------------------

    @property
    def channel(self):
        if self._channel is None or not self._channel.is_open:
            self._drop()
            self._call(self._connect)
        return self._channel

    def _connect(self) -> None:
        parameters = pika.URLParameters(self.spec.url)
        # Named, so ops staff can tell Eventhub's connections apart in RabbitMQ's management UI.
        parameters.client_properties = {"connection_name": f"eventhub {self.spec.event}"}
        self._connection = pika.BlockingConnection(parameters)
        self._generation += 1
        channel = self._reopen_channel()
        if self.spec.provision:
            self._declare(channel)

    def _reopen_channel(self):
        channel = self._connection.channel()
        channel.confirm_delivery()
        # A batch, and room for as many nacked messages held for their requeue (RabbitMQ counts them too).
        channel.basic_qos(prefetch_count=2 * self._room)
        self._channel = channel
        return channel

    @property
    def _room(self) -> int:
        return max(1, self.spec.batch_size)

    def _declare(self, channel) -> None:
        o = self.options
        dlx = f"{o.queue}.dlx"
        channel.exchange_declare(dlx, "fanout", durable=True)
        channel.queue_declare(self.dead_queue, durable=True)
        channel.queue_bind(self.dead_queue, dlx)
        self._declare_queue(channel)
        channel = self._channel
        if o.is_exchange:
            channel.exchange_declare(o.target, o.exchange_type, durable=o.durable, auto_delete=o.auto_delete)
            channel.queue_bind(o.queue, o.target, routing_key=o.routing_key)

    def _declare_queue(self, channel) -> None:
        o = self.options
        dlx = f"{o.queue}.dlx"
        arguments: dict = {"x-dead-letter-exchange": dlx}
        if self.quorum:
            # A quorum queue delivers a message delivery-limit + 1 times before dead-lettering it.
            arguments.update({"x-queue-type": "quorum", "x-delivery-limit": self.spec.broker_max_receives - 1})
        elif o.max_priority:
            arguments["x-max-priority"] = o.max_priority
        try:
            channel.queue_declare(o.queue, durable=o.durable, exclusive=o.exclusive, auto_delete=o.auto_delete,
                                  arguments=arguments)
        except ChannelClosedByBroker as exc:
            if exc.reply_code != PRECONDITION_FAILED:
                raise
            # The queue exists with other arguments (made elsewhere, or before max_deliveries was edited):
            # RabbitMQ cannot change them in place, so use it as it is.
            log.warning("%s: using the existing queue as it is: %s", self.spec.event, exc.reply_text)
            self._reopen_channel().queue_declare(o.queue, passive=True)

    def _consume(self) -> None:
        channel = self.channel
        if not channel.consumer_tags:
            generation = self._generation
            channel.basic_consume(
                self.options.queue, auto_ack=False,
                on_message_callback=lambda _ch, method, props, body: self._buffer.append(
                    (generation, method, props, body)
                ),
            )

    # The interface ------------------------------------------------------------------------------

    def receive(self, max_messages: int, wait: float) -> list[Message]:
        self._call(self._consume)
        deadline = time.monotonic() + wait
        while True:
            due = self._call(self._requeue_overdue)  # (those that come due while waiting too)
            remaining = deadline - time.monotonic()
            if self._buffer or remaining <= 0:
                break
            slice_ = max(0.0, min(remaining, 1.0, due - time.monotonic()))
            self._call(lambda: self._connection.process_data_events(time_limit=slice_))  # noqa: B023
        self._call(lambda: self._connection.process_data_events(time_limit=0))
        messages = []
        while self._buffer and len(messages) < max_messages:
            generation, method, props, body = self._buffer.popleft()
            if generation != self._generation:
                continue  # from a dead channel: the broker requeued it already
            self._held[method.delivery_tag] = time.monotonic()
            messages.append(self._message(generation, method, props, body))
        return messages

    def _message(self, generation: int, method, props, body: bytes) -> Message:
        headers = dict(props.headers or {})
        if "x-delivery-count" in headers:
            count = int(headers["x-delivery-count"]) + 1
        else:
            count = 2 if method.redelivered else 1
        message_id = props.message_id or "sha256:" + hashlib.sha256(body).hexdigest()[:40]
        return make_message(message_id, body, count, (generation, method.delivery_tag), self.spec, headers)

    def _requeue_overdue(self) -> float:
        """Requeue what was held past its visibility timeout; returns when the next one is due (monotonic)."""
        now = time.monotonic()
        limit, due = now - self.spec.visibility_timeout, float("inf")
        for tag, since in list(self._held.items()):
            if since <= limit:
                self._settle(tag, lambda t: self._channel.basic_nack(t, requeue=True))
            else:
                due = min(due, since + self.spec.visibility_timeout)
        return due

    def _settle(self, tag: int, action) -> None:
        self._held.pop(tag, None)
        self._returned.discard(tag)
        action(tag)

    def _check_live(self, message: Message) -> int:
        generation, tag = message.handle
        if generation != self._generation or tag not in self._held:
            raise ProviderError(
                f"{self.spec.event}: message {message.message_id} was already returned to the queue "
                "(connection lost or visibility timeout passed); it will be delivered again", retryable=True
            )
        return tag

    def ack(self, message: Message) -> None:
        tag = self._check_live(message)
        self._call(lambda: self._settle(tag, lambda t: self._channel.basic_ack(t)))

    def ack_many(self, messages: list[Message]) -> None:
        """One frame for the batch (`multiple`) when every message handed out up to the batch's last one is
        in it, the usual case: deliveries are handed out in order and a batch is settled whole before the
        next. Otherwise one ack each."""
        tags = sorted({self._check_live(message) for message in messages})
        if not tags:
            return
        highest = tags[-1]
        wanted = set(tags)
        if all(tag in wanted for tag in self._held if tag <= highest):
            def ack_up_to_highest() -> None:
                for tag in tags:
                    self._held.pop(tag, None)
                self._channel.basic_ack(highest, multiple=True)

            self._call(ack_up_to_highest)
            return
        super().ack_many(messages)

    def nack(self, message: Message, delay: float | None = None) -> None:
        """Held until its visibility timeout (or `delay`) has passed, then requeued by a receive."""
        tag = self._check_live(message)
        if delay is not None:
            self._held[tag] = time.monotonic() - self.spec.visibility_timeout + max(0.0, delay)
        self._returned.add(tag)
        if len(self._returned) > self._room:  # no room left for new deliveries: the longest held goes back now
            oldest = min(self._returned, key=self._held.__getitem__)
            self._call(lambda: self._settle(oldest, lambda t: self._channel.basic_nack(t, requeue=True)))

    def publish(self, body: str, *, message_id: str | None = None) -> str:
        o = self.options
        properties = pika.BasicProperties(message_id=message_id, delivery_mode=o.delivery_mode,
                                          content_type="application/json")
        exchange, key = (o.target, o.routing_key) if o.is_exchange else ("", o.queue)
        try:
            self._call(lambda: self.channel.basic_publish(exchange, key, body.encode(), properties, mandatory=True))
        except UnroutableError as exc:
            raise ProviderError(f"{self.spec.event}: no queue is bound for routing key {key!r}") from exc
        return message_id or ""

    def depth(self) -> QueueDepth:
        channel = self.channel
        ready = self._call(lambda: channel.queue_declare(self.options.queue, passive=True)).method.message_count
        dead = self._call(lambda: channel.queue_declare(self.dead_queue, passive=True)).method.message_count
        return QueueDepth(ready=ready, dead=dead)

    def close(self) -> None:
        self._drop()

    def _drop(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self._buffer.clear()
        self._held.clear()
        self._returned.clear()
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except AMQPError as exc:  # already broken: the broker requeues what it held anyway
                log.debug("closing a broken AMQP connection: %s", exc)

    def _call(self, call):
        try:
            return call()
        except (ProviderError, UnroutableError):
            raise
        except ChannelClosedByBroker as exc:
            self._drop()
            if exc.reply_code == PRECONDITION_FAILED:
                raise ConfigurationError(
                    f"{self.spec.event}: RabbitMQ refused the declaration ({exc.reply_text}); the queue exists "
                    "with other settings"
                ) from exc
            raise ProviderError(f"{self.spec.event}: {exc}") from exc
        except (AMQPError, OSError) as exc:
            self._drop()
            raise ProviderError(f"{self.spec.event}: RabbitMQ unavailable: {exc!r}") from exc
