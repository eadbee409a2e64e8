"""Quarantine: where a message goes when Eventhub gives up on it, and how ops staff get it back out."""

import itertools
import json
import logging
import re
from typing import Any

from django.db import transaction

from .models import QuarantinedMessage, QueueConfig, ReceivedMessage
from .providers.base import Message, Provider

log = logging.getLogger(__name__)
RETRY_MARK = ".retry"  # a retry's message id: <the id it retried>.retry<quarantine id>
RETRY_ID = re.compile(rf"^(?P<retried>.+){re.escape(RETRY_MARK)}(?P<pk>[0-9]+)$", re.DOTALL)
Reason = QuarantinedMessage.Reason
Status = QuarantinedMessage.Status


class NotQuarantined(ValueError):
    """Only a message still in quarantine can be retried or discarded."""


def quarantine(
    config: QueueConfig, provider: Provider, message: Message, reason: str, error: str
) -> QuarantinedMessage:
    """Keep the message in the quarantine table, then (only then) acknowledge it on the broker. Its actions
    still waiting for a retry are FAILED with the reason."""
    from handlers import dispatch  # (queues call into handlers only at call time)

    with transaction.atomic():
        dispatch.close_open_executions(config.event, message.message_id, f"the message was quarantined: {error}")
        if message.record_id is None:
            ReceivedMessage.record(config, message, outcome=ReceivedMessage.Outcome.QUARANTINED, detail=error)
        else:
            ReceivedMessage.objects.filter(pk=message.record_id).update(
                outcome=ReceivedMessage.Outcome.QUARANTINED, detail=error
            )
        item = QuarantinedMessage.from_message(config, message, reason, error)
    provider.ack(message)
    log.warning("quarantined %s from %s (%s): %s", message.message_id, config.event, reason, error)
    return item


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
    message_id = f"{item.message_id}{RETRY_MARK}{item.pk}"
    publish_raw(item.event, item.body_to_send(payload), message_id=message_id)
    edited = f" with edited payload {json.dumps(payload)}" if payload is not None else ""
    item.mark(Status.RETRIED, user, f"republished to {item.event} as {message_id}{edited}")
    return message_id


def retried_messages(event: str, message_ids: list[str]) -> dict[str, list[str]]:
    """For each of these ids that is a quarantine retry's, the ids of the messages it continues: the one it
    retried, and that one's own, if it was a retry too. Only ids that quarantine gave out count (a
    producer's id that merely looks like one does not)."""
    steps = {}  # message id -> [(the id it retried, quarantine id), ...]
    for message_id in message_ids:
        if RETRY_MARK not in message_id:
            continue
        current, chain = message_id, []
        while (match := RETRY_ID.match(current)) is not None:
            current = match["retried"]
            chain.append((current, int(match["pk"])))
        if chain:
            steps[message_id] = chain
    if not steps:
        return {}
    pks = {pk for chain in steps.values() for _, pk in chain}
    given_out = set(QuarantinedMessage.objects.filter(pk__in=pks, event=event, status=Status.RETRIED)
                    .values_list("message_id", "pk"))
    continued = {}
    for message_id, chain in steps.items():
        proven = list(itertools.takewhile(lambda step: step in given_out, chain))
        if proven:
            continued[message_id] = [retried for retried, _ in proven]
    return continued


def discard(item: QuarantinedMessage, *, reason: str, user=None) -> None:
    _check_open(item)
    if not reason.strip():
        raise ValueError("a reason is required to discard a quarantined message")
    item.mark(Status.DISCARDED, user, reason.strip())
