"""Backtests: what a handler, as saved or as an unsaved draft, would have done with the messages its event
already received, worked out as dispatch works it out, with nothing executed.

Which messages: those stored for the handler's event, so no older than retention still holds, each message
once, as its latest delivery (a redelivery is the same message), leaving out replays (deliveries made by a
person, repeating a message counted already) and bodies that were not JSON (no handler ever saw those). A
time range (`from` inclusive, `to` exclusive, by when the delivery was received), the newest `limit` and the
outcomes to include narrow them. `to` is fixed when the backtest is asked, so messages arriving while it
runs do not move it; without `from` or `limit` it covers BACKTEST_DEFAULT_DAYS before `to`.

Per message: the condition by `conditions.evaluate_batch` on the payload with inline JSON expanded, in the
process's bounded pool of isolates like any other evaluation (a chunk waits CONDITION_ISOLATE_WAIT_SECONDS
for one, else IsolatesBusy), then each action by `dryrun.resolve_action` with the message's id and event,
as dispatch builds it. A message is *matched* (the condition held and every action's input was built),
*skipped* (the condition was not true) or *failed* (the condition failed, or an action's input cannot be
built: dispatch would record that action FAILED and run the others).

A draft of a saved handler is compared with the saved version, re-evaluated over the same messages (not
with the recorded executions, which older revisions may have produced): messages it newly matches, no
longer matches, and matches with different action inputs.

Memory stays flat however many messages are scanned: they are streamed in chunks, and only counts and
BACKTEST_SAMPLES sample messages of each kind are kept. A condition that overran its time limit on several
messages of a chunk (see `conditions.MAX_TIMEOUTS_PER_CONDITION`) is not evaluated again in that backtest:
its later messages fail with that reason instead of costing the time limit each.
"""

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from django.conf import settings
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from eventhub.lib.stopping import stop_requested
from queues.models import ReceivedMessage

from .actions import ActionContext
from .conditions import ConditionResult, evaluate_batch
from .dryrun import ResolvedAction, resolve_action
from .lint import lint
from .models import Backtest, EventHandler
from .payload import expand_inline_json

logger = logging.getLogger(__name__)

CHUNK = 200  # messages read, evaluated (one call into V8 per chunk) and counted at a time
PROGRESS_EVERY_SECONDS = 0.5  # how often a running task writes its progress
TASK = "handlers.tasks.run_backtest"
KINDS = ("matched", "skipped", "failed")
DIFFERENCES = ("newlyMatched", "noLongerMatched", "changedInputs")
GAVE_UP = "the condition was not evaluated: it exceeded its time limit on earlier messages of this backtest"


@dataclass(frozen=True)
class Criteria:
    """Which stored messages a backtest covers."""

    event: str
    end: datetime
    start: datetime | None = None
    limit: int | None = None
    outcomes: tuple[str, ...] = ()

    @classmethod
    def of(cls, event: str, *, start: datetime | None = None, end: datetime | None = None,
           limit: int | None = None, outcomes: tuple[str, ...] | list[str] = ()) -> "Criteria":
        end = end or timezone.now()
        if start is None and limit is None:
            try:
                start = end - timedelta(days=settings.BACKTEST_DEFAULT_DAYS)
            except OverflowError:  # (a `to` in the first days of year 1: everything before it)
                start = None
        return cls(event, end, start, limit, tuple(sorted(set(outcomes))))

    def as_json(self) -> dict:
        return {"event": self.event, "from": self.start.isoformat() if self.start else None,
                "to": self.end.isoformat(), "limit": self.limit, "outcomes": list(self.outcomes)}

    @classmethod
    def from_json(cls, data: dict) -> "Criteria":
        start = parse_datetime(data["from"]) if data.get("from") else None
        return cls(data["event"], parse_datetime(data["to"]), start, data.get("limit"), tuple(data.get("outcomes", ())))


def messages(criteria: Criteria) -> QuerySet:
    """The deliveries a backtest reads, newest first: each message's latest delivery before `to`."""
    later = ReceivedMessage.objects.filter(event=OuterRef("event"), message_id=OuterRef("message_id"),
                                           pk__gt=OuterRef("pk"), received_at__lt=criteria.end)
    selected = ReceivedMessage.objects.filter(event=criteria.event, received_at__lt=criteria.end, replay_reason="",
                                              raw_body="").exclude(Exists(later))
    if criteria.start is not None:
        selected = selected.filter(received_at__gte=criteria.start)
    if criteria.outcomes:
        selected = selected.filter(outcome__in=criteria.outcomes)
    selected = selected.order_by("-received_at", "-pk")
    return selected[:criteria.limit] if criteria.limit else selected


