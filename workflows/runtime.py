"""The built-in runtime: starting workflows, moving their tasks, and running system tasks inline.

Every public function is one unit of work in `transaction.atomic()`: inside a caller's transaction
it is a savepoint, so an event action can commit its effect together with its audit record.
Nothing here commits behind the caller's back. A caller that already wraps each call in a savepoint of
its own and rolls it back on any error (the built-in engine's `batch()`, see workflows.builtin) says so
with `within_callers_savepoint()`; the units then skip their second, nested savepoint (two round trips
to the database each). Inside `inserting_together()` (a batch of event actions) a workflow whose first
task simply waits is started in memory and inserted with the others in one statement when the block
ends (or by the caller, with its own rows, after `take_pending()`), or earlier, before any other runtime
call reads or writes workflows.

Locking rule: any change to a workflow or one of its tasks first locks the workflow row
(`select_for_update`) and only then reads the task. Two concurrent completions of one task are
therefore serialized; the second sees the task finished and gets TaskAlreadyFinished. SQLite has no
row locks, but its write transactions are serialized anyway (IMMEDIATE mode, see settings).
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from eventhub.lib.bulk import build, insert_many

from . import event_task
from .definitions import parse_duration, parse_until
from .engine import reference_iteration
from .errors import (
    InvalidRequest,
    NoSuchDefinition,
    NoSuchWorkflow,
    TaskAlreadyFinished,
    TaskNotFound,
    WorkflowAlreadyFinished,
)
from .models import (
    FAILED_TASK_STATUSES,
    Task,
    TaskStatus,
    Workflow,
    WorkflowDefinition,
    WorkflowStatus,
)
from .params import substitute

logger = logging.getLogger(__name__)

UPDATE_STATUSES = {
    TaskStatus.IN_PROGRESS,
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
    TaskStatus.FAILED_WITH_TERMINAL_ERROR,
}
# Tasks that wait for the outside world once scheduled; the others run inline.
WAITING_TYPES = {"SIMPLE", "HUMAN", "WAIT"}


DefinitionKey = tuple[str, int | None]  # (name, version); version None: the latest


@dataclass
class RememberedDefinitions:
    """The workflow definitions of one `remembering_definitions()` block: `found` maps a (name, version) to
    the definition `find_definition` answers for it; `used` holds the pairs it was asked for and found."""

    found: dict[DefinitionKey, WorkflowDefinition] = field(default_factory=dict)
    used: set[DefinitionKey] = field(default_factory=set)


_CALLER_SAVEPOINT: ContextVar[bool] = ContextVar("workflows_runtime_caller_savepoint", default=False)
_DEFINITIONS: ContextVar[RememberedDefinitions | None] = ContextVar("workflows_runtime_definitions", default=None)
_PENDING: ContextVar[list | None] = ContextVar("workflows_runtime_pending", default=None)


@contextmanager
def within_callers_savepoint() -> Iterator[None]:
    """Runtime calls made inside this block are wrapped by the caller's own savepoint, which the caller
    rolls back whenever one of them raises: their units of work need no nested savepoint of their own."""
    token = _CALLER_SAVEPOINT.set(True)
    try:
        yield
    finally:
        _CALLER_SAVEPOINT.reset(token)


@contextmanager
def remembering_definitions() -> Iterator[RememberedDefinitions]:
    """Within this block each workflow definition is read once: a batch of events starting the same
    workflow reads it for the first start only. Meant for short blocks (one batch, one transaction)."""
    remembered = RememberedDefinitions()
    token = _DEFINITIONS.set(remembered)
    try:
        yield remembered
    finally:
        _DEFINITIONS.reset(token)


@contextmanager
def inserting_together() -> Iterator[None]:
    """Workflows started in this block whose first task waits (SIMPLE, HUMAN) are inserted together, with
    their first tasks, when it ends. Use it inside one transaction: the rows are written before the
    block is left normally; after an error they are dropped with the rest of the caller's work."""
    pending: list = []
    token = _PENDING.set(pending)
    try:
        yield
        flush_pending()
    finally:
        _PENDING.reset(token)


