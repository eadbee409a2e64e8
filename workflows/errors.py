"""Errors of the workflow engines, each saying whether trying again later can help.

A retryable error (a remote engine's 5xx or time-out, a task that does not exist yet in a running
workflow) leaves the triggering message for redelivery; a permanent one is recorded and dropped.
`http_status` is what the workflow API answers for it.
"""


class EngineError(Exception):
    retryable: bool = False
    http_status: int = 500

    def __init__(self, message: str, *, retryable: bool | None = None):
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable


class NoSuchDefinition(EngineError):
    http_status = 404


class NoSuchWorkflow(EngineError):
    http_status = 404


class TaskNotFound(EngineError):
    """No such task. Retryable when its workflow is still running: the task may not be scheduled yet."""

    http_status = 404


class TaskAlreadyFinished(EngineError):
    http_status = 409


class WorkflowAlreadyFinished(EngineError):
    http_status = 409


class InvalidRequest(EngineError):
    http_status = 400


class EngineUnavailable(EngineError):
    """The remote engine did not answer, timed out or failed on its side (5xx)."""

    retryable = True
    http_status = 503
