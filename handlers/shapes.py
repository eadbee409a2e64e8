"""Observed shapes: per event, the field paths seen in recent messages, which handlers are linted against.

A path is written as a plain JSONPath from the payload's root without the `$`: `customer.address.city`,
`['first name']`, and array items as `[*]` whatever their index (`items[*].sku`). Every object and array on
the way is a path too (`customer`, `items`, `items[*]`). Bounded:

- an object of more than SHAPES_MAX_KEYS keys (a map keyed by ids, say) is free-form: it is recorded as
  `meta.*`, and any path below it counts as seen (best effort: nothing under it can be warned about);
- a value deeper than SHAPES_MAX_DEPTH steps is taken as free-form the same way;
- only the first SHAPES_ARRAY_ITEMS items of an array are walked;
- an event keeps at most SHAPES_MAX_PATHS paths (the most recently seen); once more arrive its shape is
  `full`, and a path not found there is not warned about; a process holds as many not written yet at most
  (while its writes fail), and the shape it writes then is full too;
- a path not seen for SHAPES_STALE_DAYS is dropped when the shape is next written, and the records purge
  deletes the shape of an event nothing was sampled on for as long.

The payload walked is the one conditions see, inline JSON expanded: a path inside a string holding JSON counts
as seen even for an action without `expandInlineJSON` (best effort).

Kept current by the listener at no measurable cost (`Sampler`): after a batch is handled, each consumer
process walks at most one of its messages per event every SHAPES_SAMPLE_SECONDS, and writes what it saw only
when something is new (at most every SHAPES_WRITE_SECONDS) or a path's last-seen time is older than
SHAPES_REFRESH_SECONDS: one short transaction, locked on the event's row, so that processes merge rather
than overwrite each other. Between samples a batch costs a dictionary lookup and a clock read.
"""

import difflib
import json
import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from queues.providers.base import Message

from .models import EventShape
from .payload import expand_inline_json

log = logging.getLogger(__name__)

ITEM = "[*]"  # a step into any item of an array
ANY = "*"  # a free-form object's step (stored), or a wildcard (asked): any key or item
DEEP = ".."  # (asked only) any number of steps, then the next one
Step = str | int  # a name, an index (int), ITEM, ANY or DEEP
_NAME = re.compile(r"""[^.\[\]()*\s'"?]+""")
_BARE = re.compile(r"[A-Za-z_$][\w$-]*")
# Closest seen paths looked for per shape read (a request: a save, a page of handlers), a few milliseconds
# each at worst (a hundred names alike: field_000 to field_099); the paths asked again cost nothing.
CLOSEST_LOOKUPS = 50


# Paths as text -----------------------------------------------------------------------------------


class Key(str):
    """A name that was written quoted (`['*']` is the key "*", not the wildcard)."""

    __slots__ = ()


def parse(path: str) -> list[Step] | None:
    """The steps of a path (`$.a.b`, `a[0].c`, `a['x y']`, `items[*].sku`, `$..id`, `a[?(@.n > 1)].b`), or
    None for what cannot be told without running it (unions, script expressions, functions)."""
    text = path.strip()
    steps: list[Step] = []
    index = 1 if text.startswith("$") else 0
    if not index and text and text[0] not in ".[":
        first = _NAME.match(text) or re.match(r"\*", text)
        if first is None:
            return None
        steps.append(ANY if first.group() == "*" else first.group())
        index = first.end()
    while index < len(text):
        step, index = _next_step(text, index)
        if step is None:
            return None
        steps.extend(step)
    return steps


def _next_step(text: str, index: int) -> tuple[list[Step] | None, int]:
    if text.startswith("..", index):
        rest, end = _bracket(text, index + 2) if text.startswith("[", index + 2) else _dotted(text, index + 1)
        return ([DEEP, *rest] if rest else None), end
    if text.startswith(".", index):
        return _dotted(text, index)
    if text.startswith("[", index):
        return _bracket(text, index)
    return None, index


def _dotted(text: str, index: int) -> tuple[list[Step] | None, int]:
    if text.startswith(".*", index):
        return [ANY], index + 2
    name = _NAME.match(text, index + 1)
    return ([name.group()], name.end()) if name else (None, index)


