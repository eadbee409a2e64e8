"""A received message's record: the one module that creates it and moves its outcome.

Every delivery Eventhub takes from a broker, and every replay a person asks for, gets one
`ReceivedMessage` row. Its outcome moves one way, from RECEIVED (recorded; dispatch decided what to do)
to ACKNOWLEDGED (the broker was told, or, for a replay, nothing is left to do), RETURNED (left for
redelivery), QUARANTINED (given up on) or SUPERSEDED (its listener stopped after committing the
delivery's work and before telling the broker, and a later delivery of the message was acknowledged or
quarantined: that one settled it). Dispatch, the listener, the give-up step and replay call these
functions; none of them writes a record's outcome itself.

Dispatch writes a batch's records in one statement with the rest of the batch's rows, so `build` makes
them unsaved; the other functions save what they change. `acknowledged` takes both: a database queue's
acknowledgement commits with the batch, before its records are inserted.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import F, Value
from django.db.models.functions import Concat

from eventhub.lib.bulk import build as build_row

from .models import QueueConfig, ReceivedMessage, stored_message_id
from .providers.base import Message

Outcome = ReceivedMessage.Outcome


def _of(config: QueueConfig) -> dict:
    return {"config": config if config.pk else None, "event": config.event}


def build(config: QueueConfig, message: Message) -> ReceivedMessage:
    """The record of a readable delivery, RECEIVED and not saved yet: its batch inserts it."""
    return build_row(
        ReceivedMessage, **_of(config), message_id=stored_message_id(message.message_id), payload=message.payload,
        delivery_count=message.delivery_count,
    )


def build_replay(config: QueueConfig, original: ReceivedMessage, message: Message, *, user: AbstractBaseUser | None,
                 reason: str) -> ReceivedMessage:
    """The record of a replay of `original` (a delivery made by `user`, not a broker), saved at once."""
    return ReceivedMessage.objects.create(
        **_of(config), message_id=message.message_id, payload=message.payload, delivery_count=1,
        replay_of=original, replay_reason=reason,
        replayed_by=user if getattr(user, "is_authenticated", False) else None,
    )


def acknowledged(records: list[ReceivedMessage]) -> None:
    """The broker was told these messages are done (a database queue's: is told in this transaction)."""
    for record in records:
        record.outcome = Outcome.ACKNOWLEDGED
    saved = [record.pk for record in records if record.pk is not None]
    if saved:
        ReceivedMessage.objects.filter(pk__in=saved).update(outcome=Outcome.ACKNOWLEDGED)
    _supersede_earlier(records, "acknowledged")


def returned(record: ReceivedMessage | None, reason: str) -> None:
    """Left unacknowledged on the broker, which delivers it again after its visibility timeout."""
    if record is not None:
        ReceivedMessage.objects.filter(pk=record.pk).update(outcome=Outcome.RETURNED, detail=reason)


def quarantined(config: QueueConfig, message: Message, record: ReceivedMessage | None, why: str) -> ReceivedMessage:
    """Given up on. A delivery quarantined before dispatch saw it (unreadable, delivered too often) has no
    record yet: it gets one here, holding the body as received when that is not JSON."""
    if record is not None:
        ReceivedMessage.objects.filter(pk=record.pk).update(outcome=Outcome.QUARANTINED, detail=why)
    else:
        record = ReceivedMessage.objects.create(
            **_of(config), message_id=stored_message_id(message.message_id),
            payload=message.payload if message.readable else None, raw_body="" if message.readable else message.body,
            delivery_count=message.delivery_count, outcome=Outcome.QUARANTINED, detail=why or message.parse_error,
        )
    _supersede_earlier([record], "quarantined")
    return record


def _supersede_earlier(records: list[ReceivedMessage], how: str) -> None:
    """A redelivery settled its message: earlier deliveries of it still RECEIVED (their listener stopped after
    committing and before acknowledging) say so, rather than stay RECEIVED for good. First deliveries, almost
    all of them, cost nothing here."""
    for record in records:
        if record.delivery_count > 1 and record.replay_of_id is None:
            when = record.received_at.isoformat(timespec="seconds")
            note = f"; settled by delivery {record.delivery_count} of the message, received {when} and {how}"
            ReceivedMessage.objects.filter(
                event=record.event, message_id=record.message_id, outcome=Outcome.RECEIVED, replay_of__isnull=True,
                received_at__lt=record.received_at,
            ).update(outcome=Outcome.SUPERSEDED, detail=Concat(F("detail"), Value(note)))


def replay_settled(record: ReceivedMessage, *, done: bool, detail: str) -> None:
    """A replay's end: `done` (ACKNOWLEDGED) when dispatch finished it; otherwise it stays RECEIVED, since no
    broker will deliver it again (a person replays it again later)."""
    record.outcome = Outcome.ACKNOWLEDGED if done else Outcome.RECEIVED
    record.detail = detail
    record.save(update_fields=["outcome", "detail"])
