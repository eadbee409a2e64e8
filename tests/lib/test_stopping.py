"""The stop flag is shared with processes forked after it was imported, and only with those."""

import subprocess
import sys

from ..brokers import ROOT

# Run in a process of its own: requesting a stop in the test process would stop its later tasks too.
PROGRAM = """
import os, sys, time
from eventhub.lib.stopping import request_stop, stop_requested

child = os.fork()
if child == 0:  # waits for its parent's request, as a django-q2 worker's task does
    deadline = time.monotonic() + 20
    while not stop_requested() and time.monotonic() < deadline:
        time.sleep(0.01)
    os._exit(0 if stop_requested() else 1)
assert not stop_requested()
request_stop()
assert stop_requested()
sys.exit(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))
"""


def test_a_forked_child_sees_its_parents_stop_request():
    done = subprocess.run([sys.executable, "-c", PROGRAM], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_no_stop_is_requested_in_a_process_that_did_not_ask():
    from eventhub.lib.stopping import stop_requested

    assert not stop_requested()
