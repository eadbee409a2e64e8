"""Replay: run a stored message through the current handlers again, as a new delivery.

A replay is a delivery made by a person: it gets its own message id, `<original id>:replay:<n>`, so
dispatch's duplicate suppression (which keys on the message id) runs it instead of recording it as a
duplicate of the original, and its record says which message it replays, who asked and why.

No broker is involved, so nothing can be redelivered: an action that fails transiently during a replay
is recorded FAILED at once (replay again later), rather than left IN_PROGRESS waiting for a redelivery
that never comes.
"""

import json
import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from eventhub.lib.storable import has_unstorable_text
from queues import records
from queues.configs import config_for
from queues.models import ReceivedMessage, suffixed_message_id
from queues.providers.base import Message

from .dispatch import Decision, dispatch_batch
from .models import ActionExecution, ExecutionStatus

logger = logging.getLogger(__name__)


class ReplayError(ValueError):
    """The message cannot be replayed as asked (no JSON payload, no reason)."""


@dataclass(frozen=True)
class ReplayResult:
    record: ReceivedMessage
    decision: Decision

    @property
    def summary(self) -> str:
        """One sentence for the person who replayed it."""
        executions = list(self.record.executions.order_by("handler_name", "index"))
        if not executions:
            return f"Replayed as {self.record.message_id}: {self.record.detail or 'nothing ran'}."
        parts = ", ".join(f"{e.handler_name}[{e.index}] {e.status}" for e in executions)
        return f"Replayed as {self.record.message_id}: {parts}."


def replay_message(record: ReceivedMessage, *, user, reason: str, payload: Any = None) -> ReceivedMessage:
    """Dispatch `record`'s message (or `payload` instead) again; returns the replay's own record."""
    return replay(record, user=user, reason=reason, payload=payload).record


def replay(record: ReceivedMessage, *, user, reason: str, payload: Any = None) -> ReplayResult:
    """As `replay_message`, also giving dispatch's decision (ack, or why it would be redelivered)."""
    reason = (reason or "").strip()
    if not reason:
        raise ReplayError("say why the message is replayed: a reason is required")
    if payload is None:
        payload = _stored_payload(record)
    elif has_unstorable_text(payload):
        raise ReplayError("the payload holds a NUL character or an unpaired surrogate, which cannot be stored")
    original = record.replay_of or record  # a replay of a replay still points at the message that came in
    config = config_for(original.event)
    with transaction.atomic():
        # Locked so two people replaying the same message at once get different numbers.
        ReceivedMessage.objects.select_for_update().filter(pk=original.pk).first()
        message = Message(message_id=_replay_id(original), body=json.dumps(payload), delivery_count=1,
                          payload=payload)
        replayed = records.build_replay(config, original, message, user=user, reason=reason)
        [decision] = dispatch_batch(config, [message], records=[replayed])
        _settle(replayed, decision)
    logger.info("%s replayed %s (%s) as %s: %s", user, original.message_id, original.event, message.message_id,
                decision.action)
    replayed.refresh_from_db()
    return ReplayResult(replayed, decision)


def _stored_payload(record: ReceivedMessage) -> Any:
    if record.payload is None and record.raw_body:
        raise ReplayError(f"message {record.message_id} was not JSON when received; replay it with an edited payload")
    return record.payload


def _replay_id(original: ReceivedMessage) -> str:
    """`<message id>:replay:<n>`, with an n no earlier replay's records use (some may have been deleted since:
    a reused id would make this replay a duplicate of that one and run nothing)."""
    number = ReceivedMessage.objects.filter(replay_of=original).count()
    while True:
        number += 1
        candidate = suffixed_message_id(original.message_id, f":replay:{number}")
        taken = (ReceivedMessage.objects.filter(event=original.event, message_id=candidate).exists()
                 or ActionExecution.objects.filter(event=original.event, message_id=candidate).exists())
        if not taken:
            return candidate


def _settle(record: ReceivedMessage, decision: Decision) -> None:
    """Give the replay its outcome; a transient failure is final, since no broker will redeliver it."""
    if decision.action == "nack":
        ActionExecution.objects.filter(delivery=record, status=ExecutionStatus.IN_PROGRESS).update(
            status=ExecutionStatus.FAILED, finished_at=timezone.now(), retryable=True,
        )
        records.replay_settled(record, done=False, detail="replay failed transiently, not retried (replay again "
                               f"later): {decision.reason}")
    elif decision.action == "quarantine":
        records.replay_settled(record, done=True, detail=f"{record.detail}; a broker delivery would have been "
                               f"quarantined: {decision.reason}")
    else:
        records.replay_settled(record, done=True, detail=record.detail)
