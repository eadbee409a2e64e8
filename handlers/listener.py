"""Consuming queues: one batch at a time, through one entry point (`handlers.dispatch.dispatch_batch`).

`handle_batch` is shared by `listen_queues` and the django-q2 drain task. Unreadable messages and those
delivered more often than the queue allows go to quarantine without being dispatched; dispatch decides
for the rest, and only after it returned (its work committed) are messages acknowledged. Then the batch's
event may have one message sampled for its observed shape (`handlers.shapes`).
"""

import logging
import os
import socket
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Count, Max
from django.utils import timezone

from eventhub.lib import metrics
from queues import records
from queues.kinds import provider_for
from queues.models import ListenerHeartbeat, QuarantinedMessage, QueueConfig, ReceivedMessage
from queues.outbox import relay_once
from queues.providers.base import Message, Provider, ProviderError

from . import dispatch  # (the module, not its function: tests replace dispatch_batch)
from .shapes import SAMPLER

log = logging.getLogger(__name__)
Reason = QuarantinedMessage.Reason
HEARTBEAT_SECONDS = 5
STATS_SECONDS = 30
# One receive waits at most this long, whatever the config's wait_seconds: a stop (SIGTERM, a config change)
# is honoured within it. Idle, a consumer asks its broker again after each slice (for SQS, a billed request
# every 2 s: about 43,000 a day per consumer); a message that arrives meanwhile is taken at once.
MAX_WAIT_SECONDS = 2
BACKOFF_MAX_SECONDS = 60


def handle_batch(config: QueueConfig, provider: Provider, messages: list[Message]) -> int:
    received = time.monotonic()
    outcomes: list[str] = []  # what became of each message, for the metrics
    to_dispatch = []
    for message in messages:
        if not message.readable:
            give_up(config, provider, message, Reason.UNREADABLE, message.parse_error)
            outcomes.append("quarantined")
        elif message.delivery_count > config.max_deliveries:
            give_up(config, provider, message, Reason.MAX_DELIVERIES, _too_many(config, message))
            outcomes.append("quarantined")
        else:
            to_dispatch.append(message)
    if to_dispatch:
        # The database queue's acknowledgements commit with the batch's records: exactly once, for free.
        in_database = provider.acks_in_database
        decisions = dispatch.dispatch_batch(config, to_dispatch, acknowledge=provider.ack_many if in_database else None)
        if len(decisions) != len(to_dispatch):
            raise RuntimeError(f"dispatch decided {len(decisions)} of {len(to_dispatch)} messages")
        for message, decision in zip(to_dispatch, decisions, strict=True):
            if decision.action != "ack":
                outcomes.append(settle(config, provider, message, decision))
        if not in_database:
            acked = [(m, d) for m, d in zip(to_dispatch, decisions, strict=True) if d.action == "ack"]
            provider.ack_many([m for m, _ in acked])
            records.acknowledged([d.record for _, d in acked if d.record is not None])
        outcomes.extend("acknowledged" for decision in decisions if decision.action == "ack")
        # (after the acknowledgements: nearly always a clock read; now and then one message walked)
        SAMPLER.observe(config.event, to_dispatch)
    if metrics.enabled():
        _observe(config, outcomes, time.monotonic() - received)
    return len(messages)


def _observe(config: QueueConfig, outcomes: list[str], seconds: float) -> None:
    metrics.count_by(metrics.messages, [(config.event, outcome) for outcome in outcomes])
    metrics.batch_size.labels(config.event).observe(len(outcomes))
    latency = metrics.receipt_to_record.labels(config.event)
    for _ in outcomes:  # (each message of the batch waited as long: its record committed with the batch)
        latency.observe(seconds)


def settle(config: QueueConfig, provider: Provider, message: Message, decision: dispatch.Decision) -> str:
    """Carry out a nack or quarantine decision (acks go to the broker together, in one batch); returns the
    message's outcome (`returned` or `quarantined`)."""
    if decision.action == "quarantine":
        give_up(config, provider, message, Reason.REJECTED, decision.reason, decision.record)
    elif message.delivery_count >= config.max_deliveries:
        give_up(config, provider, message, Reason.MAX_DELIVERIES, decision.reason or _too_many(config, message),
                decision.record)
    else:
        provider.nack(message)
        records.returned(decision.record, decision.reason)
        return "returned"
    return "quarantined"


def give_up(config: QueueConfig, provider: Provider, message: Message, reason: str, error: str,
            record: ReceivedMessage | None = None) -> QuarantinedMessage:
    """Quarantine the message: in one transaction its actions still waiting for a retry are FAILED with the
    reason, its record says QUARANTINED and the quarantine keeps it; only then is it acknowledged on the
    broker (a crash in between redelivers it, and the quarantine is not lost)."""
    with transaction.atomic():
        dispatch.close_open_executions(config.event, message.message_id, f"the message was quarantined: {error}")
        records.quarantined(config, message, record, error)
        item = QuarantinedMessage.from_message(config, message, reason, error)
    provider.ack(message)
    log.warning("quarantined %s from %s (%s): %s", message.message_id, config.event, reason, error)
    return item


