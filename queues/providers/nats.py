"""The `nats` kind: NATS JetStream through nats-py, made synchronous with a private event loop.

nats-py is asyncio-only; this provider runs its own event loop in a daemon thread and submits each
call to it, so the connection keeps answering pings and reconnecting between calls while the
listener's thread looks just like the other providers.

Delivery: at least once. The subject is stored in a JetStream stream (the one already holding the
subject, else `EH_<subject>` with work-queue retention, created if missing) and consumed through a
durable pull consumer `eventhub_<subject>` (created if missing), so nothing is lost while no listener
runs. The provider sends the pull requests itself rather than through nats-py's fetch: one for what is
there now; if that is nothing, one long poll for the first message and then one for what came with it.
Each request is answered on its own inbox subject, so the end of an earlier request is never taken for a
later one's (nats-py's fetch did, and then held a batch open for its whole wait).
ack is a synchronous JetStream ack (the server confirms it; a batch's acks get one confirmation,
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
import json
import logging
import re
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout

import nats
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from .base import ConfigurationError, Message, Provider, ProviderError, QueueDepth
from .bodies import make_message

log = logging.getLogger(__name__)
CALL_TIMEOUT = 30.0  # beyond a reconnect attempt (a receive allows for its wait on top of this)
RECONNECT_ATTEMPTS = 3
ANSWER_SECONDS = 5.0  # how long past its own expiry a pull request's answer may take


def token(subject: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", subject)


def _latest_deliveries(messages: list) -> list:
    """One delivery per stream message, the latest: a copy held since an earlier request may have been
    delivered again (after the ack wait) by the time it is handed over."""
    latest = {}
    for msg in messages:
        seq = msg.metadata.sequence.stream
        if seq not in latest or msg.metadata.num_delivered > latest[seq].metadata.num_delivered:
            latest[seq] = msg
    return list(latest.values()) if len(latest) < len(messages) else messages


def _queued(sub):
    """The next message the subscription holds already, or None. (Its queue is read directly: next_msg
    starts a task per message, a cost per message that a batch of them feels.)"""
    if not sub.pending_msgs:
        return None
    msg = sub._pending_queue.get_nowait()
    sub._pending_size -= len(msg.data)
    sub._pending_queue.task_done()
    return msg


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
        self._late: list = []  # messages in hand, not handed over yet
        self._requests = 0

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
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self.durable}"
        config = ConsumerConfig(
            durable_name=self.durable, ack_policy=AckPolicy.EXPLICIT, filter_subject=self.subject,
            ack_wait=max(float(self.spec.visibility_timeout), 0.1), max_deliver=self.spec.broker_max_receives,
            # Room for every consumer's batch in hand and the next (16 consumers at most).
            max_ack_pending=max(1000, 32 * self.spec.batch_size),
        )
        if self.spec.provision:
            try:  # creates the consumer, or updates the settings the server allows to change
                await self._js.add_consumer(self.stream, config)
            except NatsError as exc:
                log.warning("%s: keeping the existing consumer %s: %s", self.spec.event, self.durable, exc)
        # Pull requests answer on `<inbox>.<request number>`, so what belongs to an earlier request is known.
        self._requests, self._late, self._sub = 0, [], None
        await self._new_inbox()

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
        # (three requests at most, each answered within its expiry and ANSWER_SECONDS)
        messages = self._run(self._fetch(max(1, max_messages), wait), timeout=wait + 3 * ANSWER_SECONDS + 1)
        return [self._message(msg) for msg in messages]

    async def _fetch(self, batch: int, wait: float) -> list:
        """What the consumer has now, up to `batch`; else the first message within `wait`, with what came
        after it. (nats-py's fetch keeps a batch request open until the batch is full or the wait is over,
        and can take an earlier request's end for its own: messages arriving one by one were held back.)"""
        self._collect_late(self._sub)
        messages, self._late = self._late[:batch], self._late[batch:]
        problem = None
        if len(messages) < batch:
            got, problem = await self._pull(batch - len(messages))
            messages += got
        if not messages and not problem and wait > 0:
            messages, problem = await self._pull(1, wait)
            if messages and batch > 1:
                got, problem = await self._pull(batch - 1)
                messages += got
        if problem and not messages:
            raise ProviderError(f"{self.spec.event}: NATS pull request: {problem}")
        room = batch - len(messages)  # deliveries to earlier requests that came in meanwhile
        messages, self._late = messages + self._late[:room], self._late[room:]
        return _latest_deliveries(messages)

    def _collect_late(self, sub) -> None:
        """Keep what the subscription holds already: messages an earlier request received after its caller
        stopped waiting are deliveries all the same; the ends of earlier requests are not needed."""
        while (msg := _queued(sub)) is not None:
            if not JetStreamContext.is_status_msg(msg):
                self._late.append(msg)

    async def _pull(self, batch: int, wait: float | None = None) -> tuple[list, str | None]:
        """One pull request: without `wait`, for what is there now (the server ends it with a status when
        that is less than the batch); with it, held by the server until a message arrives or `wait` is
        over. Returns the messages and, if the request ended badly, why (e.g. 409: the consumer was
        deleted). A message carries its own subject, not the request's, so one delivered late to an
        earlier request counts here; a status carries the request's, so only this one's end ends it."""
        self._requests += 1
        reply = f"{self._inbox}.{self._requests}"
        request = {"batch": batch, "no_wait": True} if wait is None else {"batch": batch, "expires": int(wait * 1e9)}
        await self._nc.publish(self._next_subject, json.dumps(request).encode(), reply=reply)
        messages, deadline = [], time.monotonic() + (wait or 0) + ANSWER_SECONDS
        while len(messages) < batch:
            try:
                msg = _queued(self._sub) or await self._sub.next_msg(timeout=max(deadline - time.monotonic(), 0.001))
            except NatsTimeout:
                # The server ends a request itself, but leaves one for a consumer it does not have
                # unanswered. A new inbox makes it drop what is still open for the old one.
                await self._new_inbox()
                if not await self._consumer_exists():
                    return messages, f"the consumer {self.durable} is gone"
                log.info("%s: a pull request got no answer within %.0f s", self.spec.event, ANSWER_SECONDS)
                return messages, None
            status = JetStreamContext.is_status_msg(msg)
            if not status:
                messages.append(msg)
            elif msg.subject == reply:
                if status in ("404", "408"):  # nothing (more) now; the wait is over
                    return messages, None
                description = (msg.headers or {}).get("Description", "")
                if status == "503" or "deleted" in description.lower():
                    return messages, f"{status} {description}"
                # A passing state (leadership change, too many waiting requests, shutdown): nothing now.
                log.info("%s: a pull request ended with %s %s", self.spec.event, status, description)
                return messages, None
        return messages, None

    async def _consumer_exists(self) -> bool:
        try:
            await self._js.consumer_info(self.stream, self.durable)
        except NotFoundError:
            return False
        return True

    async def _new_inbox(self) -> None:
        old = self._sub
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(f"{self._inbox}.*")
        if old is not None:
            self._collect_late(old)  # what reached the old inbox is kept
            await old.unsubscribe()

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
