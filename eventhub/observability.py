"""The web process's `/metrics` (its probes, `/healthz` and `/readyz`, are `eventhub.lib.health.Probes`).

`/metrics` adds gauges read from the database when it is scraped (so every process's work shows there,
the django-q2 drains' included): queue depth where the broker tells, quarantine size, outbox backlog,
seconds since each active handler last matched, listeners alive, and messages recorded over the last
five minutes by outcome. It needs the METRICS_TOKEN bearer token or a staff session.
"""

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, OuterRef, Subquery
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily

from eventhub.lib import metrics
from handlers.alerts import open_alerts_gauge
from handlers.models import ActionExecution, EventHandler, ExecutionStatus
from queues.models import ListenerHeartbeat, OutboxMessage, QuarantinedMessage, QueueConfig, ReceivedMessage

RECENT = timedelta(minutes=5)


class DatabaseGauges:
    """Read when `/metrics` is scraped: a handful of grouped queries."""

    def collect(self):
        yield open_alerts_gauge()
        yield _gauge("eventhub_queue_depth", "Messages ready in the queue, where the broker tells.", ["event"],
                     QueueConfig.objects.filter(enabled=True, depth__isnull=False).values_list("event", "depth"))
        yield _gauge("eventhub_quarantine_size", "Messages waiting in quarantine.", ["event"],
                     _counts(QuarantinedMessage.objects.filter(status=QuarantinedMessage.Status.QUARANTINED)))
        yield _gauge("eventhub_outbox_backlog", "Outbox messages not yet published.", ["event"],
                     _counts(OutboxMessage.objects.filter(status=OutboxMessage.Status.PENDING)))
        yield _gauge("eventhub_listeners_alive", "Listener consumers that beat within the last minute.", ["event"],
                     _counts(ListenerHeartbeat.alive()))
        yield _gauge("eventhub_handler_seconds_since_last_match",
                     "Seconds since an active handler last ran an action (absent: never, within retention).",
                     ["handler", "event"], _since_last_match())
        recent = (ReceivedMessage.objects.filter(received_at__gte=timezone.now() - RECENT)
                  .values_list("event", "outcome").annotate(n=Count("id")).order_by())
        yield _gauge("eventhub_messages_recorded_5m", "Messages recorded over the last 5 minutes, by outcome.",
                     ["event", "outcome"], [(event, outcome.lower(), n) for event, outcome, n in recent])


def _counts(queryset) -> list[tuple]:
    return list(queryset.values_list("event").annotate(n=Count("id")).order_by())


def _since_last_match() -> list[tuple]:
    # A handler in shadow mode runs no action: it is left out, and so are the SHADOW records of one that was. Each
    # handler's newest record of a first action, walked back from the end of its range of the (handler_name,
    # index, created_at) index to the first that is not SHADOW (as the overview's last match).
    last = (ActionExecution.objects.filter(handler_name=OuterRef("name"), index__range=(0, 0),
                                           duplicate_of__isnull=True)
            .exclude(status=ExecutionStatus.SHADOW).order_by("-index", "-created_at").values("created_at")[:1])
    handlers = (EventHandler.objects.filter(active=True, mode=EventHandler.Mode.LIVE).annotate(at=Subquery(last))
                .filter(at__isnull=False).values_list("name", "event", "at"))
    now = timezone.now()
    return [(name, event, (now - at).total_seconds()) for name, event, at in handlers]


def _gauge(name: str, documentation: str, labels: list[str], rows) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for *values, value in rows:
        family.add_metric([str(v) for v in values], float(value))
    return family


def _allowed(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    return metrics.bearer_ok(request.headers.get("Authorization"), settings.METRICS_TOKEN)


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        response = HttpResponse("A bearer token (METRICS_TOKEN) or a staff session is required.\n", status=401,
                                content_type="text/plain; charset=utf-8")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics.exposition(DatabaseGauges()), content_type=CONTENT_TYPE_LATEST)
