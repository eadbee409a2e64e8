"""A small HTTP server for a process that has no web server of its own (the listener): `/metrics` behind
the METRICS_TOKEN bearer token, `/healthz` (the process answers) and `/readyz` (its `ready()` says why not,
503, or "" for ready), each answered from a thread of its own."""

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

from . import metrics

log = logging.getLogger(__name__)


def serve(port: int, token: str, ready: Callable[[], str], host: str = "0.0.0.0",
          extra=None) -> ThreadingHTTPServer:
    """Start serving on `port` (0: any free one, see `server.server_port`) in a daemon thread; `extra` is a
    collector read at each scrape besides the process's own metrics."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._answer(200, b"ok\n")
            elif path == "/readyz":
                problem = ready()
                self._answer(503 if problem else 200, (problem or "ready").encode() + b"\n")
            elif path == "/metrics":
                if metrics.bearer_ok(self.headers.get("Authorization"), token):
                    self._answer(200, metrics.exposition(extra), CONTENT_TYPE_LATEST)
                else:
                    self._answer(401, b"a bearer token (METRICS_TOKEN) is required\n",
                                 extra={"WWW-Authenticate": 'Bearer realm="metrics"'})
            else:
                self._answer(404, b"not found: /metrics, /healthz or /readyz\n")

        def _answer(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8",
                    extra: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
            log.debug("metrics: " + format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