_QUOTED = re.compile(r"""\[\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s*\]""")
_INDEX = re.compile(r"\[\s*(-?\d+)\s*\]")
_ITEMS = re.compile(r"\[\s*(?:\*|-?\d*\s*:\s*-?\d*(?:\s*:\s*-?\d*)?|-?\d+(?:\s*,\s*-?\d+)+)\s*\]")


def _bracket(text: str, index: int) -> tuple[list[Step] | None, int]:
    if quoted := _QUOTED.match(text, index):
        name = _quoted_name(*quoted.groups())
        return ([Key(name)], quoted.end()) if name is not None else (None, index)
    if number := _INDEX.match(text, index):
        return [int(number.group(1))], number.end()
    if items := _ITEMS.match(text, index):  # a wildcard, a slice or a union of indexes: some items
        return [ITEM], items.end()
    if text.startswith("[?", index):  # a filter: whichever items (or values) pass it
        end = _filter_end(text, index + 2)
        return ([ITEM], end) if end is not None else (None, index)
    return None, index


def _quoted_name(single: str | None, double: str | None) -> str | None:
    """A quoted name's value as python-jsonpath reads it (JSON's escapes, and `\\'` in single quotes), or None
    when it cannot: an escape JSON lacks (`\\x41`, `\\v`) makes the path unreadable, and it resolves to null."""
    body = single.replace('"', '\\"').replace("\\'", "'") if single is not None else double
    try:  # (control characters allowed: a stored path's name may hold them, as `render` writes it)
        return json.loads(f'"{body}"', strict=False)
    except ValueError:
        return None


def _filter_end(text: str, index: int) -> int | None:
    depth = 0
    quote = None
    for position in range(index, len(text)):
        char = text[position]
        if quote:
            quote = None if char == quote and text[position - 1] != "\\" else quote
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "]" and depth == 0:
            return position + 1
    return None


def render(steps: list[Step]) -> str:
    """The normalised text of a path's steps (indexes as `[*]`)."""
    out = []
    for step in steps:
        if step == DEEP and not isinstance(step, Key):
            out.append("..")
        elif isinstance(step, int) or (step == ITEM and not isinstance(step, Key)):
            out.append(ITEM)
        elif step == ANY and not isinstance(step, Key):
            out.append(ANY if not out or out[-1] == ".." else ".*")
        elif _BARE.fullmatch(step) and not step.isdigit():
            out.append(step if not out or out[-1] == ".." else f".{step}")
        elif "'" in step or "\\" in step:
            out.append(f"[{json.dumps(step, ensure_ascii=False)}]")
        else:
            out.append(f"['{step}']")
    return "".join(out)


# Walking a payload -------------------------------------------------------------------------------


def paths_of(payload: Any) -> tuple[set[str], bool]:
    """The normalised paths of one payload (breadth first) and whether it had more than SHAPES_MAX_PATHS."""
    limit, max_keys = settings.SHAPES_MAX_PATHS, settings.SHAPES_MAX_KEYS
    max_depth, items = settings.SHAPES_MAX_DEPTH, settings.SHAPES_ARRAY_ITEMS
    found: set[str] = set()
    queue = deque([(payload, "", 0)])
    while queue:
        value, prefix, depth = queue.popleft()
        if isinstance(value, dict):
            if len(value) > max_keys or (depth >= max_depth and value):
                found.add(_child(prefix, ANY))
                continue
            children = [(item, _child(prefix, key)) for key, item in value.items()]
        elif isinstance(value, list):
            if depth >= max_depth and value:
                found.add(_child(prefix, ANY))
                continue
            children = [(item, prefix + ITEM) for item in value[:items]]
        else:
            continue
        for item, path in children:
            if path not in found and len(found) >= limit:
                return found, True
            found.add(path)
            queue.append((item, path, depth + 1))
    return found, False


def _child(prefix: str, key: str) -> str:
    if key == ANY:
        return f"{prefix}.*" if prefix else ANY
    if _BARE.fullmatch(key):
        return f"{prefix}.{key}" if prefix else key
    return prefix + render([Key(key)])


# Reading a shape ---------------------------------------------------------------------------------


