"""queues.records: the one place a received message's record is created and its outcome moved."""

import pytest

from queues import records
from queues.configs import ensure_config
from queues.models import ReceivedMessage
from queues.providers.base import Message

pytestmark = pytest.mark.django_db
Outcome = ReceivedMessage.Outcome


def message(message_id: str = "m-1", body: str = '{"a": 1}', delivery_count: int = 1, error: str = "") -> Message:
    return Message(message_id=message_id, body=body, delivery_count=delivery_count,
                   payload=None if error else {"a": 1}, parse_error=error)


def test_it_builds_an_unsaved_received_record_for_the_batch_to_insert():
    config = ensure_config("conductor:records")
    record = records.build(config, message(delivery_count=3))
    assert record.pk is None
    assert (record.event, record.message_id, record.payload, record.delivery_count, record.outcome) == (
        "conductor:records", "m-1", {"a": 1}, 3, Outcome.RECEIVED)
    assert record.config == config


def test_it_acknowledges_records_whether_or_not_they_are_saved_yet():
    config = ensure_config("conductor:records")
    saved = records.build(config, message("m-1"))
    saved.save()
    unsaved = records.build(config, message("m-2"))
    records.acknowledged([saved, unsaved])
    assert ReceivedMessage.objects.get(pk=saved.pk).outcome == Outcome.ACKNOWLEDGED
    assert unsaved.pk is None and unsaved.outcome == Outcome.ACKNOWLEDGED  # written as it is inserted


def test_it_returns_a_record_with_the_reason_and_ignores_a_missing_one():
    config = ensure_config("conductor:records")
    record = records.build(config, message())
    record.save()
    records.returned(record, "engine down")
    records.returned(None, "no record")
    assert ReceivedMessage.objects.values_list("outcome", "detail").get() == (Outcome.RETURNED, "engine down")


def test_it_quarantines_an_existing_record_or_records_the_unreadable_body_it_never_saw():
    config = ensure_config("conductor:records")
    record = records.build(config, message())
    record.save()
    assert records.quarantined(config, message(), record, "too many").pk == record.pk
    unreadable = records.quarantined(config, message("m-2", body="not json {", error="body is not JSON"), None, "")
    assert ReceivedMessage.objects.get(pk=record.pk).outcome == Outcome.QUARANTINED
    assert (unreadable.outcome, unreadable.payload, unreadable.raw_body, unreadable.detail) == (
        Outcome.QUARANTINED, None, "not json {", "body is not JSON")


def test_a_replay_is_acknowledged_when_done_and_stays_received_when_not(django_user_model):
    config = ensure_config("conductor:records")
    original = records.build(config, message())
    original.save()
    user = django_user_model.objects.create_user(username="ops")
    replay = records.build_replay(config, original, message("m-1:replay:1"), user=user, reason="fixed the handler")
    assert (replay.replay_of, replay.replayed_by, replay.replay_reason) == (original, user, "fixed the handler")
    records.replay_settled(replay, done=False, detail="failed transiently")
    assert ReceivedMessage.objects.get(pk=replay.pk).outcome == Outcome.RECEIVED
    records.replay_settled(replay, done=True, detail="ok")
    assert ReceivedMessage.objects.values_list("outcome", "detail").get(pk=replay.pk) == (Outcome.ACKNOWLEDGED, "ok")
