"""The one entry point from queues into handlers: the listener and the django-q2 drain task hand every
readable batch here, then act on the decisions (ack once this has committed, nack, quarantine).

For now each message is recorded and acknowledged; matching handlers and running their actions
replaces this body, keeping the signature.
"""

from django.db import transaction

from queues.models import QueueConfig, ReceivedMessage
from queues.providers.base import Decision, Message


def dispatch_batch(config: QueueConfig, messages: list[Message]) -> list[Decision]:
    """One decision per message, in order. Each message is recorded as a ReceivedMessage (its id is set
    on `message.record_id`) before this returns; nothing here touches the broker."""
    with transaction.atomic():  # one commit for the batch: the records exist before anything is acknowledged
        for message in messages:
            ReceivedMessage.record(config, message)
    return [Decision.ack() for _ in messages]
