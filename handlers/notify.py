"""Telling people about an alert's state changes: e-mail (Django's mail settings) and a webhook.

Each state change that notifies (opened, resolved) gets one `NotificationAttempt` per configured
channel, due at once. `send_due_notifications` sends what is due; a failed attempt stays as it is (the
record of that try) and a new attempt is scheduled ALERTS_RETRY_BACKOFF_SECONDS later, doubled per try,
until ALERTS_MAX_ATTEMPTS. An attempt is claimed with a conditional UPDATE, so two evaluations running
at once never send it twice; one left claimed by a process that died is sent again later.
"""

import logging
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Q
from django.utils import timezone

from .alert_models import Alert, AlertEvent, NotificationAttempt

logger = logging.getLogger(__name__)

Channel, Status = NotificationAttempt.Channel, NotificationAttempt.Status
RESPONSE_KEPT = 2000  # characters of a receiver's answer kept on the attempt
ABANDONED_SECONDS = 300  # far longer than a send may take (the webhook's time-out, the mail server's)


class NotificationFailed(Exception):
    """The channel did not take the notification; it is tried again later."""


def channels() -> list[tuple[str, str]]:
    found = []
    if settings.ALERTS_EMAILS:
        found.append((Channel.EMAIL, ", ".join(settings.ALERTS_EMAILS)))
    if settings.ALERTS_WEBHOOK_URL:
        found.append((Channel.WEBHOOK, settings.ALERTS_WEBHOOK_URL))
    return found


def queue_notifications(alert: Alert, event: AlertEvent, now: datetime) -> None:
    NotificationAttempt.objects.bulk_create(
        NotificationAttempt(alert=alert, event=event, channel=channel, target=target, next_attempt_at=now)
        for channel, target in channels()
    )


def text_of(alert: Alert, event: AlertEvent) -> str:
    verb = "resolved" if event.to_state == Alert.State.RESOLVED else "opened"
    return f"Eventhub alert {verb}: {alert.get_kind_display()} on {alert.subject}: {alert.detail}"


def payload_of(alert: Alert, event: AlertEvent) -> dict:
    """The webhook's JSON: `text` is what Slack (and its look-alikes) show; `alert` is for programs."""
    return {
        "text": text_of(alert, event),
        "alert": {
            "id": alert.pk, "kind": alert.kind, "subject": alert.subject, "state": event.to_state,
            "detail": alert.detail, "opened_at": alert.opened_at.isoformat(),
            "resolved_at": alert.resolved_at.isoformat() if event.to_state == Alert.State.RESOLVED else None,
        },
    }


def send_webhook(attempt: NotificationAttempt) -> str:
    try:
        response = requests.post(attempt.target, json=payload_of(attempt.alert, attempt.event),
                                 timeout=settings.ALERTS_WEBHOOK_TIMEOUT_SECONDS)
    except requests.RequestException as exc:
        raise NotificationFailed(f"{type(exc).__name__}: {exc}") from None
    answer = f"{response.status_code} {response.text[:RESPONSE_KEPT]}"
    if not response.ok:
        raise NotificationFailed(answer)
    return answer


def send_email(attempt: NotificationAttempt) -> str:
    text = text_of(attempt.alert, attempt.event)
    try:
        sent = send_mail(text[:200], text, None, settings.ALERTS_EMAILS)
    except Exception as exc:  # smtplib and socket errors have no common base narrower than this
        raise NotificationFailed(f"{type(exc).__name__}: {exc}") from None
    return f"sent to {sent} message(s)" if sent else "nothing sent"


SENDERS = {Channel.EMAIL: send_email, Channel.WEBHOOK: send_webhook}


def send_due_notifications(now: datetime | None = None) -> int:
    """Send every attempt that is due; returns how many were sent."""
    now = now or timezone.now()
    # An attempt left SENDING that long ago belongs to a process that died while sending: it is due again.
    abandoned = Q(status=Status.SENDING, attempted_at__lt=now - timedelta(seconds=ABANDONED_SECONDS))
    due = NotificationAttempt.objects.filter(Q(status=Status.PENDING, next_attempt_at__lte=now) | abandoned)
    sent = 0
    for attempt in due.select_related("alert", "event").order_by("id"):
        if claim(attempt, now):
            sent += deliver(attempt, now)
    return sent


def claim(attempt: NotificationAttempt, now: datetime) -> bool:
    """Take the attempt if nobody took it since it was read: the UPDATE's row count says who won."""
    seen = NotificationAttempt.objects.filter(pk=attempt.pk, status=attempt.status, attempted_at=attempt.attempted_at)
    return bool(seen.update(status=Status.SENDING, attempted_at=now))


def deliver(attempt: NotificationAttempt, now: datetime) -> int:
    attempt.attempted_at = now
    try:
        attempt.response = SENDERS[attempt.channel](attempt)
        attempt.status = Status.SENT
    except NotificationFailed as exc:
        attempt.response, attempt.status = str(exc)[:RESPONSE_KEPT], Status.FAILED
        logger.warning("alert %s: %s attempt %d failed: %s", attempt.alert_id, attempt.channel, attempt.attempt, exc)
        schedule_retry(attempt, now)
    attempt.save(update_fields=["attempted_at", "response", "status"])
    return int(attempt.status == Status.SENT)


def schedule_retry(attempt: NotificationAttempt, now: datetime) -> None:
    if attempt.attempt >= settings.ALERTS_MAX_ATTEMPTS:
        return
    delay = settings.ALERTS_RETRY_BACKOFF_SECONDS * 2 ** (attempt.attempt - 1)
    NotificationAttempt.objects.create(
        alert=attempt.alert, event=attempt.event, channel=attempt.channel, target=attempt.target,
        attempt=attempt.attempt + 1, next_attempt_at=now + timedelta(seconds=delay),
    )
