"""`${...}` parameter substitution, as Conductor's ParametersUtils does it — the one implementation.

Event actions (against a message payload) and workflow tasks (against `workflow.input`,
`workflow.variables`, `<taskRef>.output`) both resolve their templates here:

- the path is Jayway-style JSONPath from the context's root, `$` optional: `${a.b}`, `${$.a.b}`, `${a[0]}`,
  `${a['b c']}`, `${$}`, deep scans `${$..id}`, wildcards `${items[*].id}`, slices, unions and filters
  `${items[?(@.qty > 1 && @.sku =~ /A.*/)].sku}`;
- a definite path (names and single indexes only) gives its value, or null when it is missing; an
  indefinite one (deep scan, wildcard, slice, union, filter) gives the list of what it matched, `[]` when
  nothing did; a path that cannot be read (`${a b}`, `${a.}`) gives null, as Conductor's read does;
- a placeholder that is the whole string keeps the value's type (number, object, list, null);
- one inside a longer string becomes text as Java prints it (`as_text`): null as `null`, objects as
  `{k=v, k2=v2}` and lists as `[1, 2]` (Java's `toString`), except what an indefinite path matched,
  which Jayway hands over as a json-smart array whose text is JSON (`["a","b"]`);
- `${}` is the empty string; `$${x}` is the literal text `${x}`;
- placeholders nest: `${map.${key}[${index}]}` resolves the inner ones first, as text.

Paths are compiled once per distinct path (`_path`). The plain ones, names and indexes, which nearly every
template uses, are walked here; the rest go to python-jsonpath, whose dialect is Jayway's as far as these
paths go (`$` optional, `?(...)` filters with `&&`, `||`, `!`, `in`, `=~ /regex/`).

The template is never changed (results are fresh copies), and only the context is ever read:
environment variables and settings are never substituted (Conductor leaks them).

Templates are limited when they are saved (`template_problems`): how deep `${` nests, how long a string
with placeholders is, how many placeholders there are and how deep the JSON around them goes. Whatever
still fails (a template saved before the limits) raises TemplateError, for its one action or task.
"""

import copy
import json
import math
import re
from functools import lru_cache
from typing import Any

from django.conf import settings
from jsonpath import JSONPath, JSONPathEnvironment, JSONPathError

from eventhub.lib.storable import MAX_PAYLOAD_DEPTH

_MISSING = object()
_IMMUTABLE = (str, int, float, bool, type(None))
# A template's own JSON is this shallow at most: a placeholder may splice in a payload up to
# MAX_PAYLOAD_DEPTH (200) deep, and the record of the result must stay within what orjson writes (255).
MAX_TEMPLATE_DEPTH = 32
_OPENS_OR_CLOSES = re.compile(r"\$\{|\}")

Problems = list[tuple[str, str]]


class TemplateError(ValueError):
    """A template that cannot be resolved; the message names the cause."""


def substitute(template: Any, context: dict) -> Any:
    """Resolve every `${...}` in `template` (recursing into dicts and lists) against `context`; TemplateError
    when it cannot be (nested deeper than Python recurses: only templates saved before the limits)."""
    try:
        return _substitute(template, context)
    except RecursionError:
        raise TemplateError("the template nests too deeply to resolve (`${` inside `${`, or JSON inside JSON); "
                            "saving it again names the limit it breaks") from None


def _substitute(template: Any, context: dict) -> Any:
    if isinstance(template, dict):
        return {key: _substitute(value, context) for key, value in template.items()}
    if isinstance(template, list):
        return [_substitute(item, context) for item in template]
    if isinstance(template, str):
        return substitute_string(template, context)
    return fresh(template)


def substitute_string(text: str, context: Any) -> Any:
    if "$" not in text:
        return text
    return _render(_compile(text), context)


def fresh(value: Any) -> Any:
    """A copy of a JSON value that shares nothing mutable with it (deepcopy, without its bookkeeping)."""
    if isinstance(value, _IMMUTABLE):
        return value
    if isinstance(value, dict):
        return {key: fresh(item) for key, item in value.items()}
    if isinstance(value, list):
        return [fresh(item) for item in value]
    return copy.deepcopy(value)


