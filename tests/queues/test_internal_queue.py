"""The `conductor` queue in Eventhub's database: safe claims with several consumers, dead-lettering, waking."""

import threading
import time

import psycopg
import pytest
from django.db import connection, transaction

from queues.models import InternalMessage
from queues.providers import internal
from queues.providers.base import ProviderError
from queues.providers.internal import InternalProvider

from ..brokers import database_url, make_spec

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_never_hands_one_message_to_two_consumers_at_once():
    spec = make_spec("conductor", visibility_timeout=60)
    InternalMessage.objects.bulk_create(
        InternalMessage(queue=spec.name, message_id=f"m-{n}", body="{}") for n in range(60)
    )
    claimed: list[list[str]] = []
    start = threading.Barrier(4)

    def consume() -> None:
        provider, mine = InternalProvider(spec), []
        try:
            start.wait()
            while batch := provider.receive(3, 0):
                mine += [m.message_id for m in batch]
        finally:
            claimed.append(mine)
            connection.close()

    threads = [threading.Thread(target=consume) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    everything = [message_id for mine in claimed for message_id in mine]
    assert sorted(everything) == sorted(f"m-{n}" for n in range(60))  # each once, none lost


def test_it_ignores_an_acknowledgement_that_comes_after_its_claim_expired():
    spec = make_spec("conductor", visibility_timeout=0)
    provider = InternalProvider(spec)
    provider.publish("{}", message_id="slow")
    [first] = provider.receive(1, 0)
    [second] = provider.receive(1, 0)  # the claim expired and it was claimed again
    provider.ack(first)
    assert InternalMessage.objects.filter(message_id="slow").exists()
    provider.ack(second)
    assert not InternalMessage.objects.exists()


def test_it_dead_letters_a_message_past_the_broker_limit_and_keeps_it():
    spec = make_spec("conductor", visibility_timeout=0, max_deliveries=2)
    provider = InternalProvider(spec)
    provider.publish('{"x": 1}', message_id="dlq")
    counts = [m.delivery_count for _ in range(5) for m in provider.receive(1, 0)]
    assert counts == [1, 2, 3]  # max_deliveries + 1: Eventhub quarantines at 3 before this backstop
    row = InternalMessage.objects.get()
    assert row.dead_lettered_at is not None and row.body == '{"x": 1}'
    assert provider.depth().dead == 1


def test_it_waits_for_a_message_while_long_polling():
    spec = make_spec("conductor")
    provider = InternalProvider(spec)
    timer = threading.Timer(0.3, lambda: (InternalProvider(spec).publish("{}", message_id="late"), connection.close()))
    timer.start()
    messages = provider.receive(1, 5)
    timer.join()
    assert [m.message_id for m in messages] == ["late"]


def test_a_waiting_consumer_wakes_as_soon_as_rows_commit(monkeypatch):
    """PostgreSQL: the trigger's notification ends the wait, not the next look (made 30 s here). SQLite polls."""
    monkeypatch.setattr(internal, "NOTIFIED_POLL_SECONDS", 30)
    if connection.vendor == "postgresql":
        monkeypatch.setattr(internal, "IDLE_POLL_SECONDS", 30)
    spec = make_spec("conductor")
    provider = InternalProvider(spec)
    other = make_spec("conductor")

    def publish() -> None:
        InternalProvider(other).publish("{}", message_id="not-mine")  # wakes nobody waiting on spec
        time.sleep(0.3)
        InternalProvider(spec).publish("{}", message_id="late")
        connection.close()

    timer = threading.Timer(0.3, publish)
    started = time.monotonic()
    timer.start()
    messages = provider.receive(5, 20)
    elapsed = time.monotonic() - started
    timer.join()
    assert [m.message_id for m in messages] == ["late"]
    if connection.vendor == "postgresql":
        assert elapsed < 10  # woken, not polled: about 0.6 s
        with connection.cursor() as cursor:  # listening only while it waited
            cursor.execute("SELECT count(*) FROM pg_listening_channels()")
            assert cursor.fetchone()[0] == 0
    else:
        assert internal._can_listen() is False


def test_new_rows_notify_their_queues_once_per_statement():
    if connection.vendor != "postgresql":
        assert internal._can_listen() is False  # nothing to notify: consumers poll
        return
    first, second = make_spec("conductor"), make_spec("conductor")
    with psycopg.connect(database_url(), autocommit=True) as listener:
        listener.execute(f"LISTEN {internal.CHANNEL}")
        InternalMessage.objects.bulk_create(
            [InternalMessage(queue=first.name, message_id=f"a{n}", body="{}") for n in range(3)]
            + [InternalMessage(queue=second.name, message_id="b", body="{}")]
        )
        inserted = sorted(n.payload for n in listener.notifies(timeout=0.5))
        with transaction.atomic():
            InternalProvider(first).publish("{}")
            before_commit = [n.payload for n in listener.notifies(timeout=0.3)]
        after_commit = [n.payload for n in listener.notifies(timeout=0.5)]
    assert inserted == sorted([first.name, second.name])  # one per queue, not one per row
    assert before_commit == [] and after_commit == [first.name]


def test_a_wait_on_a_dropped_connection_is_a_provider_error_and_the_next_receive_reconnects(monkeypatch):
    spec = make_spec("conductor")
    provider = InternalProvider(spec)
    if connection.vendor != "postgresql":
        assert provider.receive(1, 0.3) == []  # polls: there is no connection to wait on
        return
    monkeypatch.setattr(internal, "NOTIFIED_POLL_SECONDS", 30)
    connection.ensure_connection()
    backend = connection.connection.info.backend_pid

    def drop() -> None:
        with psycopg.connect(database_url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (backend,))

    timer = threading.Timer(0.3, drop)
    timer.start()
    with pytest.raises(ProviderError, match="database queue"):
        provider.receive(1, 20)
    timer.join()
    provider.publish("{}", message_id="after")
    assert [m.message_id for m in provider.receive(1, 5)] == ["after"]
    assert connection.connection.info.backend_pid != backend


def test_a_claim_failing_while_it_waits_reports_its_own_error_not_the_unlisten_after_it(monkeypatch):
    provider = InternalProvider(make_spec("conductor"))
    if connection.vendor != "postgresql":
        assert provider.receive(1, 0.3) == []  # polls: nothing is listened to, nothing to undo
        return
    monkeypatch.setattr(internal, "NOTIFIED_POLL_SECONDS", 0.05)
    claim, calls = provider._claim, []

    def claim_on_a_dropped_connection(max_messages: int):
        calls.append(max_messages)
        if len(calls) == 3:  # listening by now (the first claim, LISTEN, a claim after it, then a wait)
            with psycopg.connect(database_url(), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (connection.connection.info.backend_pid,))
        return claim(max_messages)

    monkeypatch.setattr(provider, "_claim", claim_on_a_dropped_connection)
    with pytest.raises(ProviderError, match="terminating connection"):
        provider.receive(1, 5)
    assert len(calls) == 3
