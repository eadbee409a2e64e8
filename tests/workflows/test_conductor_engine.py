"""The remote engine's own behaviour: retries, time-outs and configuration."""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ImproperlyConfigured

from workflows.conductor import ConductorEngine
from workflows.errors import EngineUnavailable

TASK = {"taskId": "t1", "workflowInstanceId": "w1", "status": "IN_PROGRESS", "referenceTaskName": "step_ref"}


class FlakyServer:
    """A local HTTP server answering the planned (status, body, delay) for each request, in order."""

    def __init__(self, plan: list[tuple[int, object, float]]):
        self.plan, self.requests, self.bodies = list(plan), [], []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                sent = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests.append(f"{self.command} {self.path}")
                outer.bodies.append(json.loads(sent) if sent else None)
                status, body, delay = outer.plan.pop(0) if outer.plan else (500, {}, 0)
                time.sleep(delay)
                payload = b"" if body is None else json.dumps(body).encode()  # (None: no body at all)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # The client gave up (its time-out): nothing to answer.

            do_POST = do_DELETE = do_GET

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_port}/api"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_it_retries_a_5xx_and_then_succeeds():
    with FlakyServer([(503, {"message": "busy"}, 0), (200, {"workflowId": "w1", "status": "RUNNING"}, 0)]) as url:
        engine = ConductorEngine(url, retries=2, backoff=0)
        assert engine.get_workflow("w1")["workflowId"] == "w1"


def test_it_gives_up_on_repeated_5xx_with_a_retryable_error():
    server = FlakyServer([(502, {}, 0)] * 3)
    with server as url:
        with pytest.raises(EngineUnavailable) as error:
            ConductorEngine(url, retries=2, backoff=0).get_workflow("w1")
    assert error.value.retryable is True
    assert len(server.requests) == 3 and "HTTP 502" in str(error.value)


def test_it_classes_a_time_out_as_retryable():
    with FlakyServer([(200, {}, 1.0)]) as url:
        with pytest.raises(EngineUnavailable) as error:
            ConductorEngine(url, timeout=0.2, retries=0).get_workflow("w1")
    assert error.value.retryable is True and "Timeout" in str(error.value)


def test_it_classes_a_refused_connection_as_retryable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(EngineUnavailable) as error:
        ConductorEngine(f"http://127.0.0.1:{port}/api", retries=1, backoff=0).get_workflow("w1")
    assert error.value.retryable is True


def test_it_sends_a_start_that_times_out_once_and_leaves_the_retry_to_redelivery():
    server = FlakyServer([(200, "w1", 0.5)] * 3)
    with server as url:
        with pytest.raises(EngineUnavailable) as error:
            ConductorEngine(url, timeout=0.2, retries=2, backoff=0).start_workflow("shipping", input={"a": 1})
    # The server may have started the workflow: a second POST could start another.
    assert server.requests == ["POST /api/workflow"]
    assert error.value.retryable is True and "not repeated" in str(error.value)


def test_it_sends_a_start_answered_with_a_500_once():
    server = FlakyServer([(500, {"message": "boom"}, 0), (200, "w2", 0)])
    with server as url:
        with pytest.raises(EngineUnavailable) as error:
            ConductorEngine(url, retries=2, backoff=0).start_workflow("shipping")
    assert server.requests == ["POST /api/workflow"] and error.value.retryable is True


def test_it_sends_a_task_update_that_times_out_once():
    server = FlakyServer([(200, TASK, 0), (200, "", 0.5), (200, "", 0)])
    with server as url:
        with pytest.raises(EngineUnavailable):
            ConductorEngine(url, timeout=0.2, retries=2, backoff=0).complete_task(task_id="t1")
    assert server.requests == ["GET /api/tasks/t1", "POST /api/tasks"]


def test_it_repeats_a_start_the_server_answered_with_503():
    server = FlakyServer([(503, {"message": "no upstream"}, 0), (200, "w1", 0)])
    with server as url:
        assert ConductorEngine(url, retries=2, backoff=0).start_workflow("shipping") == "w1"
    assert server.requests == ["POST /api/workflow"] * 2


