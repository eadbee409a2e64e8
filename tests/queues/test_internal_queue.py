"""The `conductor` queue in Eventhub's database: safe claims with several consumers, dead-lettering."""

import threading

import pytest
from django.db import connection

from queues.models import InternalMessage
from queues.providers.internal import InternalProvider

from ..brokers import make_spec

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
