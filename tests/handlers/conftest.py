import pytest

from handlers.alerts import evaluate_alerts
from handlers.models import Alert
from queues.configs import ensure_config
from queues.models import QueueConfig

ALERT_EVENT = "conductor:orders"


@pytest.fixture
def alert(settings) -> Alert:
    """An open backlog alert on ALERT_EVENT, notified by e-mail (to the test outbox)."""
    settings.ALERTS_WEBHOOK_URL, settings.ALERTS_EMAILS = "", ["ops@example.com"]
    config = ensure_config(ALERT_EVENT)
    QueueConfig.objects.filter(pk=config.pk).update(depth=5000)
    evaluate_alerts()
    return Alert.objects.get(kind="backlog")
