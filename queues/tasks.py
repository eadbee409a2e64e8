"""django-q2 tasks, referenced by dotted path with primitive arguments (see queues.configs.sync_schedule)."""

import logging
import os
import socket
import time

from .listener import Consumer
from .models import QueueConfig

log = logging.getLogger(__name__)


def drain_queue(config_id: int, seconds: int) -> int:
    """Consume the queue of config `config_id` until it is empty or `seconds` have passed; returns the number
    of messages handled. A failure is recorded on the config and raised, so django-q2 records it too."""
    config = QueueConfig.objects.filter(pk=config_id, enabled=True).first()
    if config is None:
        return 0
    consumer = Consumer(config, name=f"django-q {socket.gethostname()}:{os.getpid()}:{config.pk}")
    deadline = time.monotonic() + seconds
    handled = 0
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            batch = consumer.poll_once(wait=min(config.wait_seconds, remaining, 1))
            handled += batch
            if not batch:
                break
    except Exception as exc:
        consumer.failed(exc)
        raise
    finally:
        consumer.close()
    log.info("drained %d message(s) from %s", handled, config.event)
    return handled


def relay_outbox(seconds: int) -> int:
    """The outbox relay as a django-q2 task: relay until nothing is due or `seconds` have passed."""
    from .outbox import relay_once

    deadline = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < deadline:
        step = relay_once()
        sent += step
        if not step:
            break
    return sent