def count(criteria: Criteria) -> int:
    """How many messages a backtest of `criteria` reads (one query)."""
    return messages(criteria).count()


# Scanning --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    pk: int
    message_id: str
    received_at: datetime
    outcome: str
    payload: Any

    def describe(self) -> dict:
        return {"id": self.pk, "messageId": self.message_id, "receivedAt": self.received_at.isoformat(),
                "outcome": self.outcome}


@dataclass(frozen=True)
class Decision:
    """What one version of the handler would do with one message."""

    kind: str  # one of KINDS
    condition: ConditionResult
    actions: list[ResolvedAction] | None = None  # resolved when the condition held

    @property
    def matched(self) -> bool:
        return self.condition.matched


@dataclass
class Version:
    """A handler evaluated by a backtest: the one backtested, or the saved one it is compared with."""

    handler: EventHandler
    gave_up: bool = False  # its condition kept overrunning the time limit: not evaluated again

    @property
    def has_condition(self) -> bool:
        return bool(self.handler.condition and self.handler.condition.strip())


@dataclass
class Tally:
    """Counts by kind, with the first `keep` messages of each kind as samples."""

    kinds: tuple[str, ...]
    keep: int
    counts: dict[str, int] = field(init=False)
    samples: dict[str, list[dict]] = field(init=False)

    def __post_init__(self) -> None:
        self.counts = dict.fromkeys(self.kinds, 0)
        self.samples = {kind: [] for kind in self.kinds}

    def add(self, kind: str, sample: Callable[[], dict]) -> None:
        self.counts[kind] += 1
        if len(self.samples[kind]) < self.keep:
            self.samples[kind].append(sample())  # (built only when kept: most messages are only counted)


class Scan:
    """One backtest's pass over its messages: feed it chunks, read `result()` at any point."""

    def __init__(self, handler: EventHandler, criteria: Criteria, compared: EventHandler | None = None) -> None:
        self.criteria = criteria
        self.versions = [Version(handler)] + ([Version(compared)] if compared is not None else [])
        self.tally = Tally(KINDS, settings.BACKTEST_SAMPLES)
        self.difference = Tally(DIFFERENCES, settings.BACKTEST_SAMPLES) if compared is not None else None
        self.errors = {"condition": 0, "actions": 0}
        self.done = 0
        # The backtested version's paths never seen on its event (`handlers.lint`), as of the start.
        self.warnings = [warning.as_dict() for warning in lint(handler).warnings]

    def run(self, *, wait: float | None, deadline: float | None = None,
            progress: Callable[[int, dict], None] | None = None, stopping: Callable[[], bool] = lambda: False) -> str:
        """Every message of the criteria; returns "" when done, or why it stopped before: the deadline passed,
        or `stopping()` said so (checked between chunks)."""
        reported = time.monotonic()
        for chunk in _chunks(_rows(self.criteria)):
            if deadline is not None and time.monotonic() > deadline:
                return (f"stopped after {settings.BACKTEST_TASK_SECONDS} s (BACKTEST_TASK_SECONDS) with {self.done} "
                        "messages backtested; narrow the time range or give a limit")
            if stopping():
                return f"the task cluster was stopping: stopped with {self.done} messages backtested; run it again"
            self.add(chunk, wait=wait)
            if progress is not None and time.monotonic() - reported >= PROGRESS_EVERY_SECONDS:
                progress(self.done, self.result())
                reported = time.monotonic()
        return ""

    def add(self, rows: list[Row], *, wait: float | None) -> None:
        conditions = self._evaluate([row.payload for row in rows], wait)
        for row, results in zip(rows, conditions, strict=True):
            context = ActionContext(row.message_id, self.criteria.event, "", self.versions[0].handler.name)
            decisions = [self._decide(v.handler, result, row.payload, context)
                         for v, result in zip(self.versions, results, strict=True)]
            self._count(row, decisions, context)
        self.done += len(rows)

    def _evaluate(self, payloads: list, wait: float | None) -> list[list[ConditionResult]]:
        """Each version's condition result for each payload ([payload][version])."""
        asked = [v for v in self.versions if not v.gave_up]
        # (inline JSON is expanded for conditions only, as in dispatch; no condition, no expansion)
        expanded = [expand_inline_json(p) for p in payloads] if any(v.has_condition for v in asked) else payloads
        rows = evaluate_batch([(v.handler.condition, v.handler.evaluator_type) for v in asked], expanded, wait)
        for column, version in enumerate(asked):
            version.gave_up = any(row[column].deferred for row in rows)
        if len(asked) == len(self.versions):
            return rows
        skipped = ConditionResult(False, error=GAVE_UP)
        return [[dict(zip(map(id, asked), row, strict=True)).get(id(v), skipped) for v in self.versions]
                for row in rows]

    @staticmethod
    def _decide(handler: EventHandler, result: ConditionResult, payload: Any, context: ActionContext) -> Decision:
        if result.error or result.deferred:
            return Decision("failed", result)
        if not result.matched:
            return Decision("skipped", result)
        actions = _resolve(handler, payload, context, would_run=True)
        return Decision("failed" if any(a.error for a in actions) else "matched", result, actions)

    def _count(self, row: Row, decisions: list[Decision], context: ActionContext) -> None:
        handler, mine = self.versions[0].handler, decisions[0]
        if mine.condition.error or mine.condition.deferred:
            self.errors["condition"] += 1
        elif mine.kind == "failed":
            self.errors["actions"] += 1
        self.tally.add(mine.kind, lambda: {**row.describe(), **_shown(handler, mine, row.payload, context)})
        if self.difference is None:
            return
        saved, theirs = self.versions[1].handler, decisions[1]
        kind = _difference(mine, theirs)
        if kind:
            self.difference.add(kind, lambda: {**row.describe(), "draft": _shown(handler, mine, row.payload, context),
                                               "saved": _shown(saved, theirs, row.payload, context)})

    def result(self) -> dict:
        """Counts (so far) and samples, as the API shows them."""
        result = {"total": self.done, **self.tally.counts, "conditionErrors": self.errors["condition"],
                  "actionErrors": self.errors["actions"], "samples": self.tally.samples, "difference": None,
                  "warnings": self.warnings}
        if self.difference is not None:
            result["difference"] = {**self.difference.counts, "samples": self.difference.samples}
        return result


