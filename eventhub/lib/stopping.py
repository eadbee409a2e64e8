"""A stop request that a process shares with the processes it forks.

django-q2 runs tasks in worker processes forked (through its sentinel) from the cluster's own process, and
only that process decides to stop (`handlers`' `run_cluster` command). Tasks that can run long (draining a
queue, relaying the outbox, purging old records) ask `stop_requested()` between their steps and return
early, so the cluster stops in seconds rather than after the task's time budget.

The flag is one byte of anonymous shared memory, mapped when this module is first imported: a process
forked after that sees its parent's `request_stop()`. It must therefore be imported before the forks; in
a process where nobody requests a stop (the web server, the tests' inline tasks) it simply stays false.
"""

import mmap

_flag = mmap.mmap(-1, 1)  # MAP_SHARED | MAP_ANONYMOUS: the same page in every process forked from here


def request_stop() -> None:
    _flag[0] = 1


def stop_requested() -> bool:
    return _flag[0] == 1