def _too_many(config: QueueConfig, message: Message) -> str:
    return f"delivered {message.delivery_count} times; the queue allows {config.max_deliveries}"


class Consumer:
    """One queue config's provider plus its bookkeeping (heartbeat, last poll, depth)."""

    def __init__(self, config: QueueConfig, name: str | None = None, number: int = 1):
        """`number`: which of the config's consumers in this process (its `concurrency`) this one is."""
        self.config = config
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{config.pk}" + (f"#{number}" if number > 1 else "")
        self.provider = provider_for(config.spec())
        self.stopping = threading.Event()
        self._handled = 0
        self._last_beat = 0.0
        self._last_stats = 0.0

    def poll_once(self, wait: float | None = None) -> int:
        """Receive one batch and handle it; returns how many messages there were (0 = idle)."""
        if not connection.in_atomic_block:  # (django-q2's sync mode runs tasks inside its transaction)
            close_old_connections()  # drop a connection a database outage left unusable
        if wait is None:
            wait = min(self.config.wait_seconds, MAX_WAIT_SECONDS)
        messages = self.provider.receive(self.config.batch_size, wait)
        handled = handle_batch(self.config, self.provider, messages) if messages else 0
        self._handled += handled
        self.beat()
        return handled

    def beat(self, error: str = "") -> None:
        now = time.monotonic()
        if error or now - self._last_beat >= HEARTBEAT_SECONDS:
            self._last_beat = now
            self.config.note_poll(error)
            ListenerHeartbeat.objects.update_or_create(consumer=self.name, defaults={
                "config": self.config, "event": self.config.event, "hostname": socket.gethostname(),
                "pid": os.getpid(), "last_beat_at": timezone.now(), "messages": self._handled,
                "last_error": error[:4000], "stopped_at": None,
            })
        if now - self._last_stats >= STATS_SECONDS:
            self._last_stats = now
            self.refresh_depth()
            ListenerHeartbeat.prune()

    def refresh_depth(self) -> None:
        try:
            depth = self.provider.depth()
        except Exception as exc:  # noqa: BLE001 - depth is informative; an outage shows up in polls
            log.info("%s: depth unavailable: %s", self.config.event, exc)
            return
        QueueConfig.objects.filter(pk=self.config.pk).update(depth=depth.ready, dead_letter_depth=depth.dead,
                                                             oldest_message_at=depth.oldest_at)

    def failed(self, exc: Exception) -> None:
        """An outage or a config that cannot work: log it, show it in the admin if the database answers, drop
        the connection. A broker's error (ProviderError: an outage, a missing region or queue) is one line;
        anything else is unexpected and gets its traceback."""
        log.warning("%s: %s", self.config.event, exc, exc_info=not isinstance(exc, ProviderError))
        metrics.broker_errors.labels(self.config.event, self.config.kind).inc()
        self.provider.close()
        try:
            self.beat(error=f"{type(exc).__name__}: {exc}")
        except Exception as db_exc:  # noqa: BLE001 - the database may be what is down
            log.warning("%s: could not record the error: %s", self.config.event, db_exc)

    def close(self) -> None:
        self.provider.close()
        try:
            ListenerHeartbeat.objects.filter(consumer=self.name).update(stopped_at=timezone.now(),
                                                                        messages=self._handled)
        except Exception as exc:  # noqa: BLE001 - shutting down during a database outage
            log.warning("%s: could not record the stop: %s", self.config.event, exc)

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` or this consumer's own `stopping` is set; the batch in hand is finished first."""
        backoff = 1.0
        try:
            while not (stop.is_set() or self.stopping.is_set()):
                try:
                    self.poll_once()
                    if backoff > 1.0:  # (it failed before: connected again)
                        metrics.broker_reconnects.labels(self.config.event, self.config.kind).inc()
                    backoff = 1.0
                except Exception as exc:  # noqa: BLE001 - the loop must outlive any outage
                    self.failed(exc)
                    stop.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
        finally:
            self.close()
            connection.close()


class Listener:
    """The consumers of every enabled queue config (or of the chosen events), kept in step with the configs.

    Run with threads, each config gets `concurrency` consumers, a thread each, all on the same queue: the
    claim and every broker hand a message to one of them at a time, and dispatch is safe side by side (a
    message's executions are unique in the database). Each thread's database work overlaps the others'
    Python work. On SQLite, which lets one transaction write at a time, a queue has one consumer whatever
    its concurrency: more would only wait for each other. `run_once` polls each config's first consumer only."""

    def __init__(self, events: list[str] | None = None, relay: bool = True):
        self.events = events or []
        self.relay = relay
        self.relayed = 0
        self.consumers: dict[int, list[Consumer]] = {}  # per config pk; more are added when threads start
        self.stamp: tuple | None = None
        self.stop = threading.Event()
        self.threads: dict[Consumer, threading.Thread] = {}

    def configs(self):
        configs = QueueConfig.objects.filter(enabled=True)
        return configs.filter(event__in=self.events) if self.events else configs

    @staticmethod
    def change_stamp() -> tuple:
        """Cheap: any config added, edited, disabled or removed changes it."""
        row = QueueConfig.objects.aggregate(n=Count("id"), changed=Max("updated_at"))
        return row["n"], row["changed"]

    def reload(self) -> bool:
        """Bring the consumers in step with the configs; True if anything changed."""
        stamp = self.change_stamp()
        if stamp == self.stamp:
            return False
        self.stamp = stamp
        wanted = {c.pk: c for c in self.configs()}
        for pk in list(self.consumers):
            if pk not in wanted or wanted[pk].updated_at != self.consumers[pk][0].config.updated_at:
                self.retire(pk)
        for pk, config in wanted.items():
            if pk not in self.consumers:
                self._add(config)
        return True

    def _add(self, config: QueueConfig, number: int = 1) -> bool:
        """Another consumer of `config` (the first, or number N of its concurrency)."""
        try:
            consumer = Consumer(config, number=number)
        except Exception as exc:  # noqa: BLE001 - a config that cannot work must not stop the others
            log.error("cannot consume %s: %s", config.event, exc)
            config.note_poll(f"{type(exc).__name__}: {exc}")
            return False
        self.consumers.setdefault(config.pk, []).append(consumer)
        if number == 1:
            log.info("consuming %s", config.event)
        return True

    def retire(self, pk: int) -> None:
        consumers = self.consumers.pop(pk)
        log.info("stopping the consumers of %s (config changed or removed)", consumers[0].config.event)
        for consumer in consumers:
            consumer.stopping.set()
            if consumer not in self.threads:
                consumer.close()

    def relay_step(self) -> int:
        """Publish due outbox messages (one relay step); returns how many were sent."""
        if not self.relay:
            return 0
        try:
            sent = relay_once()
        except Exception as exc:  # noqa: BLE001 - e.g. the database is down: the next step tries again
            log.warning("listener: outbox relay failed: %s", exc)
            close_old_connections()
            return 0
        self.relayed += sent
        return sent

    def run_once(self, wait: float | None = None) -> int:
        """One step without threads: reload, relay the outbox, then one batch from every config's first
        consumer. Returns messages handled (received)."""
        self.reload()
        self.relay_step()
        handled = 0
        for consumer, *_ in list(self.consumers.values()):
            try:
                handled += consumer.poll_once(wait)
            except Exception as exc:  # noqa: BLE001 - one queue's outage must not stop the others
                consumer.failed(exc)
        return handled

    def run(self, reload_seconds: float | None = None) -> None:
        """Run every consumer in its own thread until `stop` is set; reload the configs and relay the outbox
        meanwhile (again at once while the relay finds a full batch)."""
        pause = reload_seconds if reload_seconds is not None else settings.OUTBOX_POLL_SECONDS
        backoff = 1.0
        while not self.stop.is_set():
            try:
                self.reload()
                self._start_threads()
                backoff = 1.0
                busy = self.relay_step() >= settings.OUTBOX_BATCH_SIZE
                self.stop.wait(0 if busy else pause)
            except Exception as exc:  # noqa: BLE001 - e.g. the database is down: retry, never crash
                log.warning("listener: cannot read the queue configs: %s", exc)
                close_old_connections()
                self.stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
        self.join()
        connection.close()  # this thread's, used for the configs and the outbox

    def unready(self) -> str:
        """Why this listener is not ready (its `/readyz`), or "": ready while every consumer thread runs."""
        if self.stop.is_set():
            return "stopping"
        dead = [thread.name for thread in list(self.threads.values()) if not thread.is_alive()]
        return f"consumer threads not running: {', '.join(dead)}" if dead else ""

    def _start_threads(self) -> None:
        for consumer, thread in list(self.threads.items()):
            if not thread.is_alive():
                del self.threads[consumer]
        for consumers in list(self.consumers.values()):
            config = consumers[0].config
            wanted = 1 if connection.vendor == "sqlite" else config.concurrency
            while len(consumers) < wanted and self._add(config, len(consumers) + 1):
                pass
            for number, consumer in enumerate(consumers, start=1):
                if consumer not in self.threads and not consumer.stopping.is_set():
                    thread = threading.Thread(target=consumer.run, args=(self.stop,), name=f"{config.event}#{number}")
                    self.threads[consumer] = thread
                    thread.start()

    def join(self, timeout: float = MAX_WAIT_SECONDS + 20) -> None:
        deadline = time.monotonic() + timeout
        for thread in list(self.threads.values()):
            thread.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        for pk in list(self.consumers):
            self.retire(pk)
