"""A real HTTP server on 127.0.0.1, in a thread, that keeps what webhooks POST to it."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self) -> None:
        self.received: list[dict] = []
        self.failures_left = 0  # answer 500 to this many requests first
        handler = type("Handler", (_Handler,), {"receiver": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def texts(self) -> list[str]:
        return [body["text"] for body in self.received]


class _Handler(BaseHTTPRequestHandler):
    receiver: Receiver

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.receiver.failures_left > 0:
            self.receiver.failures_left -= 1
            self._answer(500, b"down for maintenance")
            return
        self.receiver.received.append(body)
        self._answer(200, b"ok")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def serve(settings):
    """A running receiver, configured as the alerts' webhook, with e-mail to ops@example.com (a fixture's body)."""
    found = Receiver()
    found.thread.start()
    settings.ALERTS_WEBHOOK_URL = found.url
    settings.ALERTS_EMAILS = ["ops@example.com"]
    settings.ALERTS_RETRY_BACKOFF_SECONDS = 30
    yield found
    found.server.shutdown()
    found.server.server_close()
