"""The one entry point from queues into handlers: a batch of messages in, one decision per message out.

The listener and the django-q2 drain task hand every readable batch here and act on the decisions
once this has returned: its work is committed by then, so a message is acknowledged only after its
records (and, with the built-in engine, its actions' effects) are in the database.

For each message: every active handler of the queue's event is matched, its condition evaluated
against the payload (inline JSON expanded), and each action of a matching handler substituted and
executed through the workflow engine. One ActionExecution records each action, or the handler when its
condition was false or failed. A handler in shadow mode is decided the same way and runs nothing: its records
have status SHADOW (each action's resolved input, or why it or the condition failed) and it never counts as a
match, so a message's fate is the live handlers' alone (`_shadow`).

Exactly once: the batch is one transaction holding every action's effect and its record, so a crash
anywhere rolls back both and the redelivered message runs again from a clean slate. The batch first
claims its messages (`eventhub.lib.locks`, until it commits): a second consumer holding a copy of one,
even on its first delivery, waits for the first and then finds its records, and records a duplicate. A failed action
leaves no partial effect behind: with a transactional engine (the built-in one: database writes only)
the batch's actions first run together in the batch's transaction, and if any of them raises, that
transaction is rolled back and the batch runs again with each action in its own savepoint, where a
failure undoes that action only; other engines (a remote Conductor, whose calls cannot be undone) always
run the per-action way. The batch runs inside the engine's `batch()`, whose contract these keep (the
engine may skip savepoints of its own), and which shares the batch's round trips: what the engine reads
ahead comes with the handlers, what it started in memory goes in with the records. The batch's records
(the messages, with what became of them, and the executions) are written together at its end, in the
same transaction. A redelivery after commit finds the final records and runs nothing twice; it records
the suppressed duplicate instead, pointing at the original.
"""

import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

from django.db import DatabaseError, transaction
from django.db.models import F
from django.utils import timezone

from eventhub.lib import metrics
from eventhub.lib.bulk import Query, build, fetch_together, insert_many
from eventhub.lib.locks import lock_statement
from queues import records as message_records
from queues.models import QueueConfig, ReceivedMessage, stored_message_id
from queues.providers.base import Message
from queues.quarantine import retried_messages
from workflows.engine import EngineBatch, WorkflowEngine, get_engine
from workflows.errors import EngineError, TaskAlreadyFinished
from workflows.params import TemplateError

from .actions import ACTION_KINDS, ActionContext, ActionKind, resolve_input
from .changes import handlers_lock
from .conditions import ConditionResult, evaluate_batch
from .models import HANDLER_LEVEL, ActionExecution, EventHandler, ExecutionStatus, HandlerRevision
from .payload import expand_inline_json

logger = logging.getLogger(__name__)
Status = ExecutionStatus


@dataclass(frozen=True)
class Decision:
    """What to do with one delivered message once dispatch has committed its work, and its record."""

    action: Literal["ack", "nack", "quarantine"]
    reason: str = ""
    record: ReceivedMessage | None = None


@dataclass
class Delivery:
    """One message on its way through dispatch, with what became of it."""

    message: Message
    record: ReceivedMessage
    matched: int = 0
    transient: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)

    @property
    def message_id(self) -> str:
        return self.record.message_id


