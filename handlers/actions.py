"""The registry of action kinds an event handler can run.

Each kind knows how to check its body at registration and how to execute its (substituted) body
against the workflow engine, so a kind is described in one place.
"""

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workflows.engine import WorkflowEngine
from workflows.errors import InvalidRequest
from workflows.params import substitute, template_problems

from .payload import expand_inline_json

Problems = list[tuple[str, str]]
NO_ACTIONS = "No actions specified. Please specify at-least one action"  # Conductor's text


def is_version(value) -> bool:
    """A start_workflow version: a whole number, or None for the latest."""
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def _is_blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _check_object(body: dict, key: str, problems: Problems) -> None:
    value = body.get(key)
    if value is not None and not isinstance(value, dict):
        problems.append((key, "must be a JSON object"))


def _check_strings(body: dict, keys: tuple[str, ...], problems: Problems) -> None:
    for key in keys:
        if body.get(key) is not None and not isinstance(body[key], str):
            problems.append((key, "must be a string"))


def _check_start_workflow(body: dict) -> Problems:
    problems: Problems = []
    if _is_blank(body.get("name")):
        problems.append(("name", "is required: the name of the workflow definition to start"))
    elif not isinstance(body["name"], str):
        problems.append(("name", "must be a string"))
    version = body.get("version")
    if not is_version(version):
        problems.append(("version", "must be a whole number, or null for the latest version"))
    _check_object(body, "input", problems)
    _check_object(body, "taskToDomain", problems)
    domains = body.get("taskToDomain")
    if isinstance(domains, dict) and not all(isinstance(domain, str) for domain in domains.values()):
        problems.append(("taskToDomain", "must map task names to domain names (strings)"))
    _check_strings(body, ("correlationId", "idempotencyKey"), problems)
    return problems


def _check_task_update(body: dict) -> Problems:
    problems: Problems = []
    has_task_id = not _is_blank(body.get("taskId"))
    has_reference = not _is_blank(body.get("workflowId")) and not _is_blank(body.get("taskRefName"))
    if not (has_task_id or has_reference):
        problems.append(("taskRefName", "a task reference is required: taskId, or workflowId and taskRefName"))
    for key in ("output", "input"):
        _check_object(body, key, problems)
    _check_strings(body, ("workflowId", "taskRefName", "taskId", "reasonForIncompletion"), problems)
    return problems


def _check_terminate(body: dict) -> Problems:
    problems: Problems = []
    if _is_blank(body.get("workflowId")):
        problems.append(("workflowId", "is required: the workflow to terminate"))
    _check_strings(body, ("workflowId", "terminationReason"), problems)
    return problems


def _check_update_variables(body: dict) -> Problems:
    problems: Problems = []
    if _is_blank(body.get("workflowId")):
        problems.append(("workflowId", "is required: the workflow whose variables change"))
    variables = body.get("variables")
    if not isinstance(variables, dict):
        problems.append(("variables", "is required: a JSON object of variables to set"))
    _check_strings(body, ("workflowId",), problems)
    append = body.get("appendArray")
    if append is not None and not isinstance(append, bool):
        problems.append(("appendArray", "must be true or false"))
    return problems


@dataclass(frozen=True)
class ActionContext:
    """Where an action comes from: added to workflow input and task output, and stored as the trigger."""

    message_id: str
    event: str
    execution_id: str
    handler: str

    @property
    def event_keys(self) -> dict:
        # Conductor's flat keys, dots and all.
        return {"conductor.event.messageId": self.message_id, "conductor.event.name": self.event}

    @property
    def trigger(self) -> dict:
        return {"messageId": self.message_id, "event": self.event, "executionId": self.execution_id,
                "handler": self.handler}


@dataclass(frozen=True)
class ActionResult:
    output: dict
    workflow_id: str


def _required_text(body: dict, key: str) -> str:
    value = body.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidRequest(f"{key} resolved to {value!r}: nothing in the message filled it in")
    return str(value)


def _optional_object(body: dict, key: str) -> dict:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f"{key} resolved to {type(value).__name__}, not a JSON object")
    return value


def _resolve_start_workflow(template: Any, payload: Any) -> Any:
    """The body substituted, then Conductor's two rules for a start: a correlationId that resolves to
    nothing keeps its template's text, and an action without taskToDomain takes the payload's."""
    body = substitute(template, payload)
    if not isinstance(template, dict) or not isinstance(body, dict):
        return body
    if body.get("correlationId") is None and isinstance(template.get("correlationId"), str):
        body["correlationId"] = template["correlationId"]
    if template.get("taskToDomain") is None and isinstance(payload, dict) and payload.get("taskToDomain") is not None:
        body["taskToDomain"] = copy.deepcopy(payload["taskToDomain"])  # (the payload's stays as it is)
    return body


def _run_start_workflow(engine: WorkflowEngine, body: dict, context: ActionContext) -> ActionResult:
    version = body.get("version")
    if not is_version(version):
        raise InvalidRequest(f"version resolved to {version!r}, not a whole number")
    workflow_id = engine.start_workflow(
        _required_text(body, "name"),
        version,
        {**_optional_object(body, "input"), **context.event_keys},
        body.get("correlationId"),
        _optional_object(body, "taskToDomain") or None,
        body.get("idempotencyKey"),
        trigger=context.trigger,
        event=context.event,
    )
    return ActionResult({"workflowId": workflow_id}, workflow_id)


def _task_target(body: dict) -> dict:
    if body.get("taskId"):
        return {"task_id": str(body["taskId"])}
    return {"workflow_id": _required_text(body, "workflowId"), "task_ref_name": _required_text(body, "taskRefName")}