def take_pending() -> list[list[Workflow] | list[Task]]:
    """The workflows and the tasks started in memory so far (see `inserting_together`), unsaved, in the
    order they are to be inserted; the caller inserts them (with rows of its own, in one statement)."""
    pending = _PENDING.get() or []
    workflows, tasks = [w for w, _ in pending], [t for _, t in pending]
    pending.clear()
    return [workflows, tasks]


def flush_pending() -> None:
    """Insert the workflows and tasks started in memory so far (see `inserting_together`)."""
    insert_many(*take_pending())


def _unit(*, recovers: bool = False) -> transaction.Atomic:
    """One unit of work. `recovers`: the unit catches a database error itself, so it always needs a
    savepoint to roll back to. Workflows started in memory are written first, so the unit sees them."""
    flush_pending()
    return transaction.atomic(savepoint=recovers or not _CALLER_SAVEPOINT.get())


# Starting --------------------------------------------------------------------------------------


def definitions_query(wanted: set[DefinitionKey]) -> QuerySet:
    """The definitions `find_definition` would read for these (name, version) pairs (version None: the
    latest), in one query: a caller that reads them together with other rows hands them to
    `remember_definitions`."""
    match = Q(pk__in=[])
    latest = WorkflowDefinition.objects.filter(name=OuterRef("name")).order_by("-version").values("version")[:1]
    for name, version in wanted:
        match |= Q(name=name, version=version) if version else Q(name=name, version=Subquery(latest))
    return WorkflowDefinition.objects.filter(match).order_by()


def remember_definitions(wanted: set[DefinitionKey], definitions: list[WorkflowDefinition]) -> None:
    """Within `remembering_definitions()`: what `definitions_query(wanted)` found is what `find_definition`
    returns for those pairs (a pair with nothing found is read again, and fails, as it would have)."""
    remembered = _DEFINITIONS.get()
    if remembered is None:
        return
    by_name: dict[str, list[WorkflowDefinition]] = {}
    for definition in definitions:
        by_name.setdefault(definition.name, []).append(definition)
    for name, version in wanted:
        found = [d for d in by_name.get(name, []) if d.version == version] if version else by_name.get(name)
        if found:
            remembered.found[(name, version)] = max(found, key=lambda d: d.version)


def find_definition(name: str, version: int | None) -> WorkflowDefinition:
    remembered = _DEFINITIONS.get()
    if remembered is None:
        return _read_definition(name, version)
    key = (name, version)
    if key not in remembered.found:
        remembered.found[key] = _read_definition(name, version)
    remembered.used.add(key)
    return remembered.found[key]


def _read_definition(name: str, version: int | None) -> WorkflowDefinition:
    definitions = WorkflowDefinition.objects.filter(name=name)
    definition = definitions.filter(version=version).first() if version else definitions.order_by("-version").first()
    if definition is None:
        which = f"version {version}" if version else "any version"
        raise NoSuchDefinition(f"No workflow definition {name!r} ({which}) is registered.")
    return definition


def _check_start(input: Any, correlation_id: Any, task_to_domain: Any, idempotency_key: Any, event: Any) -> None:
    """Refuse what the workflow's and its tasks' columns cannot hold. Caught here, it fails one start;
    caught by PostgreSQL, it would fail the caller's whole transaction (a batch of messages, whose
    new workflows are inserted together), and SQLite would store it without a word."""
    if input is not None and not isinstance(input, dict):
        raise InvalidRequest("The workflow input must be a JSON object.")
    if task_to_domain is not None and not isinstance(task_to_domain, dict):
        raise InvalidRequest("taskToDomain must map task names to domains.")
    _check_length("correlationId", correlation_id, Workflow._meta.get_field("correlation_id").max_length)
    _check_length("idempotencyKey", idempotency_key, Workflow._meta.get_field("idempotency_key").max_length)
    _check_length("event", event, Workflow._meta.get_field("event").max_length)
    for task_name, domain in (task_to_domain or {}).items():
        # None (a ${...} the message did not fill) means no domain; anything else but a name would be
        # stored as its Python text ("5", "{'a': 1}") and polled for under that name.
        label = f"taskToDomain[{task_name!r}]"
        if domain is not None and not isinstance(domain, str):
            raise InvalidRequest(f"{label} is a {type(domain).__name__}, not a domain name (a string).")
        _check_length(label, domain, Task._meta.get_field("domain").max_length)