@dataclass
class Batch:
    config: QueueConfig
    engine: WorkflowEngine
    handlers: list[EventHandler]
    revisions: dict[int, HandlerRevision]  # by handler id
    prior: dict[tuple[str, str, int], ActionExecution]
    done_before: dict[tuple[str, str, int], list[ActionExecution]]  # a quarantine retry's: see _completed_before...
    together: bool = False  # actions share the batch's transaction; any error starts the batch over
    new: list[ActionExecution] = field(default_factory=list)  # inserted together before the batch commits
    changed: list[ActionExecution] = field(default_factory=list)  # earlier records run again (retries)
    kept: set[int] = field(default_factory=set)  # id() of all of the above

    def keep(self, execution: ActionExecution) -> None:
        """Remember an execution record; all of them are written when the batch's actions are done."""
        if id(execution) not in self.kept:  # (the same object comes back as a retry finishes)
            self.kept.add(id(execution))
            (self.new if execution.pk is None else self.changed).append(execution)
        if execution.duplicate_of is None:
            # Two copies of one message can arrive in one batch (a redelivery, a republished outbox row):
            # the second must find this record as its original, not run again and clash with it.
            self.prior[(execution.message_id, execution.handler_name, execution.index)] = execution

    def new_executions(self) -> tuple[list[ActionExecution], list[ActionExecution]]:
        """Originals first: a duplicate in the same batch refers to one, which needs its id by then."""
        return ([e for e in self.new if e.duplicate_of is None], [e for e in self.new if e.duplicate_of is not None])


def dispatch_batch(config: QueueConfig, messages: list[Message], *, engine: WorkflowEngine | None = None,
                   records: list[ReceivedMessage] | None = None,
                   acknowledge: Callable[[list[Message]], None] | None = None) -> list[Decision]:
    """One decision per message, in order, each with the message's record (every message is recorded).

    `acknowledge` (a database queue's): called inside the batch's transaction with the messages decided
    ack, whose records then say ACKNOWLEDGED: the acknowledgement commits with the work, or neither does.
    Without it, the caller acknowledges after this has returned (a broker's messages)."""
    engine = engine or get_engine()
    payloads = [expand_inline_json(message.payload) for message in messages]
    if engine.transactional:
        try:
            return _dispatch(config, messages, payloads, engine, records, acknowledge, together=True)
        except _StartOver:
            pass  # everything the batch did is rolled back: run its actions again, one savepoint each
    return _dispatch(config, messages, payloads, engine, records, acknowledge, together=False)


def _dispatch(config: QueueConfig, messages: list[Message], payloads: list, engine: WorkflowEngine,
              records: list[ReceivedMessage] | None, acknowledge: Callable[[list[Message]], None] | None, *,
              together: bool) -> list[Decision]:
    with transaction.atomic(), engine.batch(key=config.event, together=together) as unit:
        new_records = records is None
        records = records or [message_records.build(config, message) for message in messages]
        deliveries = [Delivery(message, record) for message, record in zip(messages, records, strict=True)]
        batch = _prepare(config, engine, unit, [d.message_id for d in deliveries])
        batch.together = together
        evaluating = time.monotonic()
        conditions = evaluate_batch([(h.condition, h.evaluator_type) for h in batch.handlers], payloads)
        evaluated = time.monotonic() - evaluating
        _run_all(batch, deliveries, conditions)
        decisions = [_decide(config, delivery) for delivery in deliveries]
        _close_abandoned(batch, deliveries, decisions)
        if acknowledge is not None:  # the records say so as they are inserted, with the acknowledgement
            message_records.acknowledged([d.record for d in decisions if d.action == "ack"])
        # The batch's new rows (workflows started together, the messages with their details, the
        # executions) in one statement.
        insert_many(*unit.new_rows(), records if new_records else [], *batch.new_executions())
        if not new_records:
            _save_details(deliveries)
        for execution in batch.changed:
            execution.save()
        if acknowledge is not None:
            acknowledge([m for m, d in zip(messages, decisions, strict=True) if d.action == "ack"])
    if metrics.enabled():  # (committed)
        _observe(config, batch, len(messages) * sum(bool(h.condition and h.condition.strip()) for h in batch.handlers),
                 evaluated)
    return decisions


def _observe(config: QueueConfig, batch: Batch, evaluations: int, seconds: float) -> None:
    metrics.count_by(metrics.executions, [(e.handler_name, e.status) for e in (*batch.new, *batch.changed)])
    if evaluations:
        metrics.conditions.labels(config.event).inc(evaluations)
        metrics.condition_seconds.labels(config.event).observe(seconds)


