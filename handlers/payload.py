"""Payload helpers shared by conditions and actions."""

import json
from typing import Any


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
