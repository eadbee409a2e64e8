""""Why did this message do nothing?": a received message's records, told in words for ops staff."""

from dataclasses import dataclass, field

from queues.models import ReceivedMessage

from .models import HANDLER_LEVEL, ActionExecution, EventHandler, ExecutionStatus

Status = ExecutionStatus
Outcome = ReceivedMessage.Outcome


@dataclass
class Explanation:
    headline: str
    lines: list[str] = field(default_factory=list)


def explain(record: ReceivedMessage, executions: list[ActionExecution] | None = None) -> Explanation:
    """What became of one delivery and why; `executions` may be given prefetched."""
    if executions is None:
        executions = list(record.executions.select_related("duplicate_of").order_by("handler_name", "index", "id"))
    moved = _moved_on(record)
    lines = _context(record) + [_execution_line(e) for e in executions] + [_moved_line(e) for e in moved]
    if not executions and not moved:
        lines.extend(_no_executions(record))
    return Explanation(_headline(record, executions, moved), lines)


def _headline(record: ReceivedMessage, executions: list[ActionExecution], moved: list[ActionExecution]) -> str:
    done = [e for e in executions if e.status == Status.COMPLETED and e.index != HANDLER_LEVEL]
    if done:
        return f"It did something: {_count(len(done), 'action')} completed."
    if moved:
        done_later = sum(e.status == Status.COMPLETED for e in moved)
        return (f"Its actions were tried again on a later delivery, where {_count(done_later, 'action')} completed."
                if done_later else "Its actions were tried again on a later delivery: see below.")
    if record.outcome == Outcome.QUARANTINED:
        return "It did nothing: it was quarantined."
    if any(e.status == Status.IN_PROGRESS for e in executions) or (
            not executions and record.outcome == Outcome.RETURNED):
        return "Nothing yet: it was returned for redelivery after a transient failure."
    if not executions:
        return "It did nothing: no handler ran for it."
    if all(e.status == Status.SHADOW for e in executions):
        return "It did nothing: only handlers in shadow mode decided on it, and they run nothing."
    if all(e.duplicate_of_id for e in executions):
        return "It did nothing new: it was delivered again after it had been processed."
    return "It did nothing: see each handler below."


def _context(record: ReceivedMessage) -> list[str]:
    lines = []
    if record.replay_of_id:
        who = record.replayed_by.get_username() if record.replayed_by_id else "someone"
        lines.append(f"This delivery is a replay of message {record.replay_of.message_id} by {who}: "
                     f"“{record.replay_reason}”.")
    if record.outcome == Outcome.QUARANTINED:
        lines.append(f"It was quarantined: {record.detail or 'no reason recorded'}.")
    elif record.outcome == Outcome.RETURNED:
        lines.append(f"It was returned for redelivery: {record.detail}.")
    elif record.outcome == Outcome.SUPERSEDED:
        lines.append("Its listener stopped after this delivery's work was committed and before the broker was told, "
                     "so the message came again; a later delivery settled it (see the other deliveries of this "
                     "message id).")
    if record.payload is None and record.raw_body:
        lines.append("Its body was not JSON, so no handler could read it.")
    return lines


def _moved_on(record: ReceivedMessage) -> list[ActionExecution]:
    """This message's action records now with a later delivery: an action retried there takes its record
    along (the record is one per action), and so does a handler decided there for the first time."""
    later = (ActionExecution.objects.filter(event=record.event, message_id=record.message_id, duplicate_of__isnull=True,
                                            delivery__received_at__gte=record.received_at)
             .exclude(delivery=record).select_related("delivery").order_by("handler_name", "index"))
    return list(later)


def _moved_line(execution: ActionExecution) -> str:
    delivery = execution.delivery
    return (f"On a later delivery (delivery {delivery.delivery_count}, received "
            f"{delivery.received_at:%Y-%m-%d %H:%M:%S}): {_execution_line(execution)}")


def _no_executions(record: ReceivedMessage) -> list[str]:
    handlers = list(EventHandler.objects.filter(event=record.event).only("name", "active").order_by("name"))
    active = [h.name for h in handlers if h.active]
    inactive = [h.name for h in handlers if not h.active]
    if not handlers:
        return [f"No handler listens on {record.event}."]
    if not active:
        return [f"No active handler listens on {record.event}; inactive: {', '.join(inactive)}."]
    return [f"Active now on {record.event}: {', '.join(active)}. They ran nothing for this delivery: they were "
            "activated or created after it arrived, or it never reached dispatch (see its outcome)."]


def _execution_line(execution: ActionExecution) -> str:
    who = execution.handler_name
    if execution.duplicate_of_id:
        original = execution.duplicate_of
        state = original.status if original else "final"
        return (f"{_what(execution)}: a duplicate delivery; the original execution "
                f"{original.execution_id if original else ''} had already {state}, so it was not run again.")
    if execution.status == Status.SHADOW:
        return _shadow_line(execution)
    if execution.index == HANDLER_LEVEL:
        if execution.status == Status.FAILED:
            return f"{who}: its condition failed with an error, so none of its actions ran: {execution.error}."
        return (f"{who}: its condition returned {execution.condition_value or 'nothing'}, which is not true, so "
                "none of its actions ran.")
    if execution.status == Status.COMPLETED:
        target = f" (workflow {execution.workflow_id})" if execution.workflow_id else ""
        return f"{_what(execution)} completed{target}."
    if execution.status == Status.IN_PROGRESS:
        return f"{_what(execution)} is waiting for a redelivery after a transient failure: {execution.error}."
    verb = "failed" if execution.status == Status.FAILED else "was skipped"
    return f"{_what(execution)} {verb}: {execution.error or execution.reason}."


def _shadow_line(execution: ActionExecution) -> str:
    """A shadow handler's decision: what it would have done; nothing ran (ours: shadow mode)."""
    if execution.index == HANDLER_LEVEL:
        if execution.error:
            return f"{execution.handler_name} (in shadow mode): its condition failed with an error: {execution.error}."
        return (f"{execution.handler_name} (in shadow mode): its condition returned "
                f"{execution.condition_value or 'nothing'}, so it would have done nothing.")
    if execution.error:
        return f"{_what(execution)}, in shadow mode, would have failed: {execution.error}."
    return f"{_what(execution)}, in shadow mode, would have run with the input shown on its record; nothing ran."


def _what(execution: ActionExecution) -> str:
    if execution.index == HANDLER_LEVEL:
        return f"{execution.handler_name}, its condition"
    return f"{execution.handler_name}, action {execution.index} ({execution.action})"


def _count(number: int, word: str) -> str:
    return f"{number} {word}" if number == 1 else f"{number} {word}s"