def _close_abandoned(batch: Batch, deliveries: list[Delivery], decisions: list[Decision]) -> None:
    """An earlier delivery's action left waiting for a retry that will not come: its message is acknowledged
    now without it (the handler was deactivated or changed, or its condition no longer matches)."""
    done = {d.message_id: d for d, decision in zip(deliveries, decisions, strict=True) if decision.action == "ack"}
    for (message_id, _, _), execution in list(batch.prior.items()):
        if message_id in done and execution.status == Status.IN_PROGRESS and id(execution) not in batch.kept:
            execution.reason = (f"not run again: delivery {done[message_id].message.delivery_count} of the message "
                                "was acknowledged without it (its handler no longer runs this action for it)")
            _finish(batch, execution, Status.SKIPPED, output=execution.output, error=execution.error)


def close_open_executions(event: str, message_id: str, why: str) -> int:
    """The message is given up on (quarantined): its actions still waiting for a retry are FAILED. Locked
    first in id order, as dispatch locks them, so that the two cannot deadlock (call it in a transaction)."""
    waiting = ActionExecution.objects.filter(
        event=event, message_id=stored_message_id(message_id), status=Status.IN_PROGRESS, duplicate_of__isnull=True,
    )
    pks = list(waiting.order_by("pk").select_for_update().values_list("pk", flat=True))
    return ActionExecution.objects.filter(pk__in=pks).update(
        status=Status.FAILED, error=f"gave up: {why}", finished_at=timezone.now(), retryable=True,
    )


def _save_details(deliveries: list[Delivery]) -> None:
    """Records that existed before the batch (a replay's) get what became of their message."""
    for delivery in deliveries:
        delivery.record.save(update_fields=["detail"])


class _StartOver(Exception):  # noqa: N818 - a signal, not an error
    """An action raised while the batch's actions ran together."""


def _run_all(batch: Batch, deliveries: list[Delivery], conditions: list[list[ConditionResult]]) -> None:
    for delivery, results in zip(deliveries, conditions, strict=True):
        for handler, result in zip(batch.handlers, results, strict=True):
            _run_handler(batch, delivery, handler, result)


def _prepare(config: QueueConfig, engine: WorkflowEngine, unit: EngineBatch, message_ids: list[str]) -> Batch:
    # Read on every batch (in one round trip, with what the engine reads ahead): a handler changed in the
    # admin or the API applies to the next message. Each handler's latest revision, not its whole history.
    # First the batch claims its messages: another consumer holding a copy of one of them (a visibility
    # timeout that expired mid-batch, a redelivery after a lost connection) waits here until this batch
    # ends, then reads what it committed and records duplicates; without the claim both would run a first
    # attempt's actions, and a remote engine's cannot be undone. Before that it holds its event's handlers
    # lock, shared (other batches do not wait): a handler deleted meanwhile (a promoted twin) waits for this
    # batch's records, which point at it, to be committed (handlers.changes.handlers_lock).
    handlers, revisions, prior, *prefetched = fetch_together(
        Query(EventHandler, _active_handlers, {"event": config.event}),
        Query(HandlerRevision, _their_revisions, {"event": config.event}),
        Query(ActionExecution, _earlier, {"event": config.event, "message_ids": message_ids}),
        *unit.prefetch(),
        before=lock_statement((f"{config.event}\n{message_id}" for message_id in message_ids),
                              shared=[handlers_lock(config.event)]),
    )
    unit.prefetched(prefetched)
    return Batch(config, engine, handlers, {r.handler_id: r for r in revisions}, _by_action(prior),
                 _completed_before_retries(config.event, message_ids))


def _active_handlers(event: str):
    return EventHandler.objects.filter(event=event, active=True).order_by("name")


def _their_revisions(event: str):
    # Numbers count per name: after a rename, a revision of the old name may carry the current number too.
    return HandlerRevision.objects.filter(handler__event=event, handler__active=True, number=F("handler__revision"),
                                          handler_name=F("handler__name")).order_by()