def test_it_repeats_a_start_that_could_not_connect(monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = ConductorEngine(f"http://127.0.0.1:{port}/api", retries=2, backoff=0)
    sent, request = [], engine.session.request
    # Nothing listens, so no server can count the tries: count what the session was asked to send.
    monkeypatch.setattr(engine.session, "request", lambda *args, **kw: sent.append(args) or request(*args, **kw))
    with pytest.raises(EngineUnavailable) as error:
        engine.start_workflow("shipping")
    assert len(sent) == 3 and "ConnectionError" in str(error.value)


def test_it_still_retries_a_read_that_times_out():
    server = FlakyServer([(200, {}, 0.5), (200, {"workflowId": "w1", "status": "RUNNING"}, 0)])
    with server as url:
        assert ConductorEngine(url, timeout=0.2, retries=2, backoff=0).get_workflow("w1")["workflowId"] == "w1"
    assert server.requests == ["GET /api/workflow/w1?includeTasks=true"] * 2


def test_it_retries_setting_variables_which_is_safe_to_repeat():
    server = FlakyServer([(500, {}, 0), (200, {}, 0)])
    with server as url:
        ConductorEngine(url, retries=2, backoff=0).update_variables("w1", {"seen": 1})
    assert server.requests == ["POST /api/workflow/w1/variables"] * 2


def test_it_is_built_from_the_settings_and_needs_a_server_url(settings):
    settings.CONDUCTOR_SERVER_URL, settings.CONDUCTOR_RETRIES = "http://127.0.0.1:9/api", 5
    remote = ConductorEngine(**ConductorEngine.configuration())
    assert (remote.base_url, remote.retries) == ("http://127.0.0.1:9/api", 5)
    settings.CONDUCTOR_SERVER_URL = ""
    with pytest.raises(ImproperlyConfigured, match="WORKFLOW_ENGINE=conductor needs CONDUCTOR_SERVER_URL"):
        ConductorEngine.configuration()


def test_it_is_not_transactional_and_its_batch_shares_nothing():
    remote = ConductorEngine("http://127.0.0.1:9/api")
    assert remote.transactional is False
    with remote.batch(key="conductor:orders", together=True) as unit:
        assert unit.prefetch() == [] and unit.new_rows() == []
        unit.prefetched([])


def test_an_unknown_task_id_answered_with_204_is_task_not_found():
    from workflows.errors import TaskNotFound

    with FlakyServer([(204, None, 0)]) as url:  # Conductor before 3.15 (conductor-oss/conductor#38)
        with pytest.raises(TaskNotFound, match="no task t-404") as error:
            ConductorEngine(url, retries=0).complete_task(task_id="t-404", output={"ok": True})
    assert error.value.retryable is False


# Conductor's StartWorkflowRequest, whose unknown fields its server drops without a word.
START_WORKFLOW_REQUEST = {"name", "version", "correlationId", "input", "taskToDomain", "workflowDef",
                          "externalInputPayloadStoragePath", "priority", "idempotencyKey", "idempotencyStrategy",
                          "createdBy"}


def test_it_takes_the_event_of_a_start_and_sends_only_what_conductors_start_request_knows():
    server = FlakyServer([(200, "w1", 0)])
    with server as url:
        workflow_id = ConductorEngine(url, retries=0).start_workflow(
            "shipping", input={"a": 1}, correlation_id="c-1", event="sqs:shipping_start")
    assert workflow_id == "w1" and server.requests == ["POST /api/workflow"]
    [body] = server.bodies
    assert set(body) <= START_WORKFLOW_REQUEST and body["correlationId"] == "c-1"


def test_it_finds_the_highest_loop_iteration_of_a_task_reference():
    tasks = [{**TASK, "taskId": f"t{n}", "referenceTaskName": ref, "seq": n, "iteration": n}
             for n, ref in ((1, "approve__1"), (2, "approve__2"), (3, "approve_all"))]
    workflow = {"workflowId": "w1", "status": "RUNNING", "tasks": tasks}
    server = FlakyServer([(200, workflow, 0), (200, "t2", 0)])
    with server as url:
        updated = ConductorEngine(url, retries=0).complete_task(workflow_id="w1", task_ref_name="approve",
                                                                output={"ok": True})
    assert updated == ("t2", "w1")
    assert server.requests == ["GET /api/workflow/w1?includeTasks=true", "POST /api/tasks"]
    assert server.bodies[1]["taskId"] == "t2" and server.bodies[1]["status"] == "COMPLETED"
