"""The `conductor` kind: Eventhub's own queue, rows of `queues.InternalMessage` in its database.

Delivery: at least once. A receive claims rows by moving their `visible_at` past the visibility timeout
and stamping a fresh receipt; a consumer that dies simply lets the claim expire and the row is delivered
again. Claims are safe with several consumers: on PostgreSQL the candidate rows are locked with
`SELECT ... FOR UPDATE SKIP LOCKED` (concurrent consumers take different rows and never wait on each
other); SQLite has no row locks, but Eventhub opens every SQLite transaction with BEGIN IMMEDIATE, so
claims are serialized by the database's write lock.

ack: deletes the row, only if our receipt still holds it (an expired claim re-taken by another consumer
is theirs now). nack(delay): makes the row visible again after `delay` seconds (None: the visibility
timeout, i.e. nothing to do). Delivery count: a column, incremented by each claim.
Dead-lettering: a row claimed `max_deliveries + 1` times is no longer delivered; it keeps its body and
gets `dead_lettered_at` (the backstop behind Eventhub's quarantine).
Ordering: oldest first within a queue (by id), best effort once messages are redelivered.
Options: none beyond the queue config's timings; publishing inside a transaction commits with it.
Waiting: on PostgreSQL a receive that finds nothing LISTENs on `eventhub_internal` until it returns; a
trigger on the table notifies the queue's name when new rows commit (migration 0006), and the receive
claims them at once. It looks again every second anyway, for rows that become visible by time (a nack's
delay, an expired claim). On SQLite, and inside a transaction (where LISTEN would only take effect at its
commit), it polls.
"""

import logging
import time
import uuid
from datetime import timedelta

import psycopg
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, Min, Q
from django.utils import timezone

from .base import Message, Provider, ProviderError, QueueDepth
from .bodies import make_message

log = logging.getLogger(__name__)
IDLE_POLL_SECONDS = 0.25  # how often an empty queue is looked at again while long-polling
NOTIFIED_POLL_SECONDS = 1.0  # the same when new rows wake the consumer (PostgreSQL): for rows visible by time
CHANNEL = "eventhub_internal"  # notified by the trigger of migration 0006, with the queue's name


