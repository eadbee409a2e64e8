"""Open alerts as the `eventhub_alerts_open` gauge, on the web's /metrics and the listener's port."""

import pytest
from django.test import override_settings

from eventhub.lib import metrics_server
from handlers.alerts import OpenAlertsGauge, evaluate_alerts
from handlers.listener import Listener
from queues.configs import ensure_config
from queues.models import QueueConfig

from ..test_metrics import TOKEN, get, samples

EVENT = "conductor:orders"


def open_backlog() -> None:
    config = ensure_config(EVENT)
    QueueConfig.objects.filter(pk=config.pk).update(depth=5000)
    evaluate_alerts()


def gauge(text: str, kind: str, state: str = "open") -> float:
    return samples(text)[("eventhub_alerts_open", ("kind", kind), ("state", state))]


@pytest.mark.django_db
@override_settings(ALERTS_WEBHOOK_URL="", ALERTS_EMAILS=[])
def test_the_webs_metrics_carry_open_alerts_by_kind(admin_client):
    open_backlog()
    text = admin_client.get("/metrics").content.decode()
    assert gauge(text, "backlog") == 1
    assert gauge(text, "failure_rate") == 0


@pytest.mark.django_db(transaction=True)
@override_settings(ALERTS_WEBHOOK_URL="", ALERTS_EMAILS=[])
def test_the_listeners_metrics_carry_open_alerts_by_kind():
    open_backlog()
    listener = Listener()
    server = metrics_server.serve(0, TOKEN, listener.unready, host="127.0.0.1",
                                  extra=OpenAlertsGauge(close_connection=True))
    try:
        status, text = get(f"http://127.0.0.1:{server.server_port}/metrics", TOKEN)
    finally:
        server.shutdown()
        listener.close()
    assert status == 200
    assert gauge(text, "backlog") == 1 and gauge(text, "handler_silent") == 0