def _earlier(event: str, message_ids: list[str]):
    """Executions of earlier deliveries of these messages, locked (in id order, so that two writers cannot
    deadlock): read after the batch's claim on its messages, so they hold what an earlier holder of a copy
    committed; the row locks keep the give-up step (which closes waiting executions) out meanwhile."""
    return ActionExecution.objects.filter(
        event=event, message_id__in=message_ids, duplicate_of__isnull=True,
    ).order_by("pk").select_for_update()


def _completed_before_retries(event: str, message_ids: list[str]) -> dict[tuple[str, str, int], list[ActionExecution]]:
    """For quarantine retries among the messages: the actions that completed for the messages they continue,
    under the retry's id, the nearest message's first (read only when the batch holds a retry)."""
    continued = retried_messages(event, message_ids)
    if not continued:
        return {}
    completed = ActionExecution.objects.filter(
        event=event, message_id__in={i for ids in continued.values() for i in ids}, status=Status.COMPLETED,
        index__gte=0,
    ).order_by("pk")
    by_message: dict[str, list[ActionExecution]] = {}
    for execution in completed:
        by_message.setdefault(execution.message_id, []).append(execution)
    done: dict[tuple[str, str, int], list[ActionExecution]] = {}
    for retry, ids in continued.items():
        for execution in (e for i in ids for e in by_message.get(i, [])):
            done.setdefault((retry, execution.handler_name, execution.index), []).append(execution)
    return done


def _by_action(executions) -> dict[tuple[str, str, int], ActionExecution]:
    return {(e.message_id, e.handler_name, e.index): e for e in executions}


def _new_execution(batch: Batch, delivery: Delivery, handler: EventHandler, index: int, **fields: Any):
    return build(
        ActionExecution, execution_id=f"{delivery.message_id}_{max(index, 0)}", delivery=delivery.record,
        event=batch.config.event, message_id=delivery.message_id, handler=handler, handler_name=handler.name,
        revision=batch.revisions.get(handler.pk), index=index, **fields,
    )


def _suppressed(batch: Batch, delivery: Delivery, handler: EventHandler, index: int) -> bool:
    """Record and skip a redelivery of something already final."""
    original = batch.prior.get((delivery.message_id, handler.name, index))
    if original is None or not original.is_final:
        return False
    now = timezone.now()
    duplicate = _new_execution(  # (a shadow decision's duplicate is a shadow record too: no work either)
        batch, delivery, handler, index, action=original.action,
        status=Status.SHADOW if original.status == Status.SHADOW else Status.SKIPPED,
        reason=f"duplicate delivery: already {original.status} (execution {original.execution_id}); "
        "not run again",
        duplicate_of=original, started_at=now, finished_at=now,
    )
    batch.keep(duplicate)
    delivery.summary.append(f"{handler.name}[{index}]: duplicate of {original.status}")
    return True


def _done_before(batch: Batch, delivery: Delivery, handler: EventHandler, index: int, action: dict) -> bool:
    """Record and skip an action a quarantine retry's message completed before it was quarantined (the same
    kind of action at that place of the handler: one changed since runs)."""
    done = next((e for e in batch.done_before.get((delivery.message_id, handler.name, index), [])
                 if e.action == action.get("action")), None)
    if done is None:
        return False
    now = timezone.now()
    batch.keep(_new_execution(
        batch, delivery, handler, index, action=done.action, status=Status.SKIPPED, output=done.output,
        workflow_id=done.workflow_id, started_at=now, finished_at=now,
        reason=f"not run again: it completed for message {done.message_id} (execution {done.execution_id}) "
        "before that was quarantined; a retry runs only what did not complete",
    ))
    delivery.summary.append(f"{handler.name}[{index}]: completed before the retry")
    return True


def _all_final(batch: Batch, delivery: Delivery, handler: EventHandler) -> bool:
    """Whether an earlier delivery of the message finished every action of the handler."""
    prior = [batch.prior.get((delivery.message_id, handler.name, index)) for index in range(len(handler.actions))]
    return bool(prior) and all(execution is not None and execution.is_final for execution in prior)


