"""Each broker as the benchmark sees it: publish N bodies with the broker's own client, and a bare
consumer (the same client) that receives, inserts one row per message into PostgreSQL, commits and
acknowledges each message, batch by batch, the same batch size the listener uses.

Queues are declared by Eventhub's own provider first, so the bare consumer reads a queue of exactly the
same type (quorum queue, work-queue stream, SQS queue with redrive) as the listener does.
"""

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable

import psycopg

log = logging.getLogger("bench")
BASELINE_TABLE = "bench_baseline"


def insert_rows(pg: psycopg.Connection, rows: list[tuple[str, str]]) -> None:
    """One row per message, one transaction per batch: the least a consumer that keeps a record does."""
    with pg.transaction(), pg.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {BASELINE_TABLE} (message_id, body) VALUES (%s, %s)", rows)  # noqa: S608


class Broker:
    """One kind of queue; `event` names the queue Eventhub's listener consumes."""

    kind = ""

    def __init__(self, name: str, batch_size: int):
        self.name = name
        self.batch_size = batch_size

    @property
    def event(self) -> str:
        return f"{self.kind}:{self.name}"

    def provision(self) -> None:
        """Let Eventhub's provider create the queue, as the listener would."""
        from queues.configs import config_for
        from queues.kinds import provider_for

        provider = provider_for(config_for(self.event).spec())
        try:
            self._provision(provider)
        finally:
            provider.close()

    def _provision(self, provider) -> None:
        provider.depth()

    def publish(self, bodies: Iterable[tuple[str, str]]) -> None:
        raise NotImplementedError

    def publisher(self) -> "Callable[[str, str], None]":
        """A function publishing one (message id, body) at a time, for the steady-rate run."""
        raise NotImplementedError

    def close_publisher(self) -> None:
        """Drop what `publisher()` opened."""

    def consume_bare(self, pg: psycopg.Connection, count: int) -> None:
        raise NotImplementedError


class Internal(Broker):
    kind = "conductor"

    def _provision(self, provider) -> None:
        """A table: nothing to create."""

    def publish(self, bodies: Iterable[tuple[str, str]]) -> None:
        from queues.models import InternalMessage

        InternalMessage.objects.bulk_create(
            (InternalMessage(queue=self.name, message_id=mid, body=body) for mid, body in bodies), batch_size=1000
        )

    def publisher(self):
        from queues.models import InternalMessage

        return lambda mid, body: InternalMessage.objects.create(queue=self.name, message_id=mid, body=body)

    def consume_bare(self, pg: psycopg.Connection, count: int) -> None:
        claim = (
            "DELETE FROM queues_internalmessage WHERE id IN (SELECT id FROM queues_internalmessage WHERE queue = %s "
            "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING message_id, body"
        )
        done = 0
        while done < count:
            with pg.transaction(), pg.cursor() as cursor:
                rows = cursor.execute(claim, (self.name, self.batch_size)).fetchall()
                cursor.executemany(f"INSERT INTO {BASELINE_TABLE} (message_id, body) VALUES (%s, %s)", rows)  # noqa: S608
            done += len(rows)


class Rabbit(Broker):
    kind = "amqp_queue"

    def __init__(self, name: str, batch_size: int, url: str):
        super().__init__(name, batch_size)
        self.url = url
        self._publish_connection = None

    def _provision(self, provider) -> None:
        provider.channel  # noqa: B018 - connecting declares the quorum queue and its dead-letter queue

    def _channel(self):
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        return connection, connection.channel()

    def publish(self, bodies: Iterable[tuple[str, str]]) -> None:
        import pika

        connection, channel = self._channel()
        channel.confirm_delivery()  # every message is in the queue before the clock starts
        try:
            for mid, body in bodies:
                channel.basic_publish("", self.name, body.encode(), pika.BasicProperties(
                    message_id=mid, delivery_mode=2, content_type="application/json"))
        finally:
            connection.close()

    def publisher(self):
        import pika

        self._publish_connection, channel = self._channel()
        channel.confirm_delivery()
        return lambda mid, body: channel.basic_publish("", self.name, body.encode(), pika.BasicProperties(
            message_id=mid, delivery_mode=2, content_type="application/json"))

    def close_publisher(self) -> None:
        if self._publish_connection is not None:
            self._publish_connection.close()
            self._publish_connection = None

    def consume_bare(self, pg: psycopg.Connection, count: int) -> None:
        connection, channel = self._channel()
        channel.basic_qos(prefetch_count=self.batch_size)
        done = 0
        batch: list = []
        try:
            for method, props, body in channel.consume(self.name, inactivity_timeout=0.01):
                if method is not None:
                    batch.append((method.delivery_tag, props.message_id, body.decode()))
                if batch and (len(batch) >= self.batch_size or method is None):
                    insert_rows(pg, [(mid, body) for _, mid, body in batch])
                    for tag, _, _ in batch:
                        channel.basic_ack(tag)
                    done += len(batch)
                    batch = []
                    if done >= count:
                        break
        finally:
            connection.close()