class InternalProvider(Provider):
    kind = "conductor"
    acks_in_database = True

    @property
    def _rows(self):
        from queues.models import InternalMessage

        return InternalMessage.objects.filter(queue=self.spec.name)

    def receive(self, max_messages: int, wait: float) -> list[Message]:
        deadline = time.monotonic() + wait
        can_listen, listening = wait > 0 and _can_listen(), False
        try:
            while True:
                messages = self._guarded(self._claim, max_messages)
                remaining = deadline - time.monotonic()
                if messages or remaining <= 0:
                    return messages
                if can_listen and not listening:
                    # Only while waiting (a connection that listens and is then left idle would hold back the
                    # server's notification queue), and a claim again after LISTEN: rows committed before it
                    # sent no notification this connection will see.
                    self._guarded(_execute, f"LISTEN {CHANNEL}")
                    listening = True
                    self._wait_for_rows(0)  # drop notifications left from an earlier wait
                elif listening:
                    self._wait_for_rows(min(NOTIFIED_POLL_SECONDS, remaining))
                else:
                    time.sleep(min(IDLE_POLL_SECONDS, remaining))
        finally:
            if listening and connection.connection is not None:
                self._guarded(_execute, f"UNLISTEN {CHANNEL}")

    def _wait_for_rows(self, timeout: float) -> None:
        """Until rows of this queue are committed or `timeout` has passed (0: only read what has come)."""
        try:
            for notification in connection.connection.notifies(timeout=timeout):
                if timeout and notification.payload == self.spec.name:
                    return
        except psycopg.Error as exc:
            connection.close()  # unusable now: the next receive connects again
            raise ProviderError(f"database queue {self.spec.event}: {exc}") from exc

    def _claim(self, max_messages: int) -> list[Message]:
        from queues.models import InternalMessage

        now = timezone.now()
        limit = self.spec.broker_max_receives
        receipt = uuid.uuid4().hex
        hidden_until = now + timedelta(seconds=self.spec.visibility_timeout)
        # SKIP LOCKED: rows another consumer is claiming right now are simply not ours this time.
        lock = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
        table = connection.ops.quote_name(InternalMessage._meta.db_table)
        claim = (
            f"UPDATE {table} SET delivery_count = delivery_count + 1, visible_at = %s, receipt = %s "  # noqa: S608
            f"WHERE id IN (SELECT id FROM {table} WHERE queue = %s AND dead_lettered_at IS NULL "
            f"AND visible_at <= %s AND delivery_count < %s ORDER BY id LIMIT %s{lock}) "
            "RETURNING id, message_id, body, delivery_count"
        )
        with transaction.atomic():
            self._rows.filter(dead_lettered_at__isnull=True, visible_at__lte=now,
                              delivery_count__gte=limit).update(dead_lettered_at=now)
            with connection.cursor() as cursor:
                stamp = connection.ops.adapt_datetimefield_value
                cursor.execute(claim, [stamp(hidden_until), receipt, self.spec.name, stamp(now), limit, max_messages])
                rows = sorted(cursor.fetchall())
        return [make_message(message_id, body, count, (pk, receipt), self.spec) for pk, message_id, body, count in rows]

    def ack(self, message: Message) -> None:
        pk, receipt = message.handle
        if not self._guarded(lambda: self._rows.filter(pk=pk, receipt=receipt).delete()[0]):
            log.warning("ack of %s on %s came after its claim expired", message.message_id, self.spec.event)

    def ack_many(self, messages: list[Message]) -> None:
        """One DELETE per claim (a batch is one claim), each row only if our receipt still holds it."""
        by_receipt: dict[str, list[int]] = {}
        for message in messages:
            pk, receipt = message.handle
            by_receipt.setdefault(receipt, []).append(pk)
        for receipt, pks in by_receipt.items():
            deleted = self._guarded(lambda r=receipt, p=pks: self._rows.filter(pk__in=p, receipt=r).delete()[0])
            if deleted < len(pks):
                log.warning("ack of %d message(s) on %s came after their claim expired", len(pks) - deleted,
                            self.spec.event)

    def nack(self, message: Message, delay: float | None = None) -> None:
        if delay is None:
            return  # already hidden until its visibility timeout
        pk, receipt = message.handle
        visible_at = timezone.now() + timedelta(seconds=delay)
        self._guarded(lambda: self._rows.filter(pk=pk, receipt=receipt).update(visible_at=visible_at))

    def publish(self, body: str, *, message_id: str | None = None) -> str:
        from queues.models import InternalMessage

        message_id = message_id or uuid.uuid4().hex
        self._guarded(lambda: InternalMessage.objects.create(queue=self.spec.name, message_id=message_id, body=body))
        return message_id

    def depth(self) -> QueueDepth:
        now = timezone.now()
        live = self._rows.filter(dead_lettered_at__isnull=True)
        counts = live.aggregate(ready=Count("pk", filter=Q(visible_at__lte=now)),
                                in_flight=Count("pk", filter=Q(visible_at__gt=now)), oldest_at=Min("created_at"))
        return QueueDepth(**counts, dead=self._rows.filter(dead_lettered_at__isnull=False).count())

    def close(self) -> None:
        """Nothing to drop: Django owns the database connection."""

    def _guarded(self, call, *args):
        try:
            return call(*args)
        except DatabaseError as exc:
            raise ProviderError(f"database queue {self.spec.event}: {exc}") from exc


def _can_listen() -> bool:
    """Whether this thread's connection can wait for new rows; where it cannot, consumers poll instead."""
    return connection.vendor == "postgresql" and not connection.in_atomic_block


def _execute(sql: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql)