def _check_length(label: str, value: Any, limit: int) -> None:
    if value is not None and len(str(value)) > limit:
        raise InvalidRequest(f"{label} is {len(str(value))} characters long; at most {limit} are allowed.")


def start_workflow(
    name: str,
    version: int | None = None,
    input: dict | None = None,
    correlation_id: str | None = None,
    task_to_domain: dict | None = None,
    idempotency_key: str | None = None,
    trigger: dict | None = None,
    event: str | None = None,
) -> Workflow:
    """Start a workflow and run it up to its first waiting task. A repeated idempotency key
    returns the workflow that key started, whatever the other arguments. `event`: the event whose
    handler starts it (Conductor's workflow `event`)."""
    _check_start(input, correlation_id, task_to_domain, idempotency_key, event)
    if idempotency_key:
        flush_pending()
        existing = Workflow.objects.filter(idempotency_key=idempotency_key).first()
        if existing:
            return existing
    definition = find_definition(name, version)
    workflow = build(
        Workflow,
        definition=definition,
        name=definition.name,
        version=definition.version,
        definition_snapshot=definition.definition,
        input=input or {},
        correlation_id=correlation_id,
        task_to_domain=task_to_domain or {},
        idempotency_key=idempotency_key or None,
        trigger=trigger,
        event=event or None,
    )
    pending, tasks = _PENDING.get(), workflow.task_definitions()
    if pending is not None and not idempotency_key and tasks and tasks[0].get("type", "SIMPLE") in ("SIMPLE", "HUMAN"):
        # Nothing runs before the first task waits: the two rows can be written later, with others.
        pending.append((workflow, _new_task(workflow, 0, seq=1)))
        logger.debug("Started workflow %s (%s v%s)", workflow.id, workflow.name, workflow.version)
        return workflow
    try:
        with _unit(recovers=bool(idempotency_key)):  # a lost race on the key is caught below
            workflow.save(force_insert=True)
            advance_workflow(workflow, new=True)
    except IntegrityError:
        # Another start with the same key won the race: its workflow is the answer.
        existing = Workflow.objects.filter(idempotency_key=idempotency_key).first() if idempotency_key else None
        if existing is None:
            raise
        return existing
    logger.debug("Started workflow %s (%s v%s)", workflow.id, workflow.name, workflow.version)
    return workflow


# Moving tasks ------------------------------------------------------------------------------------


def locked_workflow(workflow_id: str) -> Workflow:
    workflow = Workflow.objects.select_for_update().filter(pk=workflow_id).first()
    if workflow is None:
        raise NoSuchWorkflow(f"No workflow with id {workflow_id!r}.")
    return workflow


def _locked_task(task_id: str | None, workflow_id: str | None, task_ref_name: str | None,
                 loop_iterations: bool = False) -> tuple[Workflow, Task]:
    """Lock the workflow, then read the task: by id, or the most recent task of a reference name (with
    `loop_iterations`, or of its loop iterations, the highest iteration first: see `reference_iteration`)."""
    if task_id:
        owner = Task.objects.filter(pk=task_id).values_list("workflow_id", flat=True).first()
        if owner is None:
            raise TaskNotFound(f"No task with id {task_id!r}.")
        workflow = locked_workflow(owner)
        return workflow, Task.objects.get(pk=task_id)
    if not workflow_id or not task_ref_name:
        raise InvalidRequest("Name the task by taskId, or by workflowId and taskRefName.")
    workflow = locked_workflow(workflow_id)
    if loop_iterations:
        task = _latest_iteration(workflow, task_ref_name)
    else:
        task = workflow.tasks.filter(reference_task_name=task_ref_name).order_by("-seq").first()
    if task is None:
        raise TaskNotFound(
            f"Workflow {workflow_id} has no task {task_ref_name!r}"
            + (" yet." if workflow.is_running else f" and is {workflow.status}."),
            retryable=workflow.is_running,
        )
    return workflow, task


def _latest_iteration(workflow: Workflow, task_ref_name: str) -> Task | None:
    # (startswith escapes LIKE's `_`: `ref__` matches those two underscores only)
    candidates = workflow.tasks.filter(
        Q(reference_task_name=task_ref_name) | Q(reference_task_name__startswith=f"{task_ref_name}__"))
    ranked = [(iteration, task.seq, task) for task in candidates
              if (iteration := reference_iteration(task.reference_task_name, task_ref_name)) is not None]
    return max(ranked, key=lambda rank: rank[:2])[2] if ranked else None


