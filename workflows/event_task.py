"""The EVENT task: where its message goes, what it says, and the one call that hands it over.

Sink `conductor` publishes to `conductor:<workflowName>:<taskRef>`, `conductor:x` to
`conductor:<workflowName>:x`, any other sink as written; `${...}` in the sink is resolved against the
task context first. The message id is the task id, so a redelivered publish can be recognised downstream.

As in Conductor, the task's input carries its `sink` and `asyncComplete`; its output is that input plus
where it ran (`event_output`), and the message is that output without its null values (`event_payload`).

Handing over means writing the message to the outbox (`queues.outbox.enqueue`) in the same transaction
as the task's state change: both commit together or neither does, and the relay publishes it afterwards.
"""

import re
from typing import Any

from queues.kinds import UnknownQueueKind, split_event

from .params import substitute

PLACEHOLDER = re.compile(r"(?<!\$)\$\{[^${}]*\}")  # an innermost `${...}`, not the escaped `$${...}`


class UnknownSink(ValueError):
    pass


def resolve_sink(sink: Any, workflow_name: str, task_ref: str, context: dict | None = None) -> str:
    """The event string an EVENT task publishes to. Raises UnknownSink naming the sink."""
    written = sink
    if context is not None and isinstance(sink, str) and "${" in sink:
        for placeholder in PLACEHOLDER.findall(sink):
            # A missing value would turn into the text "null": a queue nobody meant.
            if substitute(placeholder, context) is None:
                raise UnknownSink(f"EVENT task sink {sink!r}: {placeholder} resolved to null")
        sink = substitute(sink, context)
        if not isinstance(sink, str):
            raise UnknownSink(f"EVENT task sink {written!r} resolved to {sink!r}, not an event string")
    if not isinstance(sink, str):
        raise UnknownSink(f"EVENT task sink {written!r} is not a string")
    sink = sink.strip()
    if sink == "conductor":
        return f"conductor:{workflow_name}:{task_ref}"
    if sink.startswith("conductor:") and sink.removeprefix("conductor:").strip():
        return f"conductor:{workflow_name}:{sink.removeprefix('conductor:')}"
    if sink.startswith("conductor"):
        raise UnknownSink(f"EVENT task sink {sink!r} is not usable: the internal queue's sink is "
                          "`conductor` or `conductor:<name>`")
    try:
        split_event(sink)
    except UnknownQueueKind as exc:
        raise UnknownSink(f"EVENT task sink {sink!r} is not usable: {exc}") from None
    except ValueError as exc:
        raise UnknownSink(f"EVENT task sink {sink!r} is not usable: {exc}") from None
    return sink


def event_output(task_input: dict, *, workflow_id: str, workflow_name: str, workflow_version: int,
                 correlation_id: str | None, task_to_domain: dict | None, event: str) -> dict[str, Any]:
    """The EVENT task's output: its input (sink and asyncComplete included) and where it ran."""
    output = dict(task_input)
    output.update(
        workflowInstanceId=workflow_id,
        workflowType=workflow_name,
        workflowVersion=workflow_version,
        correlationId=correlation_id,
        taskToDomain=task_to_domain or {},
        event_produced=event,
    )
    return output


def event_payload(output: dict) -> dict[str, Any]:
    """The message an EVENT task publishes: its output, leaving out keys whose value is null (Conductor's
    serializer writes no nulls: a workflow without a correlation id sends none)."""
    return {key: value for key, value in output.items() if value is not None}


def check_sink(event: str) -> None:
    """Raise UnknownSink if `event` cannot be published to (e.g. a malformed SQS name or AMQP options)."""
    from queues.outbox import InvalidDestination, check_event  # noqa: PLC0415 - needs the app registry

    try:
        check_event(event)
    except InvalidDestination as exc:
        raise UnknownSink(f"EVENT task sink {event!r} is not usable: {exc}") from None


def publish_event(event: str, payload: dict, message_id: str) -> None:
    """Hand the message over in the caller's transaction: an outbox row (the internal `conductor` queue:
    its own row, equally atomic). The relay publishes outbox rows once the transaction committed."""
    from queues.outbox import enqueue  # noqa: PLC0415 - needs the app registry

    enqueue(event, payload, message_id=message_id, source=f"EVENT task {message_id}")
