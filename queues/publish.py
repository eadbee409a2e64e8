"""Publish a message to any queue, through its kind's provider."""

import json
import logging
from typing import Any

from .configs import config_for
from .kinds import provider_for

log = logging.getLogger(__name__)


def publish(event: str, payload: Any, *, message_id: str | None = None) -> str:
    """Send `payload` as JSON to the queue of `event` (`kind:name`); returns the message id.

    `message_id` travels as the broker's own message id or deduplication id where it has one.
    Raises ProviderError when the broker refuses or cannot be reached; ValueError for an unknown kind."""
    config = config_for(event)
    provider = provider_for(config.spec())
    try:
        sent = provider.publish(json.dumps(payload), message_id=message_id)
    finally:
        provider.close()
    log.info("published %s to %s", sent, event)
    return sent


def publish_raw(event: str, body: str, *, message_id: str | None = None) -> str:
    """Send a body as it is (a quarantined message that never was JSON, for instance)."""
    config = config_for(event)
    provider = provider_for(config.spec())
    try:
        return provider.publish(body, message_id=message_id)
    finally:
        provider.close()
