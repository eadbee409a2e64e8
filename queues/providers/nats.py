"""The `nats` kind: NATS JetStream through nats-py, made synchronous with a private event loop.

nats-py is asyncio-only; this provider runs its own event loop in a daemon thread and submits each
call to it, so the connection keeps answering pings and reconnecting between calls while the
listener's thread looks just like the other providers.

Delivery: at least once. The subject is stored in a JetStream stream (the one already holding the
subject, else `EH_<subject>` with work-queue retention, created if missing) and consumed through a
durable pull consumer `eventhub_<subject>` (created if missing), so nothing is lost while no listener
runs. ack is a synchronous JetStream ack (the server confirms it; a batch's acks get one confirmation,
for the last); nack(delay) is NAK with that delay (None: nothing is sent and the message returns after
the ack wait, i.e. the visibility timeout).
Delivery count: the message metadata's num_delivered. Dead-lettering: the consumer's max_deliver is
max_deliveries + 1 (Eventhub quarantines first); messages past it are no longer delivered but stay in
the work-queue stream, where they are counted as the dead-letter depth.
Ordering: stream order, except for redeliveries.
Options: the config's URL, else NATS_URL. The message id given to publish travels as the
`Nats-Msg-Id` header (JetStream deduplicates on it); without one a message is named
`<stream>:<sequence>`. Reconnection: nats-py retries a dropped connection a few times by itself; a call that fails
meanwhile raises ProviderError, and the next call after close() connects again.
"""

import asyncio
import logging
import re
import threading
from concurrent.futures import TimeoutError as FutureTimeout

import nats
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from .base import ConfigurationError, Message, Provider, ProviderError, QueueDepth, make_message

log = logging.getLogger(__name__)
CALL_TIMEOUT = 30.0  # beyond the longest fetch (20 s) and a reconnect attempt
RECONNECT_ATTEMPTS = 3


