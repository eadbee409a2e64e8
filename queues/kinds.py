"""The registry of queue kinds: the prefix of an event string (`sqs:orders`) names one of these.

Each kind maps to its provider class by dotted path, imported only when a queue of that kind is
used, so the embedded default (the `conductor` database queue) never needs a broker library.
"""

from dataclasses import dataclass
from importlib import import_module

from .providers.base import Provider, QueueSpec


@dataclass(frozen=True)
class QueueKind:
    name: str
    label: str
    broker: str
    provider_path: str

    def provider_class(self) -> type:
        module, _, attr = self.provider_path.rpartition(".")
        return getattr(import_module(module), attr)


KINDS: dict[str, QueueKind] = {
    kind.name: kind
    for kind in (
        QueueKind("sqs", "AWS SQS", "sqs", "queues.providers.sqs.SqsProvider"),
        QueueKind("conductor", "Internal (database)", "database", "queues.providers.internal.InternalProvider"),
        QueueKind("amqp_queue", "RabbitMQ queue", "amqp", "queues.providers.amqp.AmqpProvider"),
        QueueKind("amqp_exchange", "RabbitMQ exchange", "amqp", "queues.providers.amqp.AmqpProvider"),
        QueueKind("nats", "NATS JetStream", "nats", "queues.providers.nats.NatsProvider"),
    )
}

KIND_CHOICES = [(kind.name, kind.label) for kind in KINDS.values()]


class UnknownQueueKind(ValueError):
    def __init__(self, kind: str):
        super().__init__(f"unknown queue kind {kind!r}; valid kinds are {', '.join(KINDS)}")
        self.kind = kind


def kind_of(name: str) -> QueueKind:
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownQueueKind(name) from None


def split_event(event: str) -> tuple[str, str]:
    """Split `kind:name` into its two parts; the name may itself contain colons (URLs, ARNs)."""
    kind, sep, name = event.partition(":")
    if not sep or kind not in KINDS:
        raise UnknownQueueKind(kind if sep else event)
    if not name.strip():
        raise ValueError(f"event {event!r} has no queue name after {kind!r}:")
    return kind, name


def provider_for(spec: QueueSpec) -> Provider:
    """A new provider for the queue `spec` names, of its kind's class."""
    return kind_of(spec.kind).provider_class()(spec)
