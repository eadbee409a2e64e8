"""Whether text and JSON can be stored at all, by every database and in every UTF-8 response.

NUL and unpaired surrogates are valid in Python strings and JSON escapes (`"\\u0000"`, `"\\ud800"`), but
PostgreSQL refuses them and UTF-8 cannot encode surrogates; JSON nested deeper than the records' encoder
reaches cannot be written either. The API refuses such requests (parsers, middleware); the queues mark
such bodies unreadable; the admin and replay refuse such payloads.

`NaN`, `Infinity` and `-Infinity` are not JSON (RFC 8259), though Python reads them: PostgreSQL would
store them as null, SQLite refuses the row, and a condition's JavaScript cannot parse them. Every reader
here refuses them, so a payload means the same thing to the records and to the conditions.
"""

import json
import re
from typing import Any

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Deeper payloads are refused as unreadable: the records' JSON encoder (orjson) stops at 255 levels, and
# records wrap a payload in a few levels of their own (rows, a workflow's input).
MAX_PAYLOAD_DEPTH = 200


class UnreadableJSON(ValueError):
    """Text that is not JSON every record can hold; the message says why, in words a person can act on."""


def _refuse_constant(name: str) -> Any:
    raise UnreadableJSON(f"{name} is not a JSON value (JSON has no NaN or Infinity; send null or a number)")


# One decoder, made once: `json.loads(text, parse_constant=...)` would build a decoder on every call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def parse_json(text: str) -> Any:
    """JSON's value of `text`, with NaN and Infinity refused (raises UnreadableJSON, or json's own
    JSONDecodeError, both ValueErrors); RecursionError is left to the caller, which knows its limit."""
    return _DECODER.decode(text)


def read_json(text: str) -> Any:
    """JSON every record can hold, or UnreadableJSON saying why not: not JSON (with where it broke),
    NaN or Infinity, nested deeper than MAX_PAYLOAD_DEPTH, or NUL / unpaired surrogates in it."""
    try:
        value = parse_json(text)
    except json.JSONDecodeError as exc:
        raise UnreadableJSON(f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise UnreadableJSON(f"JSON nested more than {MAX_PAYLOAD_DEPTH} levels deep") from None
    problem = storage_problem(text, value)
    if problem:
        raise UnreadableJSON(problem.removeprefix("body is "))
    return value


def storage_problem(text: str, parsed: Any, depth: int = 0) -> str:
    """Why the records cannot hold `parsed` (the JSON of `text`, placed `depth` levels down), or "". Cheap
    for ordinary text: the walks run only when it has enough brackets to be that deep, or an escape that
    may decode to NUL."""
    limit = MAX_PAYLOAD_DEPTH - depth
    if text.count("[") + text.count("{") > limit and payload_depth(parsed) > limit:
        return f"body is JSON nested more than {MAX_PAYLOAD_DEPTH} levels deep"
    if "\\u" in text and has_unstorable_text(parsed):
        return "body is JSON, but holds \\u0000 or an unpaired surrogate, which no record can store"
    return ""


def payload_depth(value: Any) -> int:
    """How many arrays and objects deep JSON goes (without recursion: any depth is measured)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest


def has_unstorable_text(value: Any) -> bool:
    """Whether JSON holds text no database column or UTF-8 page can take: NUL or an unpaired surrogate
    (`"\\ud800"` parses in Python, then fails on PostgreSQL and when a response is encoded)."""
    if isinstance(value, str):
        return bool(UNSTORABLE.search(value))
    if isinstance(value, dict):
        return any(has_unstorable_text(key) or has_unstorable_text(item) for key, item in value.items())
    if isinstance(value, list):
        return any(has_unstorable_text(item) for item in value)
    return False