def update_task(
    status: str,
    *,
    task_id: str | None = None,
    workflow_id: str | None = None,
    task_ref_name: str | None = None,
    output: dict | None = None,
    reason: str | None = None,
    worker_id: str | None = None,
    trigger: dict | None = None,
    loop_iterations: bool = False,
) -> Task:
    """Record a task's result (output merged over what it has) and move its workflow on.

    `loop_iterations`: a reference name also finds its loop iterations' tasks (`ref__2`), the highest
    first, as Conductor's event actions do; its task API matches the name exactly."""
    if status not in UPDATE_STATUSES:
        raise InvalidRequest(f"Task status {status!r} is not one of {', '.join(sorted(UPDATE_STATUSES))}.")
    if output is not None and not isinstance(output, dict):
        raise InvalidRequest("A task's output must be a JSON object.")
    with _unit():
        workflow, task = _locked_task(task_id, workflow_id, task_ref_name, loop_iterations)
        if not task.is_active:
            raise TaskAlreadyFinished(
                f"Task {task.reference_task_name} ({task.id}) is already {task.status}; it was not changed."
            )
        task.output = {**task.output, **(output or {})}
        task.worker_id = worker_id or task.worker_id
        task.trigger = trigger or task.trigger
        task.started_at = task.started_at or timezone.now()
        if status == TaskStatus.IN_PROGRESS:
            task.status = TaskStatus.IN_PROGRESS
            task.save()
            return task
        _finish_task(task, status, reason)
        advance_workflow(workflow)
    return task


def _finish_task(task: Task, status: str, reason: str | None = None) -> None:
    task.status = status
    task.reason_for_incompletion = reason if status != TaskStatus.COMPLETED else task.reason_for_incompletion
    task.ended_at = timezone.now()
    task.save()


def terminate_workflow(workflow_id: str, reason: str | None = None) -> Workflow:
    with _unit():
        workflow = locked_workflow(workflow_id)
        if not workflow.is_running:
            raise WorkflowAlreadyFinished(f"Workflow {workflow_id} is already {workflow.status}.")
        _end_workflow(workflow, WorkflowStatus.TERMINATED, reason)
    logger.info("Terminated workflow %s: %s", workflow_id, reason)
    return workflow


def update_variables(workflow_id: str, variables: dict, append_array: bool = False) -> Workflow:
    """Set workflow variables; with `append_array`, list values extend the lists already there."""
    if not isinstance(variables, dict):
        raise InvalidRequest("variables must be a JSON object.")
    with _unit():
        workflow = locked_workflow(workflow_id)
        merged = dict(workflow.variables)
        for key, value in variables.items():
            if append_array and isinstance(value, list) and isinstance(merged.get(key), list):
                merged[key] = merged[key] + value
            else:
                merged[key] = value
        workflow.variables = merged
        workflow.save(update_fields=["variables", "updated_at"])
    return workflow


# Polling by workers ------------------------------------------------------------------------------


def poll_tasks(task_type: str, worker_id: str | None = None, domain: str | None = None, count: int = 1) -> list[Task]:
    """Claim up to `count` scheduled SIMPLE tasks of a type for a worker.

    Each claim is a conditional UPDATE whose row count is checked, so two workers polling at
    once never both get the same task.
    """
    claimed: list[Task] = []
    candidates = Task.objects.filter(
        task_type="SIMPLE", task_def_name=task_type, status=TaskStatus.SCHEDULED, domain=domain or None,
        workflow__status=WorkflowStatus.RUNNING,
    ).order_by("scheduled_at", "seq")
    for task_id in candidates.values_list("pk", flat=True)[: max(count, 1) * 4]:
        won = Task.objects.filter(pk=task_id, status=TaskStatus.SCHEDULED).update(
            status=TaskStatus.IN_PROGRESS, worker_id=worker_id, started_at=timezone.now(),
            poll_count=F("poll_count") + 1, updated_at=timezone.now(),
        )
        if won:
            claimed.append(Task.objects.select_related("workflow").get(pk=task_id))
        if len(claimed) >= count:
            break
    return claimed


# WAIT tasks with a duration --------------------------------------------------------------------


