"""Quarantine: where a message goes when Eventhub gives up on it, and how ops staff get it back out."""

import json
import re
from typing import Any

from .models import QuarantinedMessage, suffixed_message_id

RETRY_MARK = ".retry"  # a retry's message id: <the id it retried>.retry<quarantine id> (see retry_id)
RETRY_SUFFIX = re.compile(rf"{re.escape(RETRY_MARK)}([0-9]+)$")
MAX_RETRY_CHAIN = 20  # retries of retries followed back at most this far
Reason = QuarantinedMessage.Reason
Status = QuarantinedMessage.Status


class NotQuarantined(ValueError):
    """Only a message still in quarantine can be retried or discarded."""


def _check_open(item: QuarantinedMessage) -> None:
    if item.status != Status.QUARANTINED:
        raise NotQuarantined(f"message {item.message_id} is {item.get_status_display().lower()} already")


def retry(item: QuarantinedMessage, *, user=None, payload: Any = None) -> str:
    """Publish the message (or `payload` instead of it) to its queue again; returns the new message id.

    The retry gets its own id, `<original id>.retry<quarantine id>`: brokers that deduplicate on the
    message id (JetStream, SQS FIFO) would drop a resend under the original one, and the retry's
    processing must not be taken for a duplicate of the delivery that failed. It continues the message:
    the actions that completed before it was quarantined are not run again (see `retried_messages`)."""
    from .publish import publish_raw

    _check_open(item)
    message_id = retry_id(item.message_id, item.pk)
    publish_raw(item.event, item.body_to_send(payload), message_id=message_id)
    edited = f" with edited payload {json.dumps(payload)}" if payload is not None else ""
    item.mark(Status.RETRIED, user, f"republished to {item.event} as {message_id}{edited}")
    return message_id


def retry_id(retried: str, pk: int) -> str:
    """`<the id it retried>.retry<quarantine id>`, the first part cut so that the whole fits the records."""
    return suffixed_message_id(retried, f"{RETRY_MARK}{pk}")


def retried_messages(event: str, message_ids: list[str]) -> dict[str, list[str]]:
    """For each of these ids that is a quarantine retry's, the ids of the messages it continues: the one it
    retried, and that one's own, if it was a retry too. Only ids quarantine gave out count (a producer's id
    that merely looks like one does not): the quarantined message they name must be this queue's, not
    discarded, and the id must be the one `retry` makes for it (whether or not it is marked retried yet:
    a consumer may get the message before that)."""
    continued: dict[str, list[str]] = {}
    looking_at = {mid: mid for mid in message_ids if RETRY_MARK in mid}  # message id -> the id to prove next
    for _ in range(MAX_RETRY_CHAIN):
        pks = {mid: int(match[1]) for mid, current in looking_at.items()
               if (match := RETRY_SUFFIX.search(current)) is not None}
        if not pks:
            break
        retried = dict(QuarantinedMessage.objects.filter(pk__in=set(pks.values()), event=event)
                       .exclude(status=Status.DISCARDED).values_list("pk", "message_id"))
        proven = {mid: retried[pk] for mid, pk in pks.items()
                  if pk in retried and retry_id(retried[pk], pk) == looking_at[mid] != retried[pk]}
        for mid, earlier in proven.items():
            continued.setdefault(mid, []).append(earlier)
        looking_at = {mid: earlier for mid, earlier in proven.items() if RETRY_MARK in earlier}
    return continued


def discard(item: QuarantinedMessage, *, reason: str, user=None) -> None:
    _check_open(item)
    if not reason.strip():
        raise ValueError("a reason is required to discard a quarantined message")
    item.mark(Status.DISCARDED, user, reason.strip())
