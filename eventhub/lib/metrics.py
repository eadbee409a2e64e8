"""Prometheus metrics of a process, in the ecosystem's conventions: `eventhub_` names, counters ending
`_total`, durations as `_seconds` histograms.

The listener's metrics are recorded only once `enable()` was called (by `listen_queues --metrics-port`):
otherwise the message path pays one attribute test per batch. They are counted per batch, not per message,
where the numbers allow it. Under a multi-process web server, set PROMETHEUS_MULTIPROC_DIR (prometheus-client's
own switch) and each worker's values are summed when `/metrics` is read.
"""

import hmac
import os
import time
from collections import Counter as Tally

from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500)

messages = Counter("eventhub_messages_received_total", "Messages received, by event and what became of them.",
                   ["event", "outcome"])
executions = Counter("eventhub_action_executions_total",
                     "Execution records written, by handler and status (a handler's condition decisions included; "
                     "a shadow handler's as status SHADOW, which is no work done).",
                     ["handler", "status"])
conditions = Counter("eventhub_condition_evaluations_total", "Conditions evaluated, by event.", ["event"])
condition_seconds = Histogram("eventhub_condition_batch_seconds",
                              "Time to evaluate one batch's conditions (every handler on every message).",
                              ["event"], buckets=LATENCY_BUCKETS)
receipt_to_record = Histogram("eventhub_receipt_to_record_seconds",
                              "From a message's receipt off the broker to its committed record.",
                              ["event"], buckets=LATENCY_BUCKETS)
batch_size = Histogram("eventhub_batch_size", "Messages per batch received.", ["event"], buckets=BATCH_BUCKETS)
broker_errors = Counter("eventhub_broker_errors_total", "Failed polls of a queue (broker or database outage).",
                        ["event", "kind"])
broker_reconnects = Counter("eventhub_broker_reconnects_total", "Polls that succeeded again after a failure.",
                            ["event", "kind"])
outbox_published = Counter("eventhub_outbox_published_total", "Outbox messages a broker accepted.", ["kind"])
outbox_failures = Counter("eventhub_outbox_failures_total", "Failed attempts to publish an outbox message.",
                          ["kind"])
http_requests = Counter("eventhub_http_requests_total", "HTTP requests answered, by method, view and status.",
                        ["method", "view", "status"])
http_seconds = Histogram("eventhub_http_request_duration_seconds", "Time to answer an HTTP request.",
                         ["method", "view"], buckets=LATENCY_BUCKETS)

_enabled = False


def enable() -> None:
    global _enabled
    _enabled = True


def enabled() -> bool:
    return _enabled


def count_by(counter: Counter, labels: list[tuple]) -> None:
    """One increment per distinct label tuple, by how often it occurs: a batch costs a few, not one per row."""
    for key, amount in Tally(labels).items():
        counter.labels(*key).inc(amount)


def registry() -> CollectorRegistry:
    """What `/metrics` shows: this process's metrics, or every worker's under PROMETHEUS_MULTIPROC_DIR."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return DEFAULT_REGISTRY
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined)
    return combined


def exposition(extra=None) -> bytes:
    """The text format of `registry()`, with `extra` collectors (database-derived gauges) read now."""
    target = registry()
    if extra is None:
        return generate_latest(target)
    merged = CollectorRegistry(auto_describe=False)
    merged.register(_Both(target, extra))
    return generate_latest(merged)


class _Both:
    def __init__(self, registry_: CollectorRegistry, extra) -> None:
        self.registry, self.extra = registry_, extra

    def collect(self):
        yield from self.registry.collect()
        yield from self.extra.collect()


def bearer_ok(header: str | None, token: str) -> bool:
    """Whether an `Authorization: Bearer <token>` header carries `token` (compared in constant time)."""
    if not token or not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header.removeprefix("Bearer ").strip().encode(), token.encode())


class RequestMetrics:
    """Middleware: each request's count and duration, labelled by its view's name (not its path, which
    would make a series per object)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.monotonic()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = (match.view_name or "unnamed") if match else "unmatched"
        http_requests.labels(request.method, view, str(response.status_code)).inc()
        http_seconds.labels(request.method, view).observe(time.monotonic() - started)
        return response