class _Matches(list):
    """What an indefinite path matched. Jayway collects it in a json-smart array, whose text is JSON, where
    the payload's own lists and objects (Jackson's) print as Java's `toString`."""

    __slots__ = ()


def as_text(value: Any) -> str:
    """How a value reads inside a longer string: `String.valueOf` of what Conductor holds."""
    if isinstance(value, _Matches):
        return _smart_json(value)
    return _java_text(value)


def _java_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, dict):  # AbstractMap.toString
        return "{" + ", ".join(f"{_java_text(key)}={_java_text(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):  # AbstractCollection.toString
        return "[" + ", ".join(_java_text(item) for item in value) + "]"
    return str(value)  # int: Jackson's Integer, Long or BigInteger print the same digits


def _java_double(value: float) -> str:
    """`Double.toString`: plain from 10^-3 up to 10^7 (`100.0`, `0.001`), else `1.0E7`, `1.5E-4`; the
    shortest digits that read back as the same double (Python's repr, and Java's since JDK 19)."""
    if value == 0 or not math.isfinite(value):
        return {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}.get(repr(value), repr(value))
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    point = len(whole) + int(exponent or 0) - (len(whole + fraction) - len(digits))  # value = 0.digits × 10^point
    digits = digits.rstrip("0") or "0"
    sign = "-" if value < 0 else ""
    if 1e-3 <= abs(value) < 1e7:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return f"{sign}{digits}{'0' * (point - len(digits))}.0"
        return f"{sign}{digits[:point]}.{digits[point:]}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{point - 1}"


# json-smart's default style escapes `/` and the C0, C1 and U+2000–U+20FF characters besides JSON's own.
_SMART_ESCAPES = {ord(char): f"\\u{ord(char):04X}"
                  for char in map(chr, [*range(0x20), *range(0x7F, 0xA0), *range(0x2000, 0x2100)])}
_SMART_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", ord("/"): "\\/", ord("\b"): "\\b", ord("\f"): "\\f",
                       ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def _smart_json(value: Any) -> str:
    """json-smart's `toJSONString` (compact, every string quoted)."""
    if isinstance(value, str):
        return '"' + value.translate(_SMART_ESCAPES) + '"'
    if isinstance(value, dict):
        return "{" + ",".join(f"{_smart_json(str(key))}:{_smart_json(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_smart_json(item) for item in value) + "]"
    return _java_text(value)


class _Placeholder:
    """One `${...}`: its expression, compiled, and its path, compiled, when the expression is plain text."""

    __slots__ = ("expression", "path", "source")

    def __init__(self, expression: str):
        self.source = expression  # as written between `${` and `}`
        self.expression = _compile(expression) if expression.strip() else None
        self.path: Any = None
        if self.expression is not None and len(self.expression) == 1 and isinstance(self.expression[0], str):
            self.path = _path(self.expression[0])  # nothing nested: the path is known now

    def resolve(self, context: Any) -> Any:
        if self.expression is None:
            return ""  # `${}` (or only spaces)
        path = self.path
        if path is None:
            text = _render(self.expression, context)  # nested placeholders first, as text
            text = text if isinstance(text, str) else as_text(text)
            if not text.strip():
                return ""  # as if it had been written `${}`
            path = _path(text)
        value = path.find(context)
        return None if value is _MISSING else value


def _render(parts: tuple, context: Any) -> Any:
    if len(parts) == 1:
        part = parts[0]
        return part if isinstance(part, str) else fresh(part.resolve(context))
    return "".join(part if isinstance(part, str) else as_text(part.resolve(context)) for part in parts)


@lru_cache(maxsize=4096)
def _compile(text: str) -> tuple:
    """Split a template into literal strings and placeholders, once per distinct template."""
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
                parts.append(_Placeholder(text[index + 2 : end]))
                index = end + 1
                continue
        literal.append(text[index])
        index += 1
    if literal or not parts:
        parts.append("".join(literal))
    return tuple(parts)


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


def lookup(root: Any, path: str) -> Any:
    """What the JSONPath `path` reads from `root`: a definite path's value (`_MISSING` when it is absent or
    cannot be read), an indefinite path's list of matches."""
    return _path(path).find(root)


# Paths ------------------------------------------------------------------------------------------------

class _Environment(JSONPathEnvironment):
    # A deep scan reaches the bottom of any payload the records hold, and of the workflow context around one.
    max_recursion_depth = MAX_PAYLOAD_DEPTH + MAX_TEMPLATE_DEPTH


_ENVIRONMENT = _Environment()
# A plain path: names, quoted names and single indexes. A name is what Jayway reads after a dot: anything
# up to the next dot, bracket, parenthesis or space (`my-task_ref`, `0`); `*` is left to the library.
_FIRST_NAME = re.compile(r"""[^$@.\[\]()*\s'"][^.\[\]()*\s'"]*""")
_STEP = re.compile(r"""\.([^.\[\]()*\s'"]+)|\[\s*(-?\d+)\s*\]|\[\s*'([^'\\]*)'\s*\]|\[\s*"([^"\\]*)"\s*\]""")


@lru_cache(maxsize=4096)
def _path(text: str) -> "_Walk | _Query":
    """A path compiled once per distinct text: walked here when it is plain, else by python-jsonpath."""
    text = text.strip()
    steps = _plain_steps(text)
    if steps is not None:
        return _Walk(steps)
    try:
        compiled = _ENVIRONMENT.compile(text)
    except JSONPathError:
        return _UNREADABLE  # Conductor logs the read's exception and substitutes null
    # A union (`a | b`) is a CompoundJSONPath: never definite.
    return _Query(compiled, definite=isinstance(compiled, JSONPath) and compiled.singular_query())


def _plain_steps(path: str) -> list[str | int] | None:
    """The steps of a plain path (`$.a.b[0]['c d']`, `a.b`, `[0]`), or None when the path is anything else."""
    steps: list[str | int] = []
    index = 1 if path.startswith("$") else 0
    if not index and (first := _FIRST_NAME.match(path)):
        steps.append(first.group())
        index = first.end()
    while index < len(path):
        step = _STEP.match(path, index)
        if step is None:
            return None
        name, number, single, double = step.groups()
        steps.append(int(number) if number is not None else next(s for s in (name, single, double) if s is not None))
        index = step.end()
    return steps


class _Walk:
    """A plain path, walked step by step: most templates' paths, at a fraction of the library's cost."""

    __slots__ = ("steps",)

    def __init__(self, steps: list[str | int]):
        self.steps = steps

    def find(self, root: Any) -> Any:
        value = root
        for step in self.steps:
            value = _step(value, step)
            if value is _MISSING:
                return _MISSING
        return value


def _step(value: Any, step: str | int) -> Any:
    if isinstance(step, int):
        if isinstance(value, list) and -len(value) <= step < len(value):
            return value[step]
        if isinstance(value, dict) and str(step) in value:  # (as python-jsonpath reads an index on an object)
            return value[str(step)]
        return _MISSING
    if isinstance(value, dict) and step in value:
        return value[step]
    return _MISSING


class _Query:
    """A path compiled by python-jsonpath. Definite: the one match or `_MISSING`; else a list (`_Matches`)."""

    __slots__ = ("compiled", "definite")

    def __init__(self, compiled: Any, definite: bool):
        self.compiled = compiled
        self.definite = definite

    def find(self, root: Any) -> Any:
        matches = _Matches()
        # (python-jsonpath would read a string root as a JSON document: a string has nothing to match)
        if self.compiled is not None and isinstance(root, dict | list):
            try:
                matches.extend(match.obj for match in self.compiled.finditer(root))
            except (JSONPathError, RecursionError):
                matches.clear()  # As Jayway suppresses a read's errors: nothing matched.
        if self.definite:
            return matches[0] if matches else _MISSING
        return matches


_UNREADABLE = _Query(None, definite=True)


def placeholders(text: str) -> list[tuple[str, str | None]]:
    """Each `${...}` of a string as written, with its path when it is plain (None when placeholders nest in
    it: those follow it, with theirs). `${}` and escaped `$${x}` are no placeholders here. None of a template
    nested too deeply to compile (saved before the limits)."""
    try:
        parts = _compile(text)
    except RecursionError:
        return []
    found: list[tuple[str, str | None]] = []
    for part in parts:
        if isinstance(part, _Placeholder) and part.expression is not None:
            plain = len(part.expression) == 1 and isinstance(part.expression[0], str)
            found.append((f"${{{part.source}}}", part.source.strip() if plain else None))
            if not plain:
                found.extend(placeholders(part.source))
    return found


def unresolved(text: str, context: Any) -> list[str]:
    """The `${...}` of a string (as written) that resolve to nothing against `context`: a missing or null
    value, or an indefinite path that matched nothing. (A template that nests too deeply to resolve is
    no placeholder here: resolving it says so itself.)"""
    missing = []
    try:
        parts = _compile(text) if "$" in text else ()
    except RecursionError:
        return []
    for part in parts:
        if isinstance(part, _Placeholder) and part.expression is not None:
            try:
                value = part.resolve(context)
            except RecursionError:
                continue
            if value is None or (isinstance(value, _Matches) and not value):
                missing.append(f"${{{part.source}}}")
    return missing


def template_strings(template: Any, path: str) -> list[tuple[str, str]]:
    """Every string of a template holding `${`, with its path (`actions[0].start_workflow.input.id`)."""
    found = []
    stack = [(template, path, 0)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, dict | list) and depth < MAX_TEMPLATE_DEPTH:
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((item, _child_path(where, key), depth + 1) for key, item in reversed(list(items)))
        elif isinstance(value, str) and "${" in value:
            found.append((where, value))
    return found


def template_problems(template: Any, path: str) -> Problems:
    """Why `template` could not be resolved within the limits, each problem with its path
    (`actions[0].start_workflow.input.id`); walked without recursion, so any depth is measured."""
    problems: Problems = []
    placeholders = 0
    stack = [(template, path, 0)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth >= MAX_TEMPLATE_DEPTH:
                problems.append((where, f"nests JSON more than {MAX_TEMPLATE_DEPTH} levels deep"))
                continue
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((item, _child_path(where, key), depth + 1) for key, item in reversed(list(items)))
        elif isinstance(value, str) and "${" in value:
            count, problem = _string_problem(value)
            placeholders += count
            if problem:
                problems.append((where, problem))
    if placeholders > settings.TEMPLATE_MAX_PLACEHOLDERS:
        problems.append((path, f"holds {placeholders} placeholders; at most {settings.TEMPLATE_MAX_PLACEHOLDERS} "
                               "(TEMPLATE_MAX_PLACEHOLDERS)"))
    return problems


def _string_problem(text: str) -> tuple[int, str]:
    """(placeholders in `text`, what is wrong with it or "")."""
    if len(text) > settings.TEMPLATE_MAX_LENGTH:
        return text.count("${"), (f"is a template of {len(text)} characters; at most {settings.TEMPLATE_MAX_LENGTH} "
                                  "(TEMPLATE_MAX_LENGTH)")
    count = depth = deepest = 0
    for match in _OPENS_OR_CLOSES.finditer(text):
        if match.group() == "}":
            depth = max(depth - 1, 0)
        else:  # (an unclosed or escaped `${` counts too: erring on the strict side)
            count, depth = count + 1, depth + 1
            deepest = max(deepest, depth)
    if deepest > settings.TEMPLATE_MAX_NESTING:
        return count, (f"nests `${{...}}` {deepest} deep; at most {settings.TEMPLATE_MAX_NESTING} "
                       "(TEMPLATE_MAX_NESTING)")
    return count, ""


def _child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if re.fullmatch(r"[A-Za-z_][\w-]*", key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"