def _run_handler(batch: Batch, delivery: Delivery, handler: EventHandler, result: ConditionResult) -> None:
    if _suppressed(batch, delivery, handler, HANDLER_LEVEL):
        return  # an earlier delivery did not run it (its condition was false or failed): neither does this one
    if handler.is_shadow:
        _shadow(batch, delivery, handler, result)
        return
    if result.deferred and not _all_final(batch, delivery, handler):
        delivery.transient.append(f"{handler.name}: {result.deferred}")  # decided on a later delivery
        return
    if result.matched or result.deferred:  # (deferred: an earlier delivery ran every action; duplicates now)
        delivery.matched += 1
        for index, action in enumerate(handler.actions):
            if not _suppressed(batch, delivery, handler, index) and not _done_before(batch, delivery, handler, index,
                                                                                      action):
                _run_action(batch, delivery, handler, index, action)
        return
    if result.failed:
        status, reason = Status.FAILED, f"the condition failed: {result.error}"
    else:
        status, reason = Status.SKIPPED, f"condition {handler.condition!r} returned {result.value}, not true"
    now = timezone.now()
    batch.keep(_new_execution(
        batch, delivery, handler, HANDLER_LEVEL, status=status, reason=reason, error=result.error or "",
        condition_value=result.value, started_at=now, finished_at=now,
    ))
    delivery.summary.append(f"{handler.name}: {status} ({reason})")


def _shadow(batch: Batch, delivery: Delivery, handler: EventHandler, result: ConditionResult) -> None:
    """A handler in shadow mode: decided as any other, on the same payload in the same batch, and recorded SHADOW
    (the condition's decision, or each action's resolved input or why it could not be built), with nothing run.
    It never counts as a match: what becomes of the message is the live handlers' doing alone, and a condition
    not evaluated this time (deferred) is recorded rather than returning the message."""
    now = timezone.now()
    if not result.matched:
        if result.failed or result.deferred:
            reason = f"in shadow: the condition failed: {result.error or result.deferred}"
        else:
            reason = f"in shadow: condition {handler.condition!r} returned {result.value}, not true"
        batch.keep(_new_execution(
            batch, delivery, handler, HANDLER_LEVEL, status=Status.SHADOW, reason=reason, started_at=now,
            error=result.error or result.deferred or "", condition_value=result.value, finished_at=now,
        ))
        delivery.summary.append(f"{handler.name}: {reason}")
        return
    for index, action in enumerate(handler.actions):
        # (a record an earlier delivery left waiting while the handler was live is not taken over: it is closed
        # as abandoned when the message is acknowledged)
        if not _suppressed(batch, delivery, handler, index) and (delivery.message_id, handler.name, index) \
                not in batch.prior:
            batch.keep(_shadow_action(batch, delivery, handler, index, action, result))
    delivery.summary.append(f"{handler.name}: in shadow, would have run {len(handler.actions)} action(s)")


def _shadow_action(batch: Batch, delivery: Delivery, handler: EventHandler, index: int, action: dict,
                   result: ConditionResult) -> ActionExecution:
    execution = _new_execution(batch, delivery, handler, index, action=action.get("action", ""),
                               status=Status.SHADOW, condition_value=result.value, started_at=timezone.now())
    try:
        execution.input = resolve_input(action, delivery.message.payload)
        execution.reason = "in shadow: would have run with this input; nothing ran"
    except TemplateError as exc:
        execution.error = f"its input could not be built: {exc}"
        execution.reason = "in shadow: would have failed, its input could not be built; nothing ran"
    execution.finished_at = timezone.now()
    return execution


