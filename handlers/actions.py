"""The registry of action kinds an event handler can run.

Each kind knows how to check its body at registration; execution against the workflow engine is
added to the same registry entries, so a kind is described in one place.
"""

from collections.abc import Callable
from dataclasses import dataclass

Problems = list[tuple[str, str]]


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
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
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
class ActionKind:
    name: str
    check_body: Callable[[dict], Problems]


ACTION_KINDS: dict[str, ActionKind] = {
    kind.name: kind
    for kind in (
        ActionKind("start_workflow", _check_start_workflow),
        ActionKind("complete_task", _check_task_update),
        ActionKind("fail_task", _check_task_update),
        ActionKind("terminate_workflow", _check_terminate),
        ActionKind("update_workflow_variables", _check_update_variables),
    )
}


def action_problems(actions) -> Problems:
    """Every problem of a handler's `actions` list, each with its path (`actions[0].start_workflow.name`)."""
    if not isinstance(actions, list):
        return [("actions", "must be a list of actions")]
    if not actions:
        return [("actions", "at least one action is required")]
    problems: Problems = []
    for index, action in enumerate(actions):
        problems.extend(_one_action_problems(f"actions[{index}]", action))
    return problems


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