def _rows(criteria: Criteria) -> Iterator[Row]:
    columns = ("pk", "message_id", "received_at", "outcome", "payload")
    # Streamed: a server-side cursor on PostgreSQL, fetchmany on SQLite; never the whole selection at once.
    for values in messages(criteria).values_list(*columns).iterator(chunk_size=CHUNK * 5):
        yield Row(*values)


def _chunks(rows: Iterator[Row]) -> Iterator[list[Row]]:
    while chunk := list(islice(rows, CHUNK)):
        yield chunk


def _resolve(handler: EventHandler, payload: Any, context: ActionContext, *, would_run: bool) -> list[ResolvedAction]:
    actions = handler.actions if isinstance(handler.actions, list) else []
    return [resolve_action(action, index, payload, context, would_run=would_run)
            for index, action in enumerate(actions)]


def _shown(handler: EventHandler, decision: Decision, payload: Any, context: ActionContext) -> dict:
    """A version's decision on one message for a sample: the condition, and each action as resolved (also
    when it would not run, to show what it would have been)."""
    result = decision.condition
    actions = decision.actions if decision.actions is not None else _resolve(handler, payload, context, would_run=False)
    return {"condition": {"matched": decision.matched, "value": result.value, "error": result.error or result.deferred},
            "actions": [action.as_dict() for action in actions]}


def _difference(draft: Decision, saved: Decision) -> str | None:
    if draft.matched != saved.matched:
        return "newlyMatched" if draft.matched else "noLongerMatched"
    if draft.matched and _inputs(draft) != _inputs(saved):
        return "changedInputs"
    return None


def _inputs(decision: Decision) -> list[tuple]:
    return [(a.action, a.input, a.error) for a in decision.actions or []]


# Running one -------------------------------------------------------------------------------------


