"""A delivered body as the providers hand it on: text, its JSON, or why it has none (never raised).

A body the records could not hold is unreadable, and so quarantined with its reason, rather than a
failure of its whole batch: over the size limit, not UTF-8, NUL or unpaired surrogates, not JSON (NaN and
Infinity included), or JSON nested deeper than the records take (`eventhub.lib.storable`).
"""

from typing import Any

from eventhub.lib.storable import MAX_PAYLOAD_DEPTH, UNSTORABLE, parse_json, storage_problem

from .base import Message, QueueSpec


def decode_body(raw: bytes | str, max_bytes: int) -> tuple[str, Any, str]:
    """Return (text, payload, parse_error) for a raw body; never raises. A body the records could not
    store is unreadable (and so quarantined with its reason), never a failure of its whole batch."""
    size = len(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)  # (lone surrogates too)
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    unstorable = UNSTORABLE.search(text) is not None  # (a NUL byte; surrogates in a str): kept as U+FFFD
    text = UNSTORABLE.sub("\ufffd", text) if unstorable else text
    if size > max_bytes:
        return text, None, f"body is {size} bytes, over the limit of {max_bytes} (QUEUES_MAX_MESSAGE_BYTES)"
    if isinstance(raw, bytes):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return text, None, f"body is not UTF-8 text: {exc}"
    if unstorable:
        return text, None, "body holds NUL or unpaired surrogate characters, which no record can store (kept as U+FFFD)"
    try:
        payload = parse_json(text)  # (NaN and Infinity are not JSON: unreadable, like any other non-JSON)
    except RecursionError:
        return text, None, f"body is JSON nested too deeply to read (at most {MAX_PAYLOAD_DEPTH} levels)"
    except ValueError as exc:
        return text, None, f"body is not JSON: {exc}"
    problem = storage_problem(text, payload)
    return (text, None, problem) if problem else (text, payload, "")


def make_message(message_id: str, raw: bytes | str, delivery_count: int, handle: Any, spec: QueueSpec,
                 headers: dict | None = None) -> Message:
    text, payload, error = decode_body(raw, spec.max_message_bytes)
    return Message(message_id=message_id, body=text, delivery_count=delivery_count, handle=handle,
                   payload=payload, parse_error=error, headers=headers or {})
