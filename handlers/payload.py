"""Payload helpers shared by conditions and actions."""

import json
import re
from typing import Any

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def expand_inline_json(value: Any) -> Any:
    """Parse, in place of the string, every string value that holds a JSON object or array.

    Conductor's `expandInlineJSON`: producers often send `{"data": "{\\"id\\": 1}"}`; after expansion
    `${data.id}` reaches inside. Parsed values are expanded again; other strings stay as they are.
    The argument itself is never changed.
    """
    if isinstance(value, dict):
        return {key: expand_inline_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [expand_inline_json(item) for item in value]
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("{", "[") and text[-1:] in ("}", "]"):
            try:
                return expand_inline_json(json.loads(text))
            except ValueError:
                return value
    return value


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
