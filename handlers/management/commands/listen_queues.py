"""`manage.py listen_queues [--queue EVENT ...] [--once]`: consume every enabled queue config."""

import gc
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from eventhub.lib import metrics, metrics_server
from handlers.alerts import OpenAlertsGauge
from handlers.listener import Listener
from queues.models import QueueConfig

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Consume the enabled queues continuously (long polling) until SIGTERM or SIGINT."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--queue", action="append", dest="queues", metavar="EVENT",
                            help="Only this queue config's event, e.g. sqs:orders (repeatable).")
        parser.add_argument("--once", action="store_true", help="Poll every queue once, then exit.")
        parser.add_argument("--no-relay", action="store_true",
                            help="Do not publish the outbox here (another process relays it).")
        parser.add_argument("--metrics-port", type=int, default=settings.METRICS_PORT, metavar="PORT",
                            help="Serve Prometheus metrics (/metrics, with METRICS_TOKEN) and the /healthz and "
                            "/readyz probes on this port (default: METRICS_PORT; none when unset).")

    def handle(self, *args, queues=None, once=False, no_relay=False, metrics_port=None, **options) -> None:
        listener = Listener(events=queues, relay=not no_relay)
        if metrics_port is not None and not once:
            self._serve_metrics(listener, metrics_port)
        known = set(QueueConfig.objects.filter(event__in=queues or []).values_list("event", flat=True))
        for event in sorted(set(queues or []) - known):
            # Not an error: the config may be created later, and is then picked up without a restart.
            log.warning("no queue config for %s yet; it is consumed once one is created and enabled", event)
        if once:
            try:
                handled = listener.run_once()
            finally:
                listener.close()
            self.stdout.write(f"handled {handled} message(s)")
            return
        self._stop_on_signals(listener)
        settle_heap()
        log.info("listen_queues started")
        listener.run()
        log.info("listen_queues stopped")

    @staticmethod
    def _serve_metrics(listener: Listener, port: int) -> None:
        if not settings.METRICS_TOKEN:
            raise CommandError("--metrics-port needs METRICS_TOKEN: the bearer token Prometheus sends")
        metrics.enable()
        server = metrics_server.serve(port, settings.METRICS_TOKEN, listener.unready,
                                      extra=OpenAlertsGauge(close_connection=True))
        log.info("metrics on port %d (/metrics, /healthz, /readyz)", server.server_port)

    @staticmethod
    def _stop_on_signals(listener: Listener) -> None:
        def stop(signum, frame) -> None:
            # Only a flag: the consumers finish and acknowledge the batch they hold, then exit.
            log.info("received %s, finishing the current batches", signal.Signals(signum).name)
            listener.stop.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)


def settle_heap() -> None:
    """Leave what start-up made (Django, the brokers' clients, the app's modules) out of garbage
    collection from now on: a full collection then looks at the objects made since, taking a few
    milliseconds instead of about 60 ms with every thread stopped, which was the 99th percentile's tail
    at 200 msg/s (bench/README.md)."""
    gc.collect()
    gc.freeze()