def token(subject: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", subject)


class NatsProvider(Provider):
    kind = "nats"

    def __init__(self, spec):
        super().__init__(spec)
        self.subject = spec.name
        self.durable = f"eventhub_{token(spec.name)}"
        self.stream: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._nc = None
        self._js = None
        self._sub = None

    # The private event loop ---------------------------------------------------------------------

    def _run(self, coro, timeout: float = CALL_TIMEOUT):
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name=f"nats {self.subject}", daemon=True)
            self._thread.start()
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            future.result(timeout)
        except FutureTimeout:
            if not future.done():  # since 3.11 nats' own TimeoutError is this class too
                future.cancel()
                raise ProviderError(f"{self.spec.event}: NATS did not answer within {timeout:.0f} s") from None
        except Exception:  # noqa: BLE001, S110 - raised below from the finished future
            pass
        exc = future.exception()
        if exc is None:
            return future.result()
        if isinstance(exc, ProviderError):
            raise exc
        if isinstance(exc, NatsError | OSError | TimeoutError):
            raise ProviderError(f"{self.spec.event}: NATS: {exc!r}") from exc
        raise exc

    def _ensure(self) -> None:
        if self._sub is None:
            self._run(self._connect())

    async def _connect(self) -> None:
        if self._nc is None or self._nc.is_closed:
            # A few quick attempts only: nats-py applies the same limit to the first connection, which would
            # otherwise hang while the server is down. Longer outages end in ProviderError, and the
            # consumer's backoff reconnects.
            self._nc = await nats.connect(self.spec.url, connect_timeout=3, max_reconnect_attempts=RECONNECT_ATTEMPTS,
                                          reconnect_time_wait=1, allow_reconnect=True, error_cb=self._log_error)
            self._js = self._nc.jetstream()
        self.stream = await self._stream()
        config = ConsumerConfig(
            durable_name=self.durable, ack_policy=AckPolicy.EXPLICIT, filter_subject=self.subject,
            ack_wait=max(float(self.spec.visibility_timeout), 0.1), max_deliver=self.spec.broker_max_receives,
        )
        if self.spec.provision:
            try:  # creates the consumer, or updates the settings the server allows to change
                await self._js.add_consumer(self.stream, config)
            except NatsError as exc:
                log.warning("%s: keeping the existing consumer %s: %s", self.spec.event, self.durable, exc)
        self._sub = await self._js.pull_subscribe_bind(durable=self.durable, stream=self.stream)

    async def _log_error(self, exc: Exception) -> None:
        log.info("%s: NATS connection: %r", self.spec.event, exc)

    async def _stream(self) -> str:
        try:
            return await self._js.find_stream_name_by_subject(self.subject)
        except NotFoundError:
            if not self.spec.provision:
                raise ConfigurationError(f"{self.spec.event}: no JetStream stream holds this subject") from None
        name = f"EH_{token(self.subject)}"
        await self._js.add_stream(StreamConfig(
            name=name, subjects=[self.subject], retention=RetentionPolicy.WORK_QUEUE, storage=StorageType.FILE,
        ))
        log.info("created JetStream stream %s for %s", name, self.subject)
        return name

    # The interface ------------------------------------------------------------------------------

    def receive(self, max_messages: int, wait: float) -> list[Message]:
        self._ensure()
        try:
            raw = self._run(self._sub.fetch(max(1, max_messages), timeout=max(wait, 0.05)))
        except ProviderError as exc:
            # nats-py ends an empty fetch with its own TimeoutError, or asyncio's from deeper down.
            if isinstance(exc.__cause__, NatsTimeout | TimeoutError):
                return []
            raise
        return [self._message(msg) for msg in raw]

    def _message(self, msg) -> Message:
        meta = msg.metadata
        headers = dict(msg.headers or {})
        message_id = headers.get("Nats-Msg-Id") or f"{self.stream}:{meta.sequence.stream}"
        return make_message(message_id, msg.data, meta.num_delivered, msg, self.spec, headers)

    def ack(self, message: Message) -> None:
        self._run(message.handle.ack_sync(timeout=5))

    def ack_many(self, messages: list[Message]) -> None:
        """The batch's acks sent one after another on the connection, the last one confirmed. The server
        takes a consumer's acks in the order they arrive, so its answer to the last covers them all: one
        confirmation per batch instead of one per message (a test checks the order holds)."""
        if not messages:
            return

        async def ack_all() -> None:
            for message in messages[:-1]:
                await message.handle.ack()
            await messages[-1].handle.ack_sync(timeout=5)

        self._run(ack_all())

    def nack(self, message: Message, delay: float | None = None) -> None:
        if delay is not None:
            self._run(message.handle.nak(delay=delay))

    def publish(self, body: str, *, message_id: str | None = None) -> str:
        self._ensure()
        headers = {"Nats-Msg-Id": message_id} if message_id else None
        ack = self._run(self._js.publish(self.subject, body.encode(), stream=self.stream, headers=headers))
        return message_id or f"{ack.stream}:{ack.seq}"

    def depth(self) -> QueueDepth:
        self._ensure()
        info = self._run(self._js.consumer_info(self.stream, self.durable))
        stream = self._run(self._js.stream_info(self.stream))
        # A work-queue stream holds exactly the unacknowledged messages; those the consumer no longer
        # delivers (past max_deliver) are what is left after pending and in-flight ones.
        dead = max(0, stream.state.messages - info.num_pending - info.num_ack_pending)
        return QueueDepth(ready=info.num_pending, in_flight=info.num_ack_pending, dead=dead)

    def close(self) -> None:
        nc, self._nc, self._js, self._sub = self._nc, None, None, None
        loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None:
            return
        if nc is not None:
            try:
                asyncio.run_coroutine_threadsafe(nc.close(), loop).result(5)
            except Exception as exc:  # noqa: BLE001 - a broken connection is being thrown away
                log.debug("closing NATS connection: %r", exc)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