def start(handler: EventHandler, criteria: Criteria, *, draft: bool, compared: EventHandler | None = None,
          user=None) -> tuple[Backtest, bool]:
    """Backtest `handler` (compared with `compared`, a saved version, when given). Up to BACKTEST_INLINE_MAX
    messages it runs here and returns the finished record; beyond, it is saved and handed to a django-q2
    task. Returns the record and whether it went to a task. IsolatesBusy when run here and conditions stay
    busy; nothing is saved then."""
    backtest = Backtest(
        handler_name=handler.name, handler=handler.to_conductor(), draft=draft, criteria=criteria.as_json(),
        compared_to=compared.to_conductor() if compared is not None else None,
        compared_revision=compared.revision if compared is not None else None, expected=count(criteria),
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    if backtest.expected <= settings.BACKTEST_INLINE_MAX:
        scan = Scan(handler, criteria, compared)
        backtest.started_at = timezone.now()
        scan.run(wait=settings.CONDITION_ISOLATE_WAIT_SECONDS)
        backtest.status, backtest.done, backtest.result = Backtest.Status.COMPLETED, scan.done, scan.result()
        backtest.finished_at = timezone.now()
        backtest.save()
        return backtest, False
    backtest.result = Scan(handler, criteria, compared).result()  # the same keys from the start, all zero
    backtest.save()
    _enqueue(backtest)
    backtest.refresh_from_db()  # (django-q2 in sync mode has run it already)
    return backtest, True


def _enqueue(backtest: Backtest) -> None:
    from django_q.tasks import async_task  # noqa: PLC0415 - reads its settings at import

    async_task(TASK, backtest.pk, hook="handlers.tasks.backtest_task_ended", task_name=f"backtest {backtest.pk}")


def run(backtest: Backtest) -> int:
    """Run a scheduled backtest to its end (a task's work); returns the messages backtested. Records FAILED,
    keeping its counts so far, when it overruns BACKTEST_TASK_SECONDS, the cluster is stopping
    (`eventhub.lib.stopping`: a stop does not wait out the backtest) or anything goes wrong."""
    if not backtest.claim():
        return 0  # run already, or running: a redelivered task
    scan = Scan(_handler(backtest.handler), Criteria.from_json(backtest.criteria),
                _handler(backtest.compared_to) if backtest.compared_to is not None else None)
    deadline = time.monotonic() + settings.BACKTEST_TASK_SECONDS
    try:
        error = scan.run(wait=settings.CONDITION_ISOLATE_WAIT_SECONDS, deadline=deadline,
                         progress=backtest.record_progress, stopping=stop_requested)
    except Exception as exc:
        logger.exception("Backtest %s of %s failed", backtest.pk, backtest.handler_name)
        error = f"{type(exc).__name__}: {exc}"
    backtest.finish(scan.done, scan.result(), error)
    logger.info("Backtest %s of %s: %s of %s messages, %s", backtest.pk, backtest.handler_name, scan.done,
                backtest.expected, error or "completed")
    return scan.done


def _handler(data: dict) -> EventHandler:
    handler = EventHandler()
    handler.apply_conductor(data)  # (validated when the backtest was asked)
    return handler


def abandoned(backtest_id: int, why: str) -> bool:
    """Mark a backtest whose task ended without finishing it (killed at the cluster's timeout) FAILED."""
    unfinished = Backtest.objects.filter(pk=backtest_id, status__in=[Backtest.Status.SCHEDULED,
                                                                     Backtest.Status.IN_PROGRESS])
    return bool(unfinished.update(status=Backtest.Status.FAILED, error=why, finished_at=timezone.now()))


def describe(backtest: Backtest) -> dict:
    """A backtest as the API shows it: the same keys whether it is scheduled, running or finished."""
    criteria, result = backtest.criteria, backtest.result or {}
    counts = {key: result.get(key, 0) for key in ("total", *KINDS, "conditionErrors", "actionErrors")}
    return {
        "id": backtest.pk, "status": backtest.status, "handler": backtest.handler_name, "draft": backtest.draft,
        "active": bool(backtest.handler.get("active")), "mode": backtest.handler.get("mode") or "live",
        "comparedToRevision": backtest.compared_revision, "event": criteria["event"], "from": criteria["from"],
        "to": criteria["to"], "limit": criteria["limit"], "outcomes": criteria["outcomes"],
        "progress": {"done": backtest.done, "expected": backtest.expected}, **counts,
        "samples": result.get("samples", {kind: [] for kind in KINDS}), "difference": result.get("difference"),
        "warnings": result.get("warnings", []),
        "error": backtest.error or None, "createdAt": backtest.created_at.isoformat(),
        "startedAt": backtest.started_at.isoformat() if backtest.started_at else None,
        "finishedAt": backtest.finished_at.isoformat() if backtest.finished_at else None,
    }
