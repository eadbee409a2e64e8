"""Dry-run: what a handler would do with a sample payload, computed exactly as dispatch does, with
nothing executed and nothing written.

The condition goes through `conditions.evaluate` on the payload with inline JSON expanded; each action
is resolved like `dispatch._run_action` does (its kind's `resolve`), and gets what the action kind adds
when it runs: the `conductor.event.*` keys in the workflow input of start_workflow, and the output a
complete_task / fail_task writes (the task's reference, the output, the event keys).

Its warnings: the handler's lint (paths never seen on its event, `handlers.lint`), every `${...}` that
resolved to nothing for this payload, and every action whose input would fail as it is (`actions.input_problem`:
the checks an action makes before it calls the engine). The payload may be one of the event's recent stored
messages (`recent_messages`, `stored_message`): real traffic, the latest by default.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from queues.models import ReceivedMessage
from workflows.params import TemplateError, substitute, template_strings, unresolved

from .actions import ACTION_KINDS, ActionContext, input_problem, resolve_input, task_output
from .conditions import ConditionResult, evaluate
from .lint import UNRESOLVED, WOULD_FAIL, LintWarning, lint
from .models import EventHandler
from .payload import expand_inline_json

DRY_RUN_MESSAGE_ID = "dry-run"
RECENT_MESSAGES = 20  # offered to pick a payload from
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
    problem: str | None = None  # why the built input would fail when run (`actions.input_problem`)

    def as_dict(self) -> dict:
        """As the API shows it (a warning tells the problem)."""
        shown = asdict(self)
        del shown["problem"]
        return shown


@dataclass(frozen=True)
class DryRun:
    handler: str
    event: str
    active: bool
    mode: str  # live, or shadow: it would record what it matched as SHADOW and run nothing
    condition: str | None
    evaluatorType: str | None  # noqa: N815
    matched: bool
    value: str
    error: str | None
    actions: list[ResolvedAction]
    warnings: list[dict] = field(default_factory=list)  # LintWarning.as_dict()
    sample: dict | None = None  # the stored message whose payload this was: {"id", "messageId", "receivedAt"}
    pathsUnchecked: str | None = None  # noqa: N815 - why its paths were not checked against its event's shape

    def as_dict(self) -> dict:
        shown = asdict(self)
        shown["actions"] = [action.as_dict() for action in self.actions]
        return shown


def dry_run(handler: EventHandler, payload: Any, *, message_id: str = DRY_RUN_MESSAGE_ID,
            sample: ReceivedMessage | None = None) -> DryRun:
    """The condition's result, each action's resolved input for `payload` and the warnings; runs nothing.
    `sample`: the stored message `payload` comes from, if it does."""
    # Evaluated in the web process: it waits a bounded time for one of the process's few isolates
    # (IsolatesBusy after that), so concurrent dry-runs cannot multiply the condition memory limit.
    result: ConditionResult = evaluate(handler.condition, handler.evaluator_type, expand_inline_json(payload),
                                       wait=settings.CONDITION_ISOLATE_WAIT_SECONDS)
    context = ActionContext(message_id, handler.event, "", handler.name)
    actions = [
        resolve_action(action, index, payload, context, would_run=result.matched)
        for index, action in enumerate(handler.actions if isinstance(handler.actions, list) else [])
    ]
    report = lint(handler)
    warnings = report.warnings + payload_warnings(handler, payload, actions)
    return DryRun(
        handler=handler.name, event=handler.event, active=handler.active, mode=handler.mode,
        condition=handler.condition,
        evaluatorType=handler.evaluator_type, matched=result.matched, value=result.value, error=result.error,
        actions=actions, warnings=[w.as_dict() for w in warnings],
        sample={"id": sample.pk, "messageId": sample.message_id, "receivedAt": sample.received_at.isoformat()}
        if sample is not None else None, pathsUnchecked=report.note or None,
    )


def payload_warnings(handler: EventHandler, payload: Any, resolved: list[ResolvedAction]) -> list[LintWarning]:
    """Every `${...}` of the actions that resolves to nothing for `payload`, and every action that would fail."""
    warnings = []
    actions = handler.actions if isinstance(handler.actions, list) else []
    for action, outcome in zip(actions, resolved, strict=True):
        source = expand_inline_json(payload) if outcome.expandInlineJSON else payload
        body = action.get(outcome.action) if isinstance(action, dict) else None
        for where, text in template_strings(body, f"actions[{outcome.index}].{outcome.action}"):
            warnings.extend(LintWarning(UNRESOLVED, where, placeholder,
                                        f"{where}: {placeholder} resolved to nothing for this payload")
                            for placeholder in unresolved(text, source))
        failure = outcome.error or outcome.problem
        if failure:
            where = f"actions[{outcome.index}]"
            warnings.append(LintWarning(WOULD_FAIL, where, outcome.action,
                                        f"{where} {outcome.action} would fail for this payload: {failure}"))
    return warnings


def recent_messages(event: str, limit: int = RECENT_MESSAGES) -> QuerySet:
    """The event's latest stored messages that handlers saw (JSON bodies, not replays), newest first, without
    their payloads (read the one picked with `stored_message`)."""
    return (ReceivedMessage.objects.filter(event=event, raw_body="", replay_reason="")
            .order_by("-received_at", "-pk").defer("payload", "detail")[:limit])


def stored_message(event: str, pk: int | None = None) -> ReceivedMessage | None:
    """A stored message of the event to dry-run with: the one of id `pk`, or the latest; None if none."""
    messages = ReceivedMessage.objects.filter(event=event, raw_body="", replay_reason="")
    if pk is not None:
        return messages.filter(pk=pk).first()
    return messages.order_by("-received_at", "-pk").first()


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
    problem = input_problem(kind, body, context) if kind else None  # (reads the body only)
    target = EVENT_KEYS_GO_TO.get(kind_name) if kind else None
    if target == "input" and isinstance(body, dict):
        body["input"] = {**_as_dict(body.get("input")), **context.event_keys}
    elif target == "output" and isinstance(body, dict):
        # Task actions accept `input` as a synonym of `output` and merge them, as they do when run.
        output = {**_as_dict(body.pop("input", None)), **_as_dict(body.get("output"))}
        body["output"] = task_output(body, output, context)
    return ResolvedAction(index, kind_name, expand, body, would_run, problem=problem)


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}
