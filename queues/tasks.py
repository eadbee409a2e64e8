"""django-q2 tasks of queues, referenced by dotted path with primitive arguments (see
queues.outbox.sync_schedule). (Draining a queue calls dispatch: `handlers.tasks.drain_queue`.)"""

import time

from .outbox import relay_once


def relay_outbox(seconds: int) -> int:
    """The outbox relay as a django-q2 task: relay until nothing is due or `seconds` have passed."""
    deadline = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < deadline:
        step = relay_once()
        sent += step
        if not step:
            break
    return sent
