"""`${...}` parameter substitution, as Conductor's ParametersUtils does it — the one implementation.

Event actions (against a message payload) and workflow tasks (against `workflow.input`,
`workflow.variables`, `<taskRef>.output`) both resolve their templates here:

- the path is JSONPath from the context's root: `${a.b}`, `${$.a.b}`, `${a[0]}`, `${a['b c']}`, `${$}`;
- a placeholder that is the whole string keeps the value's type (number, object, list, null);
- one inside a longer string becomes text: null as `null`, objects and lists as compact JSON;
- a missing path resolves to null; `${}` is the empty string;
- `$${x}` is the literal text `${x}`;
- placeholders nest: `${map.${key}[${index}]}` resolves the inner ones first, as text.

The template is never changed (results are fresh copies), and only the context is ever read:
environment variables and settings are never substituted (Conductor leaks them).
"""

import copy
import json
from typing import Any

_MISSING = object()


class _Value:
    """A resolved placeholder inside a string, kept apart from literal text until the string is joined."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


def substitute(template: Any, context: dict) -> Any:
    """Resolve every `${...}` in `template` (recursing into dicts and lists) against `context`."""
    if isinstance(template, dict):
        return {key: substitute(value, context) for key, value in template.items()}
    if isinstance(template, list):
        return [substitute(item, context) for item in template]
    if isinstance(template, str):
        return substitute_string(template, context)
    return copy.deepcopy(template)


def substitute_string(text: str, context: Any) -> Any:
    parts = _parse(text, context)
    if len(parts) == 1 and isinstance(parts[0], _Value):
        return copy.deepcopy(parts[0].value)
    return "".join(part if isinstance(part, str) else as_text(part.value) for part in parts)


def as_text(value: Any) -> str:
    """How a value reads inside a longer string (Java's rendering, as Conductor does it)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _parse(text: str, context: Any) -> list:
    """Split `text` into literal strings and resolved `_Value`s."""
    parts: list = []
    literal: list[str] = []
    index = 0
    while index < len(text):
        if text.startswith("$${", index):
            end = _closing_brace(text, index + 3)
            if end is not None:
                literal.append(text[index + 1 : end + 1])  # `$${x}` reads `${x}`, left unresolved.
                index = end + 1
                continue
        if text.startswith("${", index):
            end = _closing_brace(text, index + 2)
            if end is not None:
                if literal:
                    parts.append("".join(literal))
                    literal = []
                parts.append(_Value(_resolve(text[index + 2 : end], context)))
                index = end + 1
                continue
        literal.append(text[index])
        index += 1
    if literal or not parts:
        parts.append("".join(literal))
    return parts


def _closing_brace(text: str, start: int) -> int | None:
    """Index of the `}` closing a placeholder whose body starts at `start`, counting nested `${`."""
    depth = 1
    index = start
    while index < len(text):
        if text.startswith("${", index):
            depth += 1
            index += 2
            continue
        if text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return None  # Unterminated: the text stays as written.


def _resolve(expression: str, context: Any) -> Any:
    if expression == "":
        return ""
    path = substitute_string(expression, context)  # Nested placeholders first, as text.
    if not isinstance(path, str):
        path = as_text(path)
    value = lookup(context, path)
    return None if value is _MISSING else value


def lookup(root: Any, path: str) -> Any:
    """Walk a JSONPath (`$.a.b[0]['c d']`) from `root`; `_MISSING` when any step is absent."""
    try:
        steps = _steps(path.strip())
    except ValueError:
        return _MISSING
    value = root
    for step in steps:
        value = _step(value, step)
        if value is _MISSING:
            return _MISSING
    return value


def _step(value: Any, step: str | int) -> Any:
    if isinstance(step, int):
        if isinstance(value, list) and -len(value) <= step < len(value):
            return value[step]
        if isinstance(value, dict) and str(step) in value:
            return value[str(step)]
        return _MISSING
    if isinstance(value, dict) and step in value:
        return value[step]
    return _MISSING


def _steps(path: str) -> list[str | int]:
    if path.startswith("$"):
        path = path[1:]
    steps: list[str | int] = []
    index = 0
    while index < len(path):
        char = path[index]
        if char == ".":
            index += 1
            continue
        if char == "[":
            end = path.find("]", index)
            if end < 0:
                raise ValueError(f"unclosed [ in {path!r}")
            steps.append(_bracket(path[index + 1 : end].strip()))
            index = end + 1
            continue
        end = index
        while end < len(path) and path[end] not in ".[":
            end += 1
        steps.append(path[index:end])
        index = end
    return steps


def _bracket(content: str) -> str | int:
    if len(content) >= 2 and content[0] == content[-1] and content[0] in "'\"":
        return content[1:-1]
    try:
        return int(content)
    except ValueError:
        return content
