"""`manage.py run_cluster`: django-q2's cluster as `qcluster` runs it, stopped within seconds, exit 0.

On SIGTERM or SIGINT to its own process django-q2 stops a cluster in order: the pusher takes no more
tasks, each worker finishes the task in hand and takes a poison pill, the monitor saves the results, and
the process exits 0. Two things kept `qcluster` from getting there under `make run`:

- honcho sends SIGTERM to the whole process group (systemd's default KillMode, to every process of the
  service). The cluster's children ignore SIGINT but die of SIGTERM; the main process, which is waking
  the sentinel just then, waits forever in `Event.set()` (a multiprocessing Condition waits for each
  sleeper it wakes to say so, and a dead one never does) until it is SIGKILLed. Here every process the
  cluster forks blocks SIGTERM, as it ignores SIGINT: only the main process acts on either signal.
- a worker finishes its task before it takes the pill, and a drain or relay task runs for up to 50 s. The
  main process first raises the shared stop flag (`eventhub.lib.stopping`); those tasks end at their next
  step, with the batch in hand finished and acknowledged.

What that costs: the guard's SIGTERM to a worker that overran django-q2's timeout (300 s) is blocked too.
The worker's own SIGALRM still raises in it at the timeout, which ends any task that returns to Python
(database and broker calls do); only a task stuck inside C code for good outlives the cluster's stop.
"""

import logging
import os
import signal

from django.core.management.base import BaseCommand, CommandError
from django_q.cluster import Cluster

from eventhub.lib.stopping import request_stop

log = logging.getLogger(__name__)


def _leave_signals_to_the_cluster() -> None:
    """In each forked child: SIGTERM stays pending (a group-wide SIGTERM is the main process's to act on)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


class Command(BaseCommand):
    help = "Run django-q2's cluster until SIGTERM or SIGINT, then stop it in order within seconds (exit 0)."

    def handle(self, *args, **options) -> None:
        cluster = Cluster()  # (installs django-q2's own handlers, wrapped below)
        os.register_at_fork(after_in_child=_leave_signals_to_the_cluster)

        def stop(signum, frame) -> None:
            log.info("received %s, stopping the cluster", signal.Signals(signum).name)
            request_stop()  # first: tasks in hand end at their next step
            cluster.sig_handler(signum, frame)  # stops the cluster in order and waits for it

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        cluster.start()
        cluster.sentinel.join()  # until a signal has stopped it
        if cluster.sentinel.exitcode:
            raise CommandError(f"the cluster's sentinel exited with {cluster.sentinel.exitcode}")
