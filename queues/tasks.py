"""django-q2 tasks of queues, referenced by dotted path with primitive arguments (see
queues.outbox.sync_schedule). (Draining a queue calls dispatch: `handlers.tasks.drain_queue`.)"""

import time

from eventhub.lib.stopping import stop_requested

from .outbox import relay_once


def relay_outbox(seconds: int) -> int:
    """The outbox relay as a django-q2 task: relay until nothing is due, `seconds` have passed or the cluster
    is stopping (a step's batch is finished first)."""
    deadline = time.monotonic() + seconds
    sent = 0
    while not stop_requested() and time.monotonic() < deadline:
        step = relay_once()
        sent += step
        if not step:
            break
    return sent
