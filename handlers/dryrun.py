"""Dry-run: what a handler would do with a sample payload, computed exactly as dispatch does, with
nothing executed and nothing written.

The condition goes through `conditions.evaluate` on the payload with inline JSON expanded; each action
is resolved like `dispatch._run_action` does (its kind's `resolve`), and gets what the action kind adds
when it runs: the `conductor.event.*` keys in the workflow input of start_workflow, and the output a
complete_task / fail_task writes (the task's reference, the output, the event keys).
"""

from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings

from workflows.params import TemplateError, substitute

from .actions import ACTION_KINDS, ActionContext, resolve_input, task_output
from .conditions import ConditionResult, evaluate
from .models import EventHandler
from .payload import expand_inline_json

DRY_RUN_MESSAGE_ID = "dry-run"
# Where each action kind adds the event keys when it runs (see handlers.actions).
EVENT_KEYS_GO_TO = {"start_workflow": "input", "complete_task": "output", "fail_task": "output"}


@dataclass(frozen=True)
class ResolvedAction:
    index: int
    action: str
    expandInlineJSON: bool  # noqa: N815 - Conductor's name, as the API returns it
    input: Any
    wouldRun: bool  # noqa: N815
    error: str | None = None  # why the input could not be built (the action would be a FAILED record)


@dataclass(frozen=True)
class DryRun:
    handler: str
    event: str
    active: bool
    condition: str | None
    evaluatorType: str | None  # noqa: N815
    matched: bool
    value: str
    error: str | None
    actions: list[ResolvedAction]

    def as_dict(self) -> dict:
        return asdict(self)


def dry_run(handler: EventHandler, payload: Any, *, message_id: str = DRY_RUN_MESSAGE_ID) -> DryRun:
    """The condition's result and each action's resolved input for `payload`; runs nothing."""
    # Evaluated in the web process: it waits a bounded time for one of the process's few isolates
    # (IsolatesBusy after that), so concurrent dry-runs cannot multiply the condition memory limit.
    result: ConditionResult = evaluate(handler.condition, handler.evaluator_type, expand_inline_json(payload),
                                       wait=settings.CONDITION_ISOLATE_WAIT_SECONDS)
    context = ActionContext(message_id, handler.event, "", handler.name)
    actions = [
        resolve_action(action, index, payload, context, would_run=result.matched)
        for index, action in enumerate(handler.actions if isinstance(handler.actions, list) else [])
    ]
    return DryRun(
        handler=handler.name, event=handler.event, active=handler.active, condition=handler.condition,
        evaluatorType=handler.evaluator_type, matched=result.matched, value=result.value, error=result.error,
        actions=actions,
    )


def resolve_action(
    action: dict, index: int, payload: Any, context: ActionContext, *, would_run: bool
) -> ResolvedAction:
    kind_name = action.get("action", "")
    kind = ACTION_KINDS.get(kind_name) if isinstance(kind_name, str) else None
    expand = bool(action.get("expandInlineJSON"))
    try:
        # (a fresh copy: the handler's stays as it is)
        body = resolve_input(action, payload) if kind else substitute(
            action.get(kind_name), expand_inline_json(payload) if expand else payload)
    except TemplateError as exc:
        return ResolvedAction(index, kind_name, expand, None, would_run, f"its input could not be built: {exc}")
    target = EVENT_KEYS_GO_TO.get(kind_name) if kind else None
    if target == "input" and isinstance(body, dict):
        body["input"] = {**_as_dict(body.get("input")), **context.event_keys}
    elif target == "output" and isinstance(body, dict):
        # Task actions accept `input` as a synonym of `output` and merge them, as they do when run.
        output = {**_as_dict(body.pop("input", None)), **_as_dict(body.get("output"))}
        body["output"] = task_output(body, output, context)
    return ResolvedAction(index, kind_name, expand, body, would_run)


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}
