"""Linting a handler against the payloads that really arrive on its event (`handlers.shapes`).

Paths read by the handler:
- every `${...}` of its actions whose path is plain text or JSONPath (`${a.b}`, `${$.items[0].sku}`,
  `${items[*].sku}`, `${$..id}`, filters); a placeholder that nests others (`${map.${key}}`) is checked
  through the ones it nests only, and a path that cannot be told without running it (unions, functions) is
  not checked;
- a `value-param` condition's key;
- a JavaScript condition's property paths on the payload, best effort: `$.a.b`, `$['a'].b`, `$?.a`,
  `$.items[0].sku`, up to the first computed step (`$.a[i]`) and without a method called on the last
  (`$.name.toLowerCase()`). Only a name missing under something seen as an object with keys is warned
  about: `$.items.length` and `$.name.trim` read JavaScript's own properties of an array or a string.

A quoted name is read as what reads it at run time does: in JavaScript with all of its escapes (`$["it\'s"]`),
in a template as python-jsonpath does (JSON's escapes; a name it cannot read is not checked).

A path is seen when every step reaches something some sampled message had (indexes match any item), or it
goes below a free-form object. Nothing is warned about when the event has no shape yet (no message was
sampled) or its shape is full (SHAPES_MAX_PATHS): `Report.note` says why. Lint is advice and never raises:
an unexpected error is logged and gives no warnings and a note (NOT_LINTED).
"""

import json
import logging
import re
from dataclasses import asdict, dataclass, field

from django.db import transaction

from workflows.params import placeholders, template_strings

from .conditions import JAVASCRIPT, VALUE_PARAM, evaluator_of
from .models import EventHandler
from .shapes import ITEM, Key, Shape, Step, parse, render, shapes_of

log = logging.getLogger(__name__)
UNSEEN = "unseenPath"
UNRESOLVED = "unresolved"
WOULD_FAIL = "actionWouldFail"
HEADER = "X-Eventhub-Warnings"
# Characters of the header's value, and of each message in it: with the others, the response's headers stay
# well within 4 KB, the buffer nginx proxies them in by default (`proxy_buffer_size`: 502 beyond it).
HEADER_MAX = 1500
MESSAGE_MAX = 500
SUGGESTIONS = 10  # unseen paths of a handler (the first) a "did you mean" is looked for (`Shape.closest`)
NOT_LINTED = "its paths could not be checked (an error in the lint, logged): no warnings"


@dataclass(frozen=True)
class LintWarning:
    kind: str  # UNSEEN, UNRESOLVED (dry-run) or WOULD_FAIL (dry-run)
    where: str  # "condition" or the template's place, e.g. "actions[0].complete_task.workflowId"
    expression: str  # as written: "${workflowInstnceId}", "$.statsu"
    message: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Report:
    warnings: list[LintWarning] = field(default_factory=list)
    note: str = ""  # why paths were not checked, when they were not


_UNLOADED = object()


def lint(handler: EventHandler, shape: "Shape | None | object" = _UNLOADED) -> Report:
    """Warnings for the paths `handler` reads that no sampled message of its event had. `shape`: the event's,
    when the caller read it already (`lint_each`); None for none.

    Never raises: lint is advice, given after a save, beside a dry-run or on a page, none of which it may cost.
    An unexpected error is logged and gives no warnings and a note (NOT_LINTED)."""
    if shape is _UNLOADED:
        return lint_each([handler])[0]
    try:
        return _lint(handler, shape)
    except Exception:  # noqa: BLE001 - advice: a defect here must not fail a save that is committed already
        log.exception("%s: could not lint its paths", handler.name)
        return Report(note=NOT_LINTED)


def lint_each(handlers: list[EventHandler]) -> list[Report]:
    """`lint` of each handler, their events' shapes read in one query. Never raises either."""
    try:
        # (a savepoint in the caller's transaction, e.g. the admin's save: a failed read leaves it usable)
        with transaction.atomic():
            found = shapes_of({handler.event for handler in handlers})
    except Exception:  # noqa: BLE001 - as in lint
        log.exception("could not read the shapes of %s to lint their handlers",
                      ", ".join(sorted({handler.event for handler in handlers})))
        return [Report(note=NOT_LINTED) for _ in handlers]
    return [lint(handler, found.get(handler.event)) for handler in handlers]


def _lint(handler: EventHandler, shape: Shape | None) -> Report:
    if shape is None:
        return Report(note=f"no message on {handler.event} has been sampled yet: paths not checked")
    if shape.record.full:
        return Report(note=f"messages on {handler.event} had more field paths than the shape keeps "
                           "(SHAPES_MAX_PATHS): paths not checked")
    warnings = []
    for where, expression, steps, javascript in read_paths(handler):
        reach = shape.reach(steps)
        if reach.seen or (javascript and not _under_object(reach, steps)):
            continue
        guess = shape.closest(steps, reach) if len(warnings) < SUGGESTIONS else None
        warnings.append(LintWarning(UNSEEN, where, expression, _unseen(handler.event, where, expression, steps,
                                                                       reach.missing, guess)))
    return Report(warnings)


def _under_object(reach, steps: list[Step]) -> bool:
    step = steps[reach.missing]
    return isinstance(step, str) and step != ITEM and any(node.is_object for node in reach.parents)