@dataclass
class Node:
    children: dict[str, "Node"] = field(default_factory=dict)
    path: str | None = None  # the stored path that ends here, if one does

    @property
    def free(self) -> bool:
        """A free-form object: anything below it counts as seen."""
        return ANY in self.children

    @property
    def is_object(self) -> bool:
        return any(key != ITEM for key in self.children)


@dataclass(frozen=True)
class Reach:
    """How far a path's steps go in a shape: `seen`, or the first step not found and the nodes before it."""

    seen: bool
    missing: int = -1
    parents: tuple[Node, ...] = ()


class Shape:
    """An event's shape, as a tree to walk paths through."""

    def __init__(self, record: EventShape):
        self.record = record
        self.root = Node()
        self._closest: dict[str, str | None] = {}
        self._lookups = 0
        for path in record.paths:
            steps = parse(path)
            if steps is None:
                continue
            node = self.root
            for step in steps:
                node = node.children.setdefault(ITEM if isinstance(step, int) else str(step), Node())
            node.path = path

    def reach(self, steps: list[Step]) -> Reach:
        nodes: list[Node] = [self.root]
        index = 0
        while index < len(steps):
            if any(node.free for node in nodes):
                return Reach(True)
            step = steps[index]
            if step == DEEP and not isinstance(step, Key):
                nodes = _descendants(nodes)
                index += 1
                continue
            following = _children(nodes, step)
            if not following:
                return Reach(False, index, tuple(nodes))
            nodes = following
            index += 1
        return Reach(True)

    def closest(self, steps: list[Step], reach: Reach) -> str | None:
        """The seen path most like `steps`, whose step `reach.missing` was not found, or None. Not compared with
        every path (a shape has hundreds, a handler list's page as many warnings): a misspelt step most likely
        meant a name beside it, so with the paths from the few names beside it most like it, as deep as `steps`
        at most (`customer.adress.city`: `customer.address.city`). Looked for once per path, CLOSEST_LOOKUPS times
        at most."""
        path = render(steps)
        if path not in self._closest:
            if self._lookups >= CLOSEST_LOOKUPS:
                return None
            self._lookups += 1
            self._closest[path] = self._closest_to(path, steps, reach)
        return self._closest[path]

    def _closest_to(self, path: str, steps: list[Step], reach: Reach) -> str | None:
        if any(step in (DEEP, ANY) and not isinstance(step, Key) for step in steps[:reach.missing]):
            return None  # (no one place to look beside)
        beside = {key: child for node in reach.parents for key, child in node.children.items()}
        step = steps[reach.missing]
        likely = difflib.get_close_matches(ITEM if isinstance(step, int) else str(step), list(beside), n=3,
                                           cutoff=0.5)
        if ITEM in beside and ITEM not in likely:
            likely.append(ITEM)  # (`items.sku`: `items[*].sku`)
        levels = len(steps) - reach.missing - 1
        candidates = sorted(found for key in likely for found in _paths_below(beside[key], levels))
        guess = difflib.get_close_matches(path, candidates, n=1, cutoff=0.75)
        return guess[0] if guess else None


def _paths_below(node: Node, levels: int) -> list[str]:
    """The stored paths of `node` and of what lies at most `levels` steps below it."""
    found, level = [], [node]
    for _ in range(levels + 1):
        found.extend(each.path for each in level if each.path is not None)
        level = [child for each in level for child in each.children.values()]
    return found


def _children(nodes: list[Node], step: Step) -> list[Node]:
    if isinstance(step, int):  # an index reads an array's item, or an object's key of that text (python-jsonpath)
        return [child for node in nodes for key in (ITEM, str(step)) if (child := node.children.get(key))]
    if step in (ANY, ITEM) and not isinstance(step, Key):  # (asked: a wildcard reads arrays and objects alike)
        return [child for node in nodes for child in node.children.values()]
    return [child for node in nodes if (child := node.children.get(step))]


def _descendants(nodes: list[Node]) -> list[Node]:
    found, stack = [], list(nodes)
    while stack:
        node = stack.pop()
        found.append(node)
        stack.extend(node.children.values())
    return found


def shapes_of(events: set[str] | list[str]) -> dict[str, Shape]:
    """The shapes of these events (one query), by event; an event never sampled has none."""
    return {record.event: Shape(record) for record in EventShape.objects.filter(event__in=set(events))}