def complete_due_waits(now=None, limit: int = 500) -> int:
    """Complete WAIT tasks whose time has come; returns how many. Run by the django-q2 sweep."""
    now = now or timezone.now()
    due = Task.objects.filter(
        task_type="WAIT", status=TaskStatus.IN_PROGRESS, wait_until__lte=now
    ).values_list("pk", flat=True)[:limit]
    done = 0
    for task_id in list(due):
        try:
            update_task(TaskStatus.COMPLETED, task_id=task_id)
            done += 1
        except TaskAlreadyFinished:
            continue  # Completed from outside meanwhile: nothing left to do.
    return done


# Advancing a workflow --------------------------------------------------------------------------


def advance_workflow(workflow: Workflow, *, new: bool = False) -> None:
    """Move a (locked) running workflow on until it waits for the outside world or ends.

    `new`: the workflow was just created and has no tasks, so there is nothing to read yet."""
    fresh = new
    while workflow.is_running:
        last = None if fresh else workflow.tasks.order_by("-seq").first()
        fresh = False
        if last is not None and last.is_active:
            return
        if last is not None and last.status in FAILED_TASK_STATUSES:
            _end_workflow(workflow, WorkflowStatus.FAILED, last.reason_for_incompletion or
                          f"Task {last.reference_task_name} failed.")
            return
        position = 0 if last is None else last.position + 1
        if position >= len(workflow.task_definitions()):
            _end_workflow(workflow, WorkflowStatus.COMPLETED, None)
            return
        task = _schedule(workflow, position, seq=(last.seq + 1) if last else 1)
        if task.task_type in WAITING_TYPES and task.is_active:
            # Scheduling a waiting task ran nothing that could change it: no need to read it back.
            return


def task_context(workflow: Workflow, tasks: list[Task] | None = None) -> dict[str, Any]:
    """What `${...}` in a task's inputParameters can name."""
    context: dict[str, Any] = {
        "workflow": {
            "input": workflow.input,
            "variables": workflow.variables,
            "output": workflow.output,
            "workflowId": workflow.id,
            "workflowType": workflow.name,
            "version": workflow.version,
            "correlationId": workflow.correlation_id,
            "status": workflow.status,
        }
    }
    for task in workflow.tasks.order_by("seq") if tasks is None else tasks:
        context[task.reference_task_name] = {
            "input": task.input, "output": task.output, "status": task.status, "taskId": task.id,
            "reasonForIncompletion": task.reason_for_incompletion,
        }
    return context


def _schedule(workflow: Workflow, position: int, seq: int) -> Task:
    task = _new_task(workflow, position, seq)
    task.save()
    spec = workflow.task_definitions()[position]
    SYSTEM_TASKS.get(task.task_type, _wait_for_outside)(workflow, task, spec)
    return task


def _new_task(workflow: Workflow, position: int, seq: int) -> Task:
    """The task at `position`, as scheduled, not saved yet."""
    spec = workflow.task_definitions()[position]
    task_type = spec.get("type", "SIMPLE")
    parameters = spec.get("inputParameters") or {}
    if task_type == "EVENT":  # Conductor's EVENT task carries these in its input (and so in its message)
        parameters = {**parameters, "sink": spec.get("sink"), "asyncComplete": spec.get("asyncComplete") or False}
    task = build(
        Task, workflow=workflow, seq=seq, position=position, task_type=task_type,
        task_def_name=spec.get("name", task_type), reference_task_name=spec["taskReferenceName"],
        # The first task (seq 1) has no earlier tasks to read.
        input=substitute(parameters, task_context(workflow, [] if seq == 1 else None)),
        domain=_domain_of(workflow, spec.get("name", "")),
    )
    if task_type != "SIMPLE":
        task.status = TaskStatus.IN_PROGRESS
        task.started_at = timezone.now()
    return task


def _domain_of(workflow: Workflow, task_name: str) -> str | None:
    domains = workflow.task_to_domain or {}
    return domains.get(task_name) or domains.get("*") or None


def _wait_for_outside(workflow: Workflow, task: Task, spec: dict) -> None:
    """SIMPLE and HUMAN tasks wait to be polled or updated; nothing to run here."""


