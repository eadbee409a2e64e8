"""The built-in engine: the embedded runtime (workflows.runtime) behind the engine interface.

It is transactional: its changes are writes in the caller's transaction (savepoints, no commits), so an
event action's effect commits with its record or not at all. Its `batch()` lends the runtime's batching
to a caller that makes many calls in one transaction: the runtime's units skip their nested savepoints,
each definition is read once per batch (and those the last batch of the same key used are read ahead,
in the caller's round trip), and with `together` workflows whose first task waits are started in memory
and inserted by the caller with its own rows, in one statement.
"""

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from itertools import islice

from django.db.models import Model, QuerySet

from . import runtime
from .engine import EngineBatch, UpdatedTask, WorkflowEngine
from .errors import NoSuchWorkflow
from .models import Task, TaskStatus, Workflow
from .runtime import DefinitionKey, RememberedDefinitions


class BuiltinEngine(WorkflowEngine):
    """The embedded runtime; its changes join the caller's transaction (savepoints, no commits)."""

    transactional = True

    def __init__(self) -> None:
        self.read_ahead = ReadAhead()

    @contextmanager
    def batch(self, *, key: str | None = None, together: bool = False) -> Iterator[EngineBatch]:
        """See `WorkflowEngine.batch`: the caller's savepoints stand for the runtime's own."""
        with (runtime.within_callers_savepoint(), runtime.remembering_definitions() as remembered,
              runtime.inserting_together() if together else nullcontext()):
            failed = True
            try:
                yield BuiltinBatch(self.read_ahead.wanted(key), remembered)
                failed = False
            finally:
                self.read_ahead.learn(key, remembered.used, keep_known=failed)

    def start_workflow(self, name, version=None, input=None, correlation_id=None, task_to_domain=None,
                       idempotency_key=None, trigger=None, event=None) -> str:
        return runtime.start_workflow(name, version, input, correlation_id, task_to_domain, idempotency_key,
                                      trigger, event).id

    def complete_task(self, *, task_id=None, workflow_id=None, task_ref_name=None, output=None, reason=None,
                      trigger=None) -> UpdatedTask:
        task = runtime.update_task(TaskStatus.COMPLETED, task_id=task_id, workflow_id=workflow_id,
                                   task_ref_name=task_ref_name, output=output, reason=reason, trigger=trigger,
                                   loop_iterations=True)
        return UpdatedTask(task.id, task.workflow_id)

    def fail_task(self, *, task_id=None, workflow_id=None, task_ref_name=None, output=None, reason=None,
                  trigger=None) -> UpdatedTask:
        task = runtime.update_task(TaskStatus.FAILED, task_id=task_id, workflow_id=workflow_id,
                                   task_ref_name=task_ref_name, output=output, reason=reason, trigger=trigger,
                                   loop_iterations=True)
        return UpdatedTask(task.id, task.workflow_id)

    def terminate_workflow(self, workflow_id: str, reason: str | None = None) -> None:
        runtime.terminate_workflow(workflow_id, reason)

    def update_variables(self, workflow_id: str, variables: dict, append_array: bool = False) -> None:
        runtime.update_variables(workflow_id, variables, append_array)

    def get_workflow(self, workflow_id: str, include_tasks: bool = True) -> dict:
        workflow = Workflow.objects.filter(pk=workflow_id).first()
        if workflow is None:
            raise NoSuchWorkflow(f"No workflow with id {workflow_id!r}.")
        tasks = list(Task.objects.filter(workflow=workflow).order_by("seq")) if include_tasks else None
        return workflow.to_conductor(tasks)


class BuiltinBatch(EngineBatch):
    """One batch of the built-in engine: the definitions to read ahead, and the workflows started in memory."""

    def __init__(self, wanted: frozenset[DefinitionKey], remembered: RememberedDefinitions) -> None:
        self.wanted, self.remembered = wanted, remembered

    def prefetch(self) -> list[QuerySet]:
        return [runtime.definitions_query(set(self.wanted))] if self.wanted else []

    def prefetched(self, results: list[list[Model]]) -> None:
        if self.wanted:
            [definitions] = results
            runtime.remember_definitions(set(self.wanted), definitions)

    def new_rows(self) -> list[list[Model]]:
        return runtime.take_pending()


class ReadAhead:
    """Per key (an event), which workflow definitions its last batch used, to be read with the next batch's
    own reads, in one round trip. Only which ones: a definition itself is read afresh each batch, so a new
    version or a removed definition shows at once. Shared by the threads of a process, bounded in size."""

    MAX_KEYS = 1024  # the least recently used key is forgotten beyond this
    MAX_DEFINITIONS = 32  # per key: a batch using more probably takes names from its messages

    def __init__(self) -> None:
        self._wanted: OrderedDict[str, frozenset[DefinitionKey]] = OrderedDict()
        self._lock = threading.Lock()

    def wanted(self, key: str | None) -> frozenset[DefinitionKey]:
        if key is None:
            return frozenset()
        with self._lock:
            wanted = self._wanted.get(key, frozenset())
            if wanted:
                self._wanted.move_to_end(key)
        return wanted

    def learn(self, key: str | None, used: set[DefinitionKey], *, keep_known: bool = False) -> None:
        """What a batch of `key` used; `keep_known`: it failed before the end, so keep what was known too."""
        if key is None:
            return
        with self._lock:
            if keep_known:
                used = used | self._wanted.get(key, frozenset())
            self._wanted[key] = frozenset(islice(used, self.MAX_DEFINITIONS))
            self._wanted.move_to_end(key)
            while len(self._wanted) > self.MAX_KEYS:
                self._wanted.popitem(last=False)
