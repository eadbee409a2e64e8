"""Notifications: what the webhook and the mail carry, retries with backoff, each attempt recorded."""

import socket
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from handlers.alerts import evaluate_alerts, firing_now, open_alert
from handlers.models import Alert, NotificationAttempt
from handlers.notify import send_due_notifications
from queues.configs import ensure_config
from queues.models import QueueConfig

from .webhook_receiver import serve

pytestmark = pytest.mark.django_db

EVENT = "conductor:orders"


@pytest.fixture
def receiver(settings):
    yield from serve(settings)


def open_backlog(now) -> Alert:
    config = ensure_config(EVENT)
    QueueConfig.objects.filter(pk=config.pk).update(depth=5000)
    evaluate_alerts(now)
    return Alert.objects.get(kind="backlog")


def webhook_attempts(alert: Alert) -> list[tuple]:
    return list(alert.notifications.filter(channel="webhook").values_list("attempt", "status", "next_attempt_at"))


def test_the_webhook_gets_slack_text_and_the_alert_and_the_mail_its_text(receiver):
    alert = open_backlog(timezone.now())
    [body] = receiver.received
    assert body["text"] == "Eventhub alert opened: Queue backlog or oldest message age above a limit on " \
                           "conductor:orders: 5000 messages ready (limit 1000)"
    assert body["alert"] == {"id": alert.pk, "kind": "backlog", "subject": EVENT, "state": "open",
                             "detail": "5000 messages ready (limit 1000)", "opened_at": alert.opened_at.isoformat(),
                             "resolved_at": None}
    [message] = mail.outbox
    assert message.to == ["ops@example.com"] and message.body == body["text"]
    assert alert.notifications.get(channel="webhook").response == "200 ok"


def test_a_failed_webhook_is_retried_with_backoff_and_every_attempt_is_kept(receiver):
    receiver.failures_left = 2
    now = timezone.now()
    alert = open_backlog(now)
    assert webhook_attempts(alert) == [(1, "failed", now), (2, "pending", now + timedelta(seconds=30))]
    assert alert.notifications.get(attempt=1, channel="webhook").response == "500 down for maintenance"

    assert send_due_notifications(now + timedelta(seconds=29)) == 0
    send_due_notifications(now + timedelta(seconds=30))
    later = now + timedelta(seconds=30)
    assert webhook_attempts(alert)[1:] == [(2, "failed", later), (3, "pending", later + timedelta(seconds=60))]

    assert send_due_notifications(later + timedelta(seconds=60)) == 1
    assert [status for _, status, _ in webhook_attempts(alert)] == ["failed", "failed", "sent"]
    assert len(receiver.received) == 1 and len(mail.outbox) == 1  # mail went through the first time


def test_it_gives_up_after_the_last_attempt(settings):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings.ALERTS_WEBHOOK_URL, settings.ALERTS_EMAILS = f"http://127.0.0.1:{port}/hook", []
    settings.ALERTS_MAX_ATTEMPTS, settings.ALERTS_RETRY_BACKOFF_SECONDS = 2, 0
    now = timezone.now()
    alert = open_backlog(now)
    send_due_notifications(now)
    attempts = alert.notifications.order_by("attempt")
    assert [(a.attempt, a.status) for a in attempts] == [(1, "failed"), (2, "failed")]
    assert "ConnectionError" in attempts[0].response
    assert send_due_notifications(now + timedelta(days=1)) == 0


def test_nothing_is_queued_without_a_channel(settings):
    settings.ALERTS_WEBHOOK_URL, settings.ALERTS_EMAILS = "", []
    open_backlog(timezone.now())
    assert not NotificationAttempt.objects.exists()


def test_an_attempt_claimed_by_a_process_that_died_is_sent_later(receiver, settings):
    settings.ALERTS_EMAILS = []
    config = ensure_config(EVENT)
    QueueConfig.objects.filter(pk=config.pk).update(depth=5000)
    now = timezone.now()
    [found] = firing_now(now).values()
    open_alert(found, now)  # opened and queued, not sent yet
    NotificationAttempt.objects.update(status="sending", attempted_at=now)  # its sender died mid-send
    assert send_due_notifications(now + timedelta(seconds=60)) == 0
    assert send_due_notifications(now + timedelta(seconds=301)) == 1
    assert len(receiver.received) == 1


def test_a_refusing_mail_server_is_retried_with_backoff_and_every_attempt_is_kept(settings):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings.ALERTS_WEBHOOK_URL, settings.ALERTS_EMAILS = "", ["ops@example.com"]
    settings.ALERTS_RETRY_BACKOFF_SECONDS = 30
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 2
    now = timezone.now()
    alert = open_backlog(now)
    attempts = list(alert.notifications.order_by("attempt"))
    assert [(a.channel, a.attempt, a.status) for a in attempts] == [("email", 1, "failed"), ("email", 2, "pending")]
    assert "ConnectionRefusedError" in attempts[0].response
    assert attempts[1].next_attempt_at == now + timedelta(seconds=30)

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # the server is back
    assert send_due_notifications(now + timedelta(seconds=30)) == 1
    assert [a.status for a in alert.notifications.order_by("attempt")] == ["failed", "sent"]
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ops@example.com"]
