"""Payload helpers shared by conditions and actions."""

from typing import Any

from eventhub.lib.storable import parse_json, storage_problem


def expand_inline_json(value: Any, depth: int = 0) -> Any:
    """Parse, in place of the string, every string value that holds a JSON object or array.

    Conductor's `expandInlineJSON`: producers often send `{"data": "{\\"id\\": 1}"}`; after expansion
    `${data.id}` reaches inside. A string is expanded once: what its parse yields is taken as it is (a
    string in it holding JSON stays a string), as Conductor's JsonUtils does. Other strings stay as they
    are, and so does one whose JSON the records could not hold (deeper than MAX_PAYLOAD_DEPTH, or NUL in
    it). The argument itself is never changed.
    """
    if isinstance(value, dict):
        return {key: expand_inline_json(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [expand_inline_json(item, depth + 1) for item in value]
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("{", "[") and text[-1:] in ("}", "]"):
            try:
                parsed = parse_json(text)  # (a string holding NaN is not JSON: it stays a string)
            except (ValueError, RecursionError):
                return value
            if storage_problem(text, parsed, depth):
                return value
            return parsed
    return value
