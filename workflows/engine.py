"""The one interface event actions use to act on workflows, and the registry of engines behind it.

`get_engine()` answers the engine `WORKFLOW_ENGINE` chooses: a name of `ENGINES` — the built-in runtime
(`"builtin"`, the default, workflows.builtin) or a remote Conductor server (`"conductor"`, at
`CONDUCTOR_SERVER_URL`, workflows.conductor) — or the dotted path of a `WorkflowEngine` class. Every
engine raises the errors of `workflows.errors`, whose `retryable` says whether a later try can help.

`trigger` (optional) names what moved a workflow or task — e.g. `{"messageId": ..., "executionId":
..., "handler": ...}` — and is stored by the built-in engine so the admin can show it. `event` (optional)
is the event whose handler starts a workflow: Conductor's workflow `event` field.

A task named by `workflow_id` and `task_ref_name` is the most recent task of that reference or of one of
its loop iterations (`ref__2`, see `reference_iteration`): the highest iteration wins, as Conductor's
event actions find it.

An engine declares whether it is `transactional`: its effects are writes in the caller's database
transaction, undone when that is rolled back. Such an engine's effects can commit together with the
caller's own records; a remote one's cannot be undone. `batch()` lets a caller that makes many calls
in one transaction (event dispatch) share its round trips with the engine; every engine has one.
"""

import re
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any, NamedTuple

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model, QuerySet
from django.utils.module_loading import import_string

__all__ = ["ENGINES", "EngineBatch", "UpdatedTask", "WorkflowEngine", "engine_class", "get_engine",
           "reference_iteration"]

# The engines `WORKFLOW_ENGINE` can name, by the dotted path of their class. Listed here only.
ENGINES = {
    "builtin": "workflows.builtin.BuiltinEngine",
    "conductor": "workflows.conductor.ConductorEngine",
}


_LOOP_SUFFIX = re.compile(r"__(\d+)")


def reference_iteration(reference: str, name: str) -> int | None:
    """The loop iteration by which a task's `reference` answers to the reference `name`: 0 for `name`
    itself, n for `name__n` (a DO_WHILE iteration's task), None when it does not answer to it."""
    if reference == name:
        return 0
    suffix = _LOOP_SUFFIX.fullmatch(reference, len(name)) if reference.startswith(name) else None
    return int(suffix.group(1)) if suffix else None


class UpdatedTask(NamedTuple):
    """The task an update reached, and its workflow (known even when the update named only the task)."""

    task_id: str
    workflow_id: str


class EngineBatch:
    """What an engine shares with a caller during `batch()`; this one shares nothing (a remote engine's).

    The caller reads `prefetch()`'s querysets in its own round trip (`fetch_together`) and hands their
    rows back to `prefetched()`, in order; before its block ends it inserts `new_rows()` (groups of
    unsaved instances, one model each, in order) with its own new rows, in one statement."""

    def prefetch(self) -> list[QuerySet]:
        return []

    def prefetched(self, results: list[list[Model]]) -> None:
        """The rows of `prefetch()`'s querysets, one list per queryset."""

    def new_rows(self) -> list[list[Model]]:
        return []


class WorkflowEngine(ABC):
    """The interface. Subclass it, fill in the six operations, and name the class in `WORKFLOW_ENGINE`
    (or in `ENGINES`): nothing outside the engine's module needs to change."""

    transactional: bool = False  # effects join the caller's transaction and are rolled back with it

    @classmethod
    def configuration(cls) -> dict[str, Hashable]:
        """The constructor's keyword arguments, read from the settings; raises ImproperlyConfigured naming
        what is missing or wrong. `get_engine()` keeps one engine per configuration."""
        return {}

    @contextmanager
    def batch(self, *, key: str | None = None, together: bool = False) -> Iterator[EngineBatch]:
        """A block of calls made inside one database transaction of the caller, which promises:

        - any error an engine call raises in the block is followed by rolling back a savepoint (or the
          transaction) that encloses that call, so a transactional engine's calls skip savepoints of
          their own (each costs round trips);
        - with `together`, that rollback encloses the whole block (the caller starts over on any error),
          so the engine may keep new rows in memory: the caller inserts `new_rows()` before the block
          ends (what it leaves is inserted as the block ends normally).

        `key` (an event) names batches that tend to need the same things: an engine may learn what one
        batch read under a key and offer it as the next one's `prefetch()`."""
        yield EngineBatch()

    @abstractmethod
    def start_workflow(self, name: str, version: int | None = None, input: dict | None = None,
                       correlation_id: str | None = None, task_to_domain: dict | None = None,
                       idempotency_key: str | None = None, trigger: dict | None = None,
                       event: str | None = None) -> str:
        ...

    @abstractmethod
    def complete_task(self, *, task_id: str | None = None, workflow_id: str | None = None,
                      task_ref_name: str | None = None, output: dict | None = None, reason: str | None = None,
                      trigger: dict | None = None) -> UpdatedTask:
        ...

    @abstractmethod
    def fail_task(self, *, task_id: str | None = None, workflow_id: str | None = None,
                  task_ref_name: str | None = None, output: dict | None = None, reason: str | None = None,
                  trigger: dict | None = None) -> UpdatedTask:
        ...

    @abstractmethod
    def terminate_workflow(self, workflow_id: str, reason: str | None = None) -> None:
        ...

    @abstractmethod
    def update_variables(self, workflow_id: str, variables: dict, append_array: bool = False) -> None:
        ...

    @abstractmethod
    def get_workflow(self, workflow_id: str, include_tasks: bool = True) -> dict:
        ...


@cache
def engine_class(name: str) -> type[WorkflowEngine]:
    """The engine class a `WORKFLOW_ENGINE` value names: a name of `ENGINES`, or a dotted path."""
    path = ENGINES.get(name, name)
    problem = None if "." in path else "use " + " or ".join(ENGINES) + ", or the dotted path of an engine class"
    if problem is None:
        try:
            found: Any = import_string(path)
        except ImportError as exc:
            problem = f"it cannot be imported ({exc})"
        else:
            if isinstance(found, type) and issubclass(found, WorkflowEngine):
                return found
            problem = "it is not a subclass of workflows.engine.WorkflowEngine"
    raise ImproperlyConfigured(f"WORKFLOW_ENGINE={name!r} is not an engine; {problem}")


_engines: dict[tuple, WorkflowEngine] = {}


def get_engine() -> WorkflowEngine:
    """The engine the settings choose; one instance per configuration (what the engine keeps lives on:
    the remote one's HTTP session, the built-in one's read-ahead)."""
    cls = engine_class(settings.WORKFLOW_ENGINE)
    configuration = cls.configuration()
    key = (cls, tuple(configuration.items()))
    engine = _engines.get(key)
    if engine is None:  # two threads may both make one here: the first kept is everyone's
        engine = _engines.setdefault(key, cls(**configuration))
    return engine
