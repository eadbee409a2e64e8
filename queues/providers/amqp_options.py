"""Conductor's AMQP event names: `<queue or exchange>?exchangeType=&bindQueueName=&routingKey=&durable=
&exclusive=&autoDelete=&deliveryMode=1|2&maxPriority=`, with Conductor's defaults."""

from dataclasses import dataclass
from urllib.parse import parse_qsl

EXCHANGE_TYPES = ("direct", "fanout", "topic", "headers")
KNOWN = {"exchangeType", "bindQueueName", "routingKey", "durable", "exclusive", "autoDelete", "deliveryMode",
         "maxPriority"}


class AmqpOptionsError(ValueError):
    pass


@dataclass(frozen=True)
class AmqpOptions:
    is_exchange: bool
    target: str  # the queue, or the exchange
    exchange_type: str = "topic"
    bind_queue: str = ""
    routing_key: str = ""
    durable: bool = True
    exclusive: bool = False
    auto_delete: bool = False
    delivery_mode: int = 2
    max_priority: int | None = None

    @property
    def queue(self) -> str:
        """The queue Eventhub consumes from."""
        return self.bind_queue if self.is_exchange else self.target


def _bool(key: str, raw: str) -> bool:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise AmqpOptionsError(f"{key}={raw!r} must be true or false")


def parse_amqp_name(kind: str, name: str) -> AmqpOptions:
    target, _, query = name.partition("?")
    if not target:
        raise AmqpOptionsError("the queue or exchange name before '?' is empty")
    opts = dict(parse_qsl(query, keep_blank_values=True))
    unknown = set(opts) - KNOWN
    if unknown:
        raise AmqpOptionsError(f"unknown option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(KNOWN))}")
    exchange_type = opts.get("exchangeType", "topic")
    if exchange_type not in EXCHANGE_TYPES:
        raise AmqpOptionsError(f"exchangeType={exchange_type!r} must be one of {', '.join(EXCHANGE_TYPES)}")
    delivery_mode = opts.get("deliveryMode", "2")
    if delivery_mode not in ("1", "2"):
        raise AmqpOptionsError("deliveryMode must be 1 (transient) or 2 (persistent)")
    max_priority = opts.get("maxPriority")
    if max_priority is not None and not (max_priority.isdigit() and 1 <= int(max_priority) <= 255):
        raise AmqpOptionsError("maxPriority must be a whole number from 1 to 255")
    is_exchange = kind == "amqp_exchange"
    return AmqpOptions(
        is_exchange=is_exchange, target=target, exchange_type=exchange_type,
        bind_queue=opts.get("bindQueueName") or (f"bound_to_{target}" if is_exchange else ""),
        routing_key=opts.get("routingKey", ""),
        durable=_bool("durable", opts.get("durable", "true")),
        exclusive=_bool("exclusive", opts.get("exclusive", "false")),
        auto_delete=_bool("autoDelete", opts.get("autoDelete", "false")),
        delivery_mode=int(delivery_mode), max_priority=int(max_priority) if max_priority else None,
    )
