"""Queue configs: created with the settings' defaults when a handler needs one.

(Each enabled config's django-q2 schedule, which drains it through dispatch, is kept by
`handlers.schedules`.)"""

import logging

from django.conf import settings
from django.db import transaction

from .kinds import split_event
from .models import QueueConfig

log = logging.getLogger(__name__)
SQS_MAX_BATCH = 10


def default_config(event: str) -> QueueConfig:
    """An unsaved config for `event` with the defaults from settings (QUEUES_DEFAULTS)."""
    kind, name = split_event(event)
    values = dict(settings.QUEUES_DEFAULTS)
    if kind == "sqs":  # SQS hands out at most 10 messages per receive
        values["batch_size"] = min(values["batch_size"], SQS_MAX_BATCH)
    return QueueConfig(kind=kind, name=name, event=event, **values)


def ensure_config(event: str) -> QueueConfig:
    """The config of `event`, created with the settings' defaults if it has none.

    Raises ValidationError if the event cannot be a queue (unknown kind, bad name for its kind)."""
    existing = QueueConfig.objects.filter(event=event).first()
    if existing is not None:
        return existing
    config = default_config(event)
    config.full_clean(exclude=["event"], validate_unique=False)
    with transaction.atomic():
        config, created = QueueConfig.objects.get_or_create(event=event, defaults={
            field: getattr(config, field) for field in ("kind", "name", *settings.QUEUES_DEFAULTS)
        })
    if created:
        log.info("created queue config %s with the default settings", event)
    return config


def config_for(event: str) -> QueueConfig:
    """The saved config of `event`, or an unsaved one with defaults (for publishing to any queue)."""
    return QueueConfig.objects.filter(event=event).first() or default_config(event)
