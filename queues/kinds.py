"""The registry of queue kinds: the prefix of an event string (`sqs:orders`) names one of these."""

from dataclasses import dataclass


@dataclass(frozen=True)
class QueueKind:
    name: str
    label: str
    broker: str


KINDS: dict[str, QueueKind] = {
    kind.name: kind
    for kind in (
        QueueKind("sqs", "AWS SQS", "sqs"),
        QueueKind("conductor", "Internal (database)", "database"),
        QueueKind("amqp_queue", "RabbitMQ queue", "amqp"),
        QueueKind("amqp_exchange", "RabbitMQ exchange", "amqp"),
        QueueKind("nats", "NATS JetStream", "nats"),
    )
}

KIND_CHOICES = [(kind.name, kind.label) for kind in KINDS.values()]


class UnknownQueueKind(ValueError):
    def __init__(self, kind: str):
        super().__init__(f"unknown queue kind {kind!r}; valid kinds are {', '.join(KINDS)}")
        self.kind = kind


def split_event(event: str) -> tuple[str, str]:
    """Split `kind:name` into its two parts; the name may itself contain colons (URLs, ARNs)."""
    kind, sep, name = event.partition(":")
    if not sep or kind not in KINDS:
        raise UnknownQueueKind(kind if sep else event)
    if not name.strip():
        raise ValueError(f"event {event!r} has no queue name after {kind!r}:")
    return kind, name
