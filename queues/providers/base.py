"""The one provider interface every queue kind fills in, and the values that cross it.

A provider is used by one thread at a time (pika and the NATS loop are not shared). It connects lazily
on first use; after `close()` the next call connects again, which is how consumers reconnect after
an outage. Errors from the broker are raised as `ProviderError`, which says whether retrying later may
help; nothing is swallowed here. (Turning a raw body into a `Message` is `bodies.py`'s; which class
serves a kind is the registry's, `queues.kinds.provider_for`.)
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar


class ProviderError(Exception):
    """A broker call failed. `retryable` is true for outages (connection refused, timeouts)."""

    def __init__(self, message: str, *, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


class ConfigurationError(ProviderError):
    """The queue's settings cannot work (bad name, missing credentials reference): retrying won't help."""

    def __init__(self, message: str):
        super().__init__(message, retryable=False)


@dataclass(frozen=True)
class QueueSpec:
    """Everything a provider needs to reach and consume one queue, as plain values (no models)."""

    kind: str
    name: str
    url: str = ""
    region: str = ""
    endpoint_url: str = ""
    batch_size: int = 10
    wait_seconds: float = 20
    visibility_timeout: int = 60
    max_deliveries: int = 5
    authorized_accounts: tuple[str, ...] = ()
    provision: bool = True
    max_message_bytes: int = 256 * 1024

    @property
    def event(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def broker_max_receives(self) -> int:
        """The broker's own dead-letter limit: one more than ours, so Eventhub sees the message that goes
        over the maximum and quarantines it; the broker only dead-letters when Eventhub could not."""
        return self.max_deliveries + 1


@dataclass
class Message:
    """One delivery of one message. `body` is exactly what the broker gave; `payload` is its JSON, or
    `parse_error` says why there is none (malformed bodies are delivered, never raised)."""

    message_id: str
    body: str
    delivery_count: int
    handle: Any = None
    payload: Any = None
    parse_error: str = ""
    headers: dict = field(default_factory=dict)

    @property
    def readable(self) -> bool:
        return not self.parse_error


@dataclass(frozen=True)
class QueueDepth:
    """Approximate counts; None where the broker cannot tell."""

    ready: int | None = None
    in_flight: int | None = None
    dead: int | None = None
    oldest_at: datetime | None = None  # when the oldest message still in the queue (not dead) was sent


class Provider(ABC):
    """receive → (work committed) → ack, or nack / let the visibility timeout pass for redelivery."""

    kind: ClassVar[str]
    # Acknowledging is a database write that can join the batch's transaction (the internal queue).
    acks_in_database: ClassVar[bool] = False

    def __init__(self, spec: QueueSpec):
        self.spec = spec

    @abstractmethod
    def receive(self, max_messages: int, wait: float) -> list[Message]:
        """Up to `max_messages`, waiting at most `wait` seconds for the first; [] means idle."""

    @abstractmethod
    def ack(self, message: Message) -> None:
        """The message is done: the broker forgets it."""

    def ack_many(self, messages: list[Message]) -> None:
        """Acknowledge a batch; brokers that can do it in one call or round trip override this."""
        for message in messages:
            self.ack(message)

    @abstractmethod
    def nack(self, message: Message, delay: float | None = None) -> None:
        """Give the message back for redelivery after `delay` seconds (None: the visibility timeout)."""

    @abstractmethod
    def publish(self, body: str, *, message_id: str | None = None) -> str:
        """Send one message; returns the broker's id for it."""

    @abstractmethod
    def close(self) -> None:
        """Drop the connection; unacknowledged messages return to the queue. The provider may be reused."""

    def depth(self) -> QueueDepth:
        return QueueDepth()

    def __enter__(self) -> "Provider":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
