import pytest

from handlers.alerts import evaluate_alerts
from handlers.listener import Listener
from handlers.models import Alert
from queues.configs import ensure_config
from queues.models import QueueConfig
from queues.publish import publish

ALERT_EVENT = "conductor:orders"


@pytest.fixture
def alert(settings) -> Alert:
    """An open backlog alert on ALERT_EVENT, notified by e-mail (to the test outbox)."""
    settings.ALERTS_WEBHOOK_URL, settings.ALERTS_EMAILS = "", ["ops@example.com"]
    config = ensure_config(ALERT_EVENT)
    QueueConfig.objects.filter(pk=config.pk).update(depth=5000)
    evaluate_alerts()
    return Alert.objects.get(kind="backlog")


@pytest.fixture
def every_batch(settings):
    """Every batch sampled and written (the defaults sample one message a second and write every 10 s)."""
    settings.SHAPES_SAMPLE_SECONDS = 0
    settings.SHAPES_WRITE_SECONDS = 0


@pytest.fixture
def consumed(make_config, every_batch):
    """`consumed(*payloads)`: real messages published to one internal queue and consumed by the listener (one
    batch); returns the queue's event."""
    config = make_config("conductor")

    def send(*payloads) -> str:
        for payload in payloads:
            publish(config.event, payload)
        listener = Listener([config.event], relay=False)
        listener.run_once(wait=0)
        listener.close()
        return config.event

    return send