# Keeping shapes current ----------------------------------------------------------------------------


@dataclass
class _Seen:
    """What one process knows of one event's shape."""

    sampled_at: float = float("-inf")  # (monotonic)
    written_at: float = float("-inf")
    stored: dict[str, int] = field(default_factory=dict)  # path: last seen, as last written or read
    pending: dict[str, int] = field(default_factory=dict)  # path: last seen, not written yet
    sampled: int = 0  # messages walked since the last write
    overflow: bool = False
    # (the event's consumers take turns here; those of other events do not wait, even while a write waits for
    # the database)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Sampler:
    """Per process: samples the messages each event receives and writes their paths now and then."""

    def __init__(self) -> None:
        self._events: dict[str, _Seen] = {}  # (setdefault and clear are atomic: no lock for the dict itself)

    def reset(self) -> None:
        self._events.clear()

    def observe(self, event: str, messages: list[Message]) -> None:
        """Called once per handled batch. Nearly always returns at once; never raises (shapes are advice, and
        the batch is done already)."""
        seen = self._events.get(event)
        now = time.monotonic()
        if seen is not None and now - seen.sampled_at < settings.SHAPES_SAMPLE_SECONDS:
            return
        try:
            self._sample(event, messages, now)
        except Exception:  # noqa: BLE001 - a defect here must not cost the queue its consumer
            log.exception("%s: could not sample the shape of a message", event)

    def _sample(self, event: str, messages: list[Message], now: float) -> None:
        payload = next((m.payload for m in messages if m.readable and isinstance(m.payload, dict | list)), None)
        seen = self._events.setdefault(event, _Seen())
        with seen.lock:
            seen.sampled_at = now
            if payload is None:
                return
            paths, overflow = paths_of(expand_inline_json(payload))
            stamp, refresh = int(time.time()), settings.SHAPES_REFRESH_SECONDS
            for path in paths:
                if stamp - seen.stored.get(path, -refresh) >= refresh:
                    seen.pending[path] = stamp
            seen.sampled += 1
            seen.overflow = seen.overflow or overflow
            if len(seen.pending) > settings.SHAPES_MAX_PATHS:  # (writes failing, a map keyed by ids growing)
                seen.pending, seen.overflow = _most_recent(seen.pending, settings.SHAPES_MAX_PATHS), True
            if not seen.pending or now - seen.written_at < settings.SHAPES_WRITE_SECONDS:
                return
            seen.written_at = now
            try:
                seen.stored = write(event, seen.pending, seen.sampled, seen.overflow)
            except DatabaseError as exc:
                log.warning("%s: could not write its shape (kept for the next time): %s", event, exc)
                return
            seen.pending, seen.sampled, seen.overflow = {}, 0, False


def write(event: str, seen: dict[str, int], sampled: int, overflow: bool = False) -> dict[str, int]:
    """Merge paths seen (path: Unix time) into the event's shape, dropping stale ones and keeping the most
    recent SHAPES_MAX_PATHS; returns the paths stored. In a transaction of its own (a savepoint inside the
    caller's), on the event's row locked, so that two processes' writes merge."""
    cutoff = int(time.time()) - settings.SHAPES_STALE_DAYS * 86400
    with transaction.atomic():
        record, _ = EventShape.objects.select_for_update().get_or_create(event=event)
        merged = {path: at for path, at in record.paths.items() if at >= cutoff}
        merged.update(seen)
        limit = settings.SHAPES_MAX_PATHS
        # (still full while at the cap: paths were dropped to get there)
        record.full = overflow or len(merged) > limit or (record.full and len(merged) >= limit)
        if len(merged) > limit:
            merged = _most_recent(merged, limit)
        record.paths, record.updated_at = merged, timezone.now()
        record.sampled += sampled
        record.save()
    return merged


def _most_recent(paths: dict[str, int], limit: int) -> dict[str, int]:
    """The `limit` paths seen last (the shorter first among those seen at once)."""
    return dict(sorted(paths.items(), key=lambda item: (-item[1], len(item[0]), item[0]))[:limit])


SAMPLER = Sampler()
