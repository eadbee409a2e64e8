"""The EVENT task: where its message goes, what it says, and the one call that publishes it.

Sink `conductor` publishes to `conductor:<workflowName>:<taskRef>`, `conductor:x` to
`conductor:<workflowName>:x`, any other sink as written. The message id is the task id, so a
redelivered publish can be recognised downstream.
"""

from typing import Any

from queues.kinds import UnknownQueueKind, split_event


class UnknownSink(ValueError):
    pass


def resolve_sink(sink: str, workflow_name: str, task_ref: str) -> str:
    """The event string an EVENT task publishes to. Raises UnknownSink naming the sink."""
    sink = (sink or "").strip()
    if sink == "conductor":
        return f"conductor:{workflow_name}:{task_ref}"
    if sink.startswith("conductor:"):
        return f"conductor:{workflow_name}:{sink.removeprefix('conductor:')}"
    try:
        split_event(sink)
    except UnknownQueueKind as exc:
        raise UnknownSink(f"EVENT task sink {sink!r} is not usable: {exc}") from None
    except ValueError as exc:
        raise UnknownSink(f"EVENT task sink {sink!r} is not usable: {exc}") from None
    return sink


def event_payload(task_input: dict, *, workflow_id: str, workflow_name: str, workflow_version: int,
                  correlation_id: str | None, event: str) -> dict[str, Any]:
    payload = dict(task_input)
    payload.update(
        workflowInstanceId=workflow_id,
        workflowType=workflow_name,
        workflowVersion=workflow_version,
        correlationId=correlation_id,
        event_produced=event,
    )
    return payload


def publish_event(event: str, payload: dict, message_id: str) -> None:
    """Hand the message to the queues app, which writes it in the caller's transaction (outbox).

    Imported here, not at module level: `queues.publish` is optional for everything else the
    runtime does, and it must not be loaded before the apps are.
    """
    from queues.publish import publish  # noqa: PLC0415

    publish(event, payload, message_id=message_id)