class Nats(Broker):
    kind = "nats"

    def __init__(self, name: str, batch_size: int, url: str):
        super().__init__(name, batch_size)
        self.url = url
        self._loop: asyncio.AbstractEventLoop | None = None
        self._nc = None

    def _provision(self, provider) -> None:
        provider._ensure()  # creates the work-queue stream and the durable pull consumer  # noqa: SLF001
        self.stream = provider.stream
        self.durable = provider.durable

    async def _publish_all(self, bodies: list[tuple[str, str]]) -> None:
        import nats

        nc = await nats.connect(self.url)
        js = nc.jetstream()
        try:
            for start in range(0, len(bodies), 200):  # 200 publishes in flight, each confirmed by the server
                chunk = bodies[start:start + 200]
                await asyncio.gather(*(js.publish(self.name, body.encode(), headers={"Nats-Msg-Id": mid})
                                       for mid, body in chunk))
        finally:
            await nc.close()

    def publish(self, bodies: Iterable[tuple[str, str]]) -> None:
        asyncio.run(self._publish_all(list(bodies)))

    def publisher(self):
        import nats

        self._loop = asyncio.new_event_loop()
        self._nc = self._loop.run_until_complete(nats.connect(self.url))
        js = self._nc.jetstream()
        return lambda mid, body: self._loop.run_until_complete(
            js.publish(self.name, body.encode(), headers={"Nats-Msg-Id": mid}))

    def close_publisher(self) -> None:
        if self._loop is not None:
            self._loop.run_until_complete(self._nc.close())
            self._loop.close()
            self._loop = None

    async def _consume(self, pg: psycopg.Connection, count: int) -> None:
        import nats
        from nats.errors import TimeoutError as NatsTimeout

        nc = await nats.connect(self.url)
        try:
            sub = await nc.jetstream().pull_subscribe_bind(durable=self.durable, stream=self.stream)
            done = 0
            while done < count:
                try:
                    msgs = await sub.fetch(self.batch_size, timeout=1)
                except (NatsTimeout, TimeoutError):
                    continue
                insert_rows(pg, [(m.headers.get("Nats-Msg-Id", ""), m.data.decode()) for m in msgs])
                for m in msgs:
                    await m.ack()
                done += len(msgs)
            await nc.flush()
        finally:
            await nc.close()

    def consume_bare(self, pg: psycopg.Connection, count: int) -> None:
        asyncio.run(self._consume(pg, count))


class Sqs(Broker):
    kind = "sqs"

    def __init__(self, name: str, batch_size: int, endpoint: str):
        super().__init__(name, min(batch_size, 10))
        self.endpoint = endpoint

    def _provision(self, provider) -> None:
        self.url = provider.url

    def _client(self):
        import boto3

        return boto3.session.Session().client("sqs", endpoint_url=self.endpoint, region_name="us-east-1")

    def publish(self, bodies: Iterable[tuple[str, str]]) -> None:
        client = self._client()
        bodies = list(bodies)
        for start in range(0, len(bodies), 10):
            entries = [{"Id": str(i), "MessageBody": body, "MessageAttributes": {
                "eventhub-message-id": {"DataType": "String", "StringValue": mid}}}
                for i, (mid, body) in enumerate(bodies[start:start + 10])]
            failed = client.send_message_batch(QueueUrl=self.url, Entries=entries).get("Failed")
            if failed:
                raise RuntimeError(f"SQS refused messages: {json.dumps(failed)[:300]}")

    def publisher(self):
        client = self._client()
        return lambda mid, body: client.send_message(QueueUrl=self.url, MessageBody=body, MessageAttributes={
            "eventhub-message-id": {"DataType": "String", "StringValue": mid}})

    def consume_bare(self, pg: psycopg.Connection, count: int) -> None:
        client = self._client()
        done = 0
        while done < count:
            msgs = client.receive_message(QueueUrl=self.url, MaxNumberOfMessages=self.batch_size, WaitTimeSeconds=1,
                                          MessageAttributeNames=["eventhub-message-id"]).get("Messages", [])
            if not msgs:
                continue
            insert_rows(pg, [(m["MessageAttributes"]["eventhub-message-id"]["StringValue"], m["Body"]) for m in msgs])
            for m in msgs:
                client.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
            done += len(msgs)


def wait_for(check: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(every)