def _unseen(event: str, where: str, expression: str, steps: list[Step], missing: int, guess: str | None) -> str:
    text = f"{where}: {expression} reads {render(steps)}, which no message sampled on {event} had"
    if missing < len(steps) - 1:
        text += f" (nothing at {render(steps[:missing + 1])})"
    return text + (f"; did you mean {guess}?" if guess else "")


def read_paths(handler: EventHandler) -> list[tuple[str, str, list[Step], bool]]:
    """(where, expression as written, steps, from JavaScript) of every path the handler reads, once each."""
    found: dict[tuple[str, str], tuple[str, str, list[Step], bool]] = {}
    for where, text in template_strings(handler.actions if isinstance(handler.actions, list) else [], "actions"):
        for expression, path in placeholders(text):
            steps = parse(path) if path is not None and path not in ("$", "") else None
            if steps:
                found.setdefault((where, expression), (where, expression, steps, False))
    for expression, steps, javascript in condition_paths(handler.condition, handler.evaluator_type):
        found.setdefault(("condition", expression), ("condition", expression, steps, javascript))
    return list(found.values())


_JS_STRING = r"""'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|`(?:[^`\\]|\\.)*`"""
_JS_STEP = r"""\??\.\s*[A-Za-z_$][\w$]*|\??\.?\[\s*(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\d+)\s*\]"""
_JS_PATH = re.compile(rf"({_JS_STRING})|(?<![\w$.])\$((?:\s*(?:{_JS_STEP}))+)(\s*\()?")
_JS_STEPS = re.compile(_JS_STEP)


def condition_paths(condition: str | None, evaluator_type: str | None) -> list[tuple[str, list[Step], bool]]:
    """(expression as written, steps, from JavaScript) of the payload paths a condition reads."""
    if not condition or not condition.strip():
        return []
    evaluator = evaluator_of(evaluator_type)
    if evaluator == VALUE_PARAM:
        return [(condition.strip(), [condition.strip()], False)]
    if evaluator != JAVASCRIPT:
        return []
    found = []
    for match in _JS_PATH.finditer(condition):
        if match.group(1) is not None:
            continue  # a string literal: `'$.a'` reads nothing
        steps = [_js_step(step) for step in _JS_STEPS.findall(match.group(2))]
        if match.group(3):  # `$.a.b(`: b is a method of a
            steps = steps[:-1]
        if steps and None not in steps:  # (a name JavaScript would refuse: not checked)
            found.append(("$" + match.group(2).strip(), steps, True))
    return found


def _js_step(text: str) -> Step | None:
    text = text.strip().removeprefix("?").removeprefix(".").strip()
    if not text.startswith("["):
        return text
    inner = text[1:-1].strip()
    if inner.isdigit():
        return int(inner)
    name = js_string(inner[1:-1])
    return Key(name) if name is not None else None


_JS_ESCAPE = re.compile(r"\\(?:u\{([0-9A-Fa-f]+)\}|u([0-9A-Fa-f]{4})|x([0-9A-Fa-f]{2})|([0-3][0-7]{0,2}|[4-7][0-7]?)"
                        r"|(\r\n|[\s\S]))")
_JS_CHARACTER = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v",
                 "\n": "", "\r": "", "\r\n": "", "\u2028": "", "\u2029": ""}  # (an escaped line break: none)


def js_string(body: str) -> str | None:
    r"""The value of a JavaScript string literal, from its body (between its quotes), with all of JavaScript's
    escapes, some of which JSON lacks (`\'`, `\x41`, `\0`, `\v`, `\u{1F600}`, legacy octal `\101`, a needless
    `\q`); None for one JavaScript refuses (`\u{110000}`)."""
    try:
        text = _JS_ESCAPE.sub(_js_escape, body)
    except ValueError:
        return None
    try:  # `\uD83D\uDE00`: one character, as JavaScript's UTF-16 strings have it
        return text.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        return text  # (a lone surrogate stays one, as json.loads leaves it in a payload's keys)


def _js_escape(match: re.Match) -> str:
    braced, four, two, octal, other = match.groups()
    if octal is not None:
        return chr(int(octal, 8))
    if other is not None:
        return _JS_CHARACTER.get(other, other)
    code = int(braced or four or two, 16)
    if code > 0x10FFFF:
        raise ValueError(f"no character \\u{{{braced}}}")
    return chr(code)


def header_value(warnings: list[LintWarning]) -> str:
    """`X-Eventhub-Warnings`: a JSON array of the warnings' messages, ASCII only (other characters as
    `\\uXXXX`), on one line, at most HEADER_MAX characters: the messages that do not fit are replaced by a last
    one saying how many were left out. Each message is encoded once, and only until the header is full."""
    shown, length = [], 2  # (the brackets)
    for index, warning in enumerate(warnings):
        message = warning.message if len(warning.message) <= MESSAGE_MAX else warning.message[:MESSAGE_MAX - 1] + "…"
        encoded = json.dumps(message, ensure_ascii=True)
        length += len(encoded) + (2 if shown else 0)  # (", " between two)
        left_out = len(warnings) - index - 1  # (should this be the last shown: room to say so)
        if length + (2 + len(_more(left_out)) if left_out else 0) > HEADER_MAX:
            break
        shown.append(encoded)
    if len(shown) < len(warnings):
        shown.append(_more(len(warnings) - len(shown)))
    return f"[{', '.join(shown)}]"


def _more(count: int) -> str:
    return json.dumps(f"... and {count} more: see a dry-run")
