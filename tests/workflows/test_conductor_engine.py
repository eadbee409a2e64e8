"""The remote engine's own behaviour: retries, time-outs and configuration."""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ImproperlyConfigured

from workflows.engine import BuiltinEngine, ConductorEngine, get_engine
from workflows.errors import EngineUnavailable


class FlakyServer:
    """A local HTTP server answering the planned (status, body, delay) for each request, in order."""

    def __init__(self, plan: list[tuple[int, object, float]]):
        self.plan, self.requests = list(plan), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                outer.requests.append(self.path)
                status, body, delay = outer.plan.pop(0) if outer.plan else (500, {}, 0)
                time.sleep(delay)
                payload = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # The client gave up (its time-out): nothing to answer.

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


def test_it_chooses_the_engine_from_settings(settings):
    assert isinstance(get_engine(), BuiltinEngine)
    settings.WORKFLOW_ENGINE = "conductor"
    settings.CONDUCTOR_SERVER_URL = "http://127.0.0.1:9/api"
    remote = get_engine()
    assert isinstance(remote, ConductorEngine) and remote.base_url == "http://127.0.0.1:9/api"
    assert get_engine() is remote
    settings.CONDUCTOR_SERVER_URL = ""
    with pytest.raises(ImproperlyConfigured):
        get_engine()
    settings.WORKFLOW_ENGINE = "zeebe"
    with pytest.raises(ImproperlyConfigured):
        get_engine()