def _run_action(batch: Batch, delivery: Delivery, handler: EventHandler, index: int, action: dict) -> None:
    execution = batch.prior.get((delivery.message_id, handler.name, index))
    if execution is None:
        execution = _new_execution(batch, delivery, handler, index, action=action.get("action", ""))
    else:  # a retry runs the handler as it is now, which may have changed since the last attempt
        execution.handler, execution.revision = handler, batch.revisions.get(handler.pk)
        execution.action = action.get("action", "")
    execution.delivery = delivery.record
    execution.attempts += 1
    execution.started_at = timezone.now()
    kind = ACTION_KINDS[execution.action]
    try:
        execution.input = resolve_input(action, delivery.message.payload)
    except TemplateError as exc:  # (saved before the limits): nothing ran, so nothing starts over
        execution.input = None
        _finish(batch, execution, Status.FAILED, error=f"its input could not be built: {exc}")
    else:
        _execute(batch, delivery, handler, execution, kind)
    delivery.summary.append(f"{handler.name}[{index}] {execution.action}: {execution.status}")


def _execute(batch: Batch, delivery: Delivery, handler: EventHandler, execution: ActionExecution,
             kind: ActionKind) -> None:
    context = ActionContext(delivery.message_id, batch.config.event, execution.execution_id, handler.name)
    try:
        # Under a savepoint (the batch's or the action's own) that any error rolls back. The record joins the
        # batch's transaction, so effect and record commit together or not at all.
        with nullcontext() if batch.together else transaction.atomic():
            outcome = kind.execute(batch.engine, execution.input, context)
        _finish(batch, execution, Status.COMPLETED, output=outcome.output, workflow_id=outcome.workflow_id)
    except DatabaseError:
        raise  # the database itself failed: the whole batch is redelivered
    except Exception as exc:
        if batch.together:
            raise _StartOver from exc
        _failed(batch, delivery, execution, exc)


def _failed(batch: Batch, delivery: Delivery, execution: ActionExecution, exc: Exception) -> None:
    if isinstance(exc, EngineError) and exc.retryable:
        _retry_later(batch, delivery, execution, exc)
    elif isinstance(exc, EngineError):
        status = Status.SKIPPED if isinstance(exc, TaskAlreadyFinished) else Status.FAILED
        _finish(batch, execution, status, error=str(exc))
    else:  # a defect must cost one FAILED record, not the queue
        logger.error("Action %s of %s failed unexpectedly", execution.index, execution.handler_name, exc_info=exc)
        _finish(batch, execution, Status.FAILED, error=f"{type(exc).__name__}: {exc}")


def _finish(batch: Batch, execution: ActionExecution, status: str, *, output=None, workflow_id: str = "",
            error: str = "") -> None:
    execution.status = status
    execution.output = output
    execution.workflow_id = workflow_id or execution.workflow_id
    execution.error = error
    execution.retryable = False
    execution.finished_at = timezone.now()
    batch.keep(execution)


def _retry_later(batch: Batch, delivery: Delivery, execution: ActionExecution, exc: EngineError) -> None:
    last_chance = delivery.message.delivery_count >= batch.config.max_deliveries
    if last_chance:
        # The message goes to quarantine now; its record must say so rather than stay IN_PROGRESS.
        error = f"gave up after {delivery.message.delivery_count} deliveries: {exc}"
        _finish(batch, execution, Status.FAILED, error=error)
        execution.retryable = True  # written with the rest of the record when the batch is done
    else:
        execution.status = Status.IN_PROGRESS
        execution.error = str(exc)
        execution.retryable = True
        batch.keep(execution)
    delivery.transient.append(f"{execution.handler_name}[{execution.index}]: {exc}")


def _decide(config: QueueConfig, delivery: Delivery) -> Decision:
    record = delivery.record
    if delivery.transient:
        reason = "; ".join(delivery.transient)
        record.detail = f"returned for redelivery: {reason}"
        return Decision("nack", reason, record)
    if not delivery.matched:
        why = "; ".join(delivery.summary) or f"no active handler listens on {config.event}"
        record.detail = f"unmatched: {why}"
        if config.unmatched == QueueConfig.Unmatched.QUARANTINE:
            return Decision("quarantine", f"no active handler matched: {why}", record)
        return Decision("ack", record=record)
    record.detail = "; ".join(delivery.summary)
    return Decision("ack", record=record)