def _run_wait(workflow: Workflow, task: Task, spec: dict) -> None:
    try:
        if task.input.get("duration") is not None:
            task.wait_until = task.scheduled_at + parse_duration(task.input["duration"])
        elif task.input.get("until") is not None:
            task.wait_until = parse_until(task.input["until"])
    except ValueError as exc:
        _finish_task(task, TaskStatus.FAILED_WITH_TERMINAL_ERROR, str(exc))
        return
    if task.wait_until and task.wait_until <= timezone.now():
        _finish_task(task, TaskStatus.COMPLETED)
    else:
        task.save(update_fields=["wait_until", "updated_at"])


def _run_set_variable(workflow: Workflow, task: Task, spec: dict) -> None:
    workflow.variables = {**workflow.variables, **task.input}
    workflow.save(update_fields=["variables", "updated_at"])
    _finish_task(task, TaskStatus.COMPLETED)


def _run_terminate(workflow: Workflow, task: Task, spec: dict) -> None:
    status = task.input.get("terminationStatus") or WorkflowStatus.COMPLETED
    if status not in (WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.TERMINATED):
        _finish_task(task, TaskStatus.FAILED_WITH_TERMINAL_ERROR, f"terminationStatus {status!r} is not valid.")
        return
    task.output = {"output": task.input.get("workflowOutput") or {}}
    _finish_task(task, TaskStatus.COMPLETED)
    output = task.input.get("workflowOutput")
    _end_workflow(workflow, status, task.input.get("terminationReason"),
                  output=output if isinstance(output, dict) else None)


def _run_event(workflow: Workflow, task: Task, spec: dict) -> None:
    try:
        event = event_task.resolve_sink(spec.get("sink", ""), workflow.name, task.reference_task_name,
                                        task_context(workflow))
        event_task.check_sink(event)
    except event_task.UnknownSink as exc:
        _finish_task(task, TaskStatus.FAILED, str(exc))  # (Conductor's status for a sink it cannot use)
        return
    output = event_task.event_output(
        task.input, workflow_id=workflow.id, workflow_name=workflow.name, workflow_version=workflow.version,
        correlation_id=workflow.correlation_id, task_to_domain=workflow.task_to_domain, event=event,
    )
    try:
        # The outbox row commits with this task's state change (the caller's transaction); a savepoint,
        # so that a failed write fails the task without spoiling that transaction.
        with transaction.atomic():
            event_task.publish_event(event, event_task.event_payload(output), message_id=task.id)
    except Exception as exc:  # noqa: BLE001 - any hand-over failure fails the task, with its reason.
        logger.warning("EVENT task %s could not publish to %s: %s", task.id, event, exc)
        _finish_task(task, TaskStatus.FAILED, f"Publishing to {event} failed: {exc}")
        return
    task.output = {**task.output, **output}
    # Completed once handed over (committed to the outbox), not once a broker has it: the relay
    # guarantees that part. asyncComplete waits for a handler or the API instead.
    if task.input.get("asyncComplete") is True:
        task.save(update_fields=["output", "updated_at"])
    else:
        _finish_task(task, TaskStatus.COMPLETED)


SYSTEM_TASKS = {
    "WAIT": _run_wait,
    "SET_VARIABLE": _run_set_variable,
    "TERMINATE": _run_terminate,
    "EVENT": _run_event,
}


def _end_workflow(workflow: Workflow, status: str, reason: str | None, output: dict | None = None) -> None:
    if status == WorkflowStatus.COMPLETED and output is None:
        output = _workflow_output(workflow)
    workflow.status = status
    workflow.reason_for_incompletion = reason
    workflow.output = output if output is not None else workflow.output
    workflow.ended_at = timezone.now()
    workflow.save()
    # Whatever still waits will never run now.
    workflow.tasks.filter(status__in=[TaskStatus.SCHEDULED, TaskStatus.IN_PROGRESS]).update(
        status=TaskStatus.CANCELED, ended_at=timezone.now(), updated_at=timezone.now()
    )


def _workflow_output(workflow: Workflow) -> dict:
    """The definition's outputParameters resolved; without them, the last task's output (Conductor's rule)."""
    parameters = workflow.definition_snapshot.get("outputParameters")
    if parameters:
        return substitute(parameters, task_context(workflow))
    last = workflow.tasks.order_by("-seq").first()
    return dict(last.output) if last else {}
