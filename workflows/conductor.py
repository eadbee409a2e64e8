"""The remote engine: a Conductor server, driven over its REST API (`WORKFLOW_ENGINE=conductor`).

Its calls act on the server at once and cannot be rolled back with the caller's transaction (it is not
`transactional`): a failed event action may have had its effect. Its `batch()` is the interface's, which
shares nothing.
"""

import time
from collections.abc import Hashable

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from urllib3.exceptions import NewConnectionError

from .engine import UpdatedTask, WorkflowEngine, reference_iteration
from .errors import (
    EngineError,
    EngineUnavailable,
    InvalidRequest,
    NoSuchDefinition,
    NoSuchWorkflow,
    TaskAlreadyFinished,
    TaskNotFound,
    WorkflowAlreadyFinished,
)

# Methods whose repetition has the effect of one request (RFC 9110): retried after any failure.
IDEMPOTENT_METHODS = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}

TERMINAL_TASK_STATUSES = {"COMPLETED", "FAILED", "FAILED_WITH_TERMINAL_ERROR", "CANCELED", "SKIPPED", "TIMED_OUT",
                          "COMPLETED_WITH_ERRORS"}


class ConductorEngine(WorkflowEngine):
    """A Conductor server over its REST API (`base_url` ends in `/api`).

    Reads (and other idempotent calls) that fail on the connection, time out or get a 5xx answer are
    retried `retries` times, `backoff` seconds apart and doubling, then raised as retryable
    EngineUnavailable. A start or a task update (a POST) is retried only when the server certainly did
    not process it (no connection was made, or it answered 503); otherwise it is raised at once, as
    retryable: the message's redelivery tries again, rather than a repeat that could act twice.

    With a key and secret, a token is fetched at `/token` and sent in `X-Authorization`, and
    fetched again once when the server says it expired.
    """

    transactional = False  # its calls act on another server at once: no rollback undoes them

    @classmethod
    def configuration(cls) -> dict[str, Hashable]:
        if not settings.CONDUCTOR_SERVER_URL:
            raise ImproperlyConfigured(
                "WORKFLOW_ENGINE=conductor needs CONDUCTOR_SERVER_URL (e.g. http://host:8080/api)"
            )
        return {
            "base_url": settings.CONDUCTOR_SERVER_URL, "key_id": settings.CONDUCTOR_AUTH_KEY,
            "key_secret": settings.CONDUCTOR_AUTH_SECRET, "timeout": settings.CONDUCTOR_TIMEOUT_SECONDS,
            "retries": settings.CONDUCTOR_RETRIES, "backoff": settings.CONDUCTOR_RETRY_BACKOFF_SECONDS,
        }

    def __init__(self, base_url: str, key_id: str | None = None, key_secret: str | None = None,
                 timeout: float = 10.0, retries: int = 2, backoff: float = 0.5):
        self.base_url = base_url.rstrip("/")
        self.key_id, self.key_secret = key_id, key_secret
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.session = requests.Session()
        self._token: str | None = None

    def close(self) -> None:
        """Drop pooled connections (the server keeps a thread per kept-alive connection)."""
        self.session.close()

    # Interface -----------------------------------------------------------------------------------

    def start_workflow(self, name, version=None, input=None, correlation_id=None, task_to_domain=None,
                       idempotency_key=None, trigger=None, event=None) -> str:
        # `event` is not sent: Conductor's StartWorkflowRequest has no such field (its server ignores
        # unknown ones), so only its own event processor can set a workflow's event.
        body = {"name": name, "version": version, "input": input or {}, "correlationId": correlation_id,
                "taskToDomain": task_to_domain or {}, "idempotencyKey": idempotency_key}
        body = {key: value for key, value in body.items() if value is not None}
        response = self._call("POST", "/workflow", json=body, text=True, not_found=NoSuchDefinition)
        return response.text.strip().strip('"')

    def complete_task(self, *, task_id=None, workflow_id=None, task_ref_name=None, output=None, reason=None,
                      trigger=None) -> UpdatedTask:
        return self._update_task("COMPLETED", task_id, workflow_id, task_ref_name, output, reason)

    def fail_task(self, *, task_id=None, workflow_id=None, task_ref_name=None, output=None, reason=None,
                  trigger=None) -> UpdatedTask:
        return self._update_task("FAILED", task_id, workflow_id, task_ref_name, output, reason)

    def terminate_workflow(self, workflow_id: str, reason: str | None = None) -> None:
        workflow = self.get_workflow(workflow_id, include_tasks=False)
        if workflow.get("status") != "RUNNING":
            raise WorkflowAlreadyFinished(f"Workflow {workflow_id} is already {workflow.get('status')}.")
        self._call("DELETE", f"/workflow/{workflow_id}", params={"reason": reason or ""}, not_found=NoSuchWorkflow)

    def update_variables(self, workflow_id: str, variables: dict, append_array: bool = False) -> None:
        if append_array:
            current = self.get_workflow(workflow_id, include_tasks=False).get("variables") or {}
            variables = {
                key: current[key] + value if isinstance(value, list) and isinstance(current.get(key), list) else value
                for key, value in variables.items()
            }
        # Setting variables to given values twice leaves them as once: safe to repeat, though a POST.
        self._call("POST", f"/workflow/{workflow_id}/variables", json=variables, not_found=NoSuchWorkflow,
                   idempotent=True)

    def get_workflow(self, workflow_id: str, include_tasks: bool = True) -> dict:
        params = {"includeTasks": "true" if include_tasks else "false"}
        return self._call("GET", f"/workflow/{workflow_id}", params=params, not_found=NoSuchWorkflow).json()

    # Tasks ---------------------------------------------------------------------------------------

    def _update_task(self, status, task_id, workflow_id, task_ref_name, output, reason) -> UpdatedTask:
        task = self._find_task(task_id, workflow_id, task_ref_name)
        if task.get("status") in TERMINAL_TASK_STATUSES:
            raise TaskAlreadyFinished(
                f"Task {task.get('referenceTaskName')} ({task['taskId']}) is already {task['status']}; "
                "it was not changed."
            )
        result = {"taskId": task["taskId"], "workflowInstanceId": task["workflowInstanceId"], "status": status,
                  "outputData": output or {}, "reasonForIncompletion": reason}
        result = {key: value for key, value in result.items() if value is not None}
        self._call("POST", "/tasks", json=result, text=True, not_found=TaskNotFound)
        return UpdatedTask(task["taskId"], task["workflowInstanceId"])

    def _find_task(self, task_id, workflow_id, task_ref_name) -> dict:
        if task_id:
            response = self._call("GET", f"/tasks/{task_id}", not_found=TaskNotFound)
            if not response.content.strip():  # Conductor before 3.15 answers an unknown task id with 204
                raise TaskNotFound(f"Conductor has no task {task_id}.")
            return response.json()
        if not workflow_id or not task_ref_name:
            raise InvalidRequest("Name the task by taskId, or by workflowId and taskRefName.")
        workflow = self.get_workflow(workflow_id, include_tasks=True)
        # The task of that reference or of its loop iterations (`ref__2`): the highest iteration, then
        # the most recent, as Conductor's own event actions pick it.
        ranked = [(iteration, task.get("seq", 0), position, task)
                  for position, task in enumerate(workflow.get("tasks", []))
                  if (iteration := reference_iteration(str(task.get("referenceTaskName")), task_ref_name)) is not None]
        if not ranked:
            running = workflow.get("status") == "RUNNING"
            raise TaskNotFound(
                f"Workflow {workflow_id} has no task {task_ref_name!r}"
                + (" yet." if running else f" and is {workflow.get('status')}."),
                retryable=running,
            )
        return max(ranked, key=lambda rank: rank[:3])[3]

    # HTTP ----------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, text: bool = False, not_found: type[EngineError] = NoSuchWorkflow,
              idempotent: bool | None = None, **kwargs) -> requests.Response:
        """Send a request, repeating it while that is safe. `idempotent` defaults to the method's nature."""
        headers = {"Accept": "text/plain" if text else "application/json"}
        repeatable = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        for attempt in range(self.retries + 1):
            response, failure, unprocessed = self._attempt(method, path, headers, **kwargs)
            if response is not None:
                return self._checked(response, not_found)
            if not (repeatable or unprocessed):
                # The server may have acted (started a workflow, completed a task): sending it again
                # could do it twice. The retryable error leaves the message for its redelivery instead.
                raise EngineUnavailable(f"Conductor at {self.base_url} failed {method} {path}: {failure} "
                                        "(not repeated: the server may have acted on it)")
            if attempt < self.retries:
                time.sleep(self.backoff * (2**attempt))
        raise EngineUnavailable(f"Conductor at {self.base_url} failed {method} {path}: {failure}")

    def _attempt(self, method: str, path: str, headers: dict, **kwargs) -> tuple[requests.Response | None, str, bool]:
        """One try: the answer (None on a failure worth retrying), what failed, and whether the server
        certainly did not process the request."""
        try:
            response = self._send(method, path, headers, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            return None, f"{type(exc).__name__}: {exc}", _never_connected(exc)
        if response.status_code < 500:
            return response, "", False
        # 503 says the server (or a gateway in front of it) did not handle the request. Conductor
        # answers 500 for any failure of its own, which may come after part of the work is done, and a
        # gateway's 502 or 504 may come after the server behind it acted (it reset or timed out).
        return None, f"HTTP {response.status_code}: {response.text[:200]}", response.status_code == 503

    def _send(self, method: str, path: str, headers: dict, **kwargs) -> requests.Response:
        response = self.session.request(method, self.base_url + path, headers={**headers, **self._auth()},
                                        timeout=self.timeout, **kwargs)
        if response.status_code == 401 and self.key_id:
            self._token = None  # Expired or revoked: fetch a fresh token once.
            response = self.session.request(method, self.base_url + path, headers={**headers, **self._auth()},
                                            timeout=self.timeout, **kwargs)
        return response

    def _auth(self) -> dict:
        if not self.key_id:
            return {}
        if self._token is None:
            response = self.session.post(self.base_url + "/token", timeout=self.timeout,
                                         json={"keyId": self.key_id, "keySecret": self.key_secret})
            if response.status_code != 200:
                raise EngineError(f"Conductor at {self.base_url} refused the API key: HTTP {response.status_code}",
                                  retryable=response.status_code >= 500)
            self._token = response.json()["token"]
        return {"X-Authorization": self._token}

    def _checked(self, response: requests.Response, not_found: type[EngineError]) -> requests.Response:
        if response.status_code < 400:
            return response
        message = _error_message(response)
        # The error's traceback keeps this frame, and so the response, alive: close its socket file
        # now, or the connection stays open (half-used) for as long as someone holds the error.
        response.raw.close()
        if response.status_code == 404:
            raise not_found(message)
        if response.status_code == 409:
            raise (TaskAlreadyFinished if not_found is TaskNotFound else WorkflowAlreadyFinished)(message)
        if response.status_code == 429:
            raise EngineUnavailable(message)
        if response.status_code in (400, 422):
            raise InvalidRequest(message)
        raise EngineError(f"Conductor refused the call (HTTP {response.status_code}): {message}")


def _never_connected(exc: requests.RequestException) -> bool:
    """Whether the request failed before a connection was made (refused, unresolvable, connect time-out),
    so that the server cannot have seen it. A read time-out or a dropped connection may come after."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    cause = exc.args[0] if exc.args else None
    return isinstance(getattr(cause, "reason", None), NewConnectionError)


def _error_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or f"HTTP {response.status_code}"
    return str(body.get("message") or body) if isinstance(body, dict) else str(body)