TASK_REFERENCE_KEYS = ("workflowId", "taskRefName", "taskId")


def task_output(body: dict, output: dict, context: ActionContext) -> dict:
    """What a complete_task / fail_task action writes to its task, as Conductor writes it: the task's
    reference as the action resolved it (null where it gave none), its output, then the event keys."""
    return {**{key: body.get(key) for key in TASK_REFERENCE_KEYS}, **output, **context.event_keys}


def _run_task_update(method: str) -> Callable[[WorkflowEngine, dict, ActionContext], ActionResult]:
    def run(engine: WorkflowEngine, body: dict, context: ActionContext) -> ActionResult:
        # `input` is accepted as a synonym of `output`: the product's own examples write it so.
        output = task_output(body, {**_optional_object(body, "input"), **_optional_object(body, "output")}, context)
        target = _task_target(body)
        task = getattr(engine, method)(**target, output=output, reason=body.get("reasonForIncompletion"),
                                       trigger=context.trigger)
        return ActionResult({"taskId": task.task_id, "workflowId": task.workflow_id}, task.workflow_id)

    return run


def _run_terminate(engine: WorkflowEngine, body: dict, context: ActionContext) -> ActionResult:
    workflow_id = _required_text(body, "workflowId")
    engine.terminate_workflow(workflow_id, body.get("terminationReason") or f"terminated by {context.handler}")
    return ActionResult({"workflowId": workflow_id}, workflow_id)


def _run_update_variables(engine: WorkflowEngine, body: dict, context: ActionContext) -> ActionResult:
    workflow_id = _required_text(body, "workflowId")
    variables = _optional_object(body, "variables")
    engine.update_variables(workflow_id, variables, bool(body.get("appendArray")))
    return ActionResult({"workflowId": workflow_id, "variables": variables}, workflow_id)


@dataclass(frozen=True)
class ActionKind:
    name: str
    check_body: Callable[[dict], Problems]
    run: Callable[[WorkflowEngine, dict, ActionContext], ActionResult]
    # The body to run (and record) from the action's template and the payload: `${...}` substituted, and
    # whatever else the kind takes from the payload. TemplateError when it cannot be built.
    resolve: Callable[[Any, Any], Any] = substitute

    def execute(self, engine: WorkflowEngine, body: Any, context: ActionContext) -> ActionResult:
        if not isinstance(body, dict):
            raise InvalidRequest(f"the {self.name} body is not a JSON object")
        return self.run(engine, body, context)


class _Reached(Exception):  # noqa: N818 - a signal, not an error
    """The action called its engine: its input passed the action's own checks."""


class _Probe:
    """Stands in for the engine (any of its operations) to see whether an input gets as far as calling it."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            raise _Reached

        return call


def input_problem(kind: ActionKind, body: Any, context: ActionContext) -> str | None:
    """Why `kind` would fail with this resolved body before reaching the engine (exactly the checks
    `execute` makes: the same code runs against a stand-in engine), or None. What the engine itself would
    refuse (no such workflow or task) is not known here."""
    try:
        kind.execute(_Probe(), body, context)  # type: ignore[arg-type] - duck-typed on purpose
    except _Reached:
        return None
    except InvalidRequest as exc:
        return str(exc)
    return None


ACTION_KINDS: dict[str, ActionKind] = {
    kind.name: kind
    for kind in (
        ActionKind("start_workflow", _check_start_workflow, _run_start_workflow, _resolve_start_workflow),
        ActionKind("complete_task", _check_task_update, _run_task_update("complete_task")),
        ActionKind("fail_task", _check_task_update, _run_task_update("fail_task")),
        ActionKind("terminate_workflow", _check_terminate, _run_terminate),
        ActionKind("update_workflow_variables", _check_update_variables, _run_update_variables),
    )
}


def resolve_input(action: dict, payload: Any) -> Any:
    """An action's body as dispatch runs and records it (a shadow handler's too): its kind's `resolve` over the
    payload, with inline JSON expanded when the action asks. TemplateError when it cannot be built."""
    kind = ACTION_KINDS[action.get("action")]
    return kind.resolve(action.get(kind.name), expand_inline_json(payload) if action.get("expandInlineJSON")
                        else payload)


def action_problems(actions) -> Problems:
    """Every problem of a handler's `actions` list, each with its path (`actions[0].start_workflow.name`)."""
    if not isinstance(actions, list):
        return [("actions", "must be a list of actions")]
    if not actions:
        return [("actions", NO_ACTIONS)]
    problems: Problems = []
    for index, action in enumerate(actions):
        problems.extend(_one_action_problems(f"actions[{index}]", action))
    return problems + template_problems(actions, "actions")


def _one_action_problems(path: str, action) -> Problems:
    if not isinstance(action, dict):
        return [(path, "must be a JSON object")]
    kind_name = action.get("action")
    kind = ACTION_KINDS.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        return [(f"{path}.action", f"unknown action {kind_name!r}; valid actions are {', '.join(ACTION_KINDS)}")]
    problems: Problems = []
    expand = action.get("expandInlineJSON")
    if expand is not None and not isinstance(expand, bool):
        problems.append((f"{path}.expandInlineJSON", "must be true or false"))
    body = action.get(kind.name)
    if not isinstance(body, dict):
        problems.append((f"{path}.{kind.name}", f"is required: the body of the {kind.name} action"))
        return problems
    problems.extend((f"{path}.{kind.name}.{key}", message) for key, message in kind.check_body(body))
    return problems
