"""The long-running processes of `make run` stop within seconds of SIGTERM, with status 0: the listener in
an SQS long poll, and the django-q2 cluster (`run_cluster`) with a drain task running. Each is a real
process on the test database; SIGTERM reaches it as honcho sends it, to its whole process group, or as
`kill` or a container runtime sends it, to its own process only."""

import os
import signal
import subprocess
import time

import pytest
from django_q.conf import Conf
from django_q.models import Task
from django_q.tasks import async_task

from handlers.listener import MAX_WAIT_SECONDS
from queues.models import InternalMessage, ListenerHeartbeat, ReceivedMessage
from queues.publish import publish

from ..brokers import database_url, wait_until
from ..processes import own_sessions

pytestmark = pytest.mark.django_db(transaction=True)
STOP_LIMIT_SECONDS = 10  # what the README promises for every process of `make run`
TO_GROUP = pytest.mark.parametrize("to_group", [True, False], ids=["to-its-group", "to-its-process"])


@pytest.fixture
def start(tmp_path):
    """Start a command in a session of its own (as honcho does), its output in a file: `start(args, **env)`."""
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "tests.settings"}
    with own_sessions(env, lambda n: tmp_path / f"process-{n}.log") as start_process:
        yield start_process


def stop(process: subprocess.Popen, to_group: bool) -> tuple[int, float]:
    """SIGTERM; returns the exit status and the seconds it took."""
    began = time.monotonic()
    if to_group:
        os.killpg(process.pid, signal.SIGTERM)
    else:
        process.send_signal(signal.SIGTERM)
    status = process.wait(60)
    return status, time.monotonic() - began


@TO_GROUP
def test_the_listener_leaves_an_sqs_long_poll_within_one_receive_slice(make_config, start, to_group):
    config = make_config("sqs", wait_seconds=20)  # the config asks for SQS's longest poll
    listener = start(["manage.py", "listen_queues"])
    # The first heartbeat is written after the first poll: the consumer is in its next one now.
    wait_until(lambda: ListenerHeartbeat.objects.filter(config=config).exists(), timeout=60,
               what="the listener's first poll")
    status, seconds = stop(listener, to_group)
    assert status == 0
    # One receive waits at most MAX_WAIT_SECONDS (2 s), not the 20 s the config asks for, and then it closes:
    # well inside the 10 s, and inside the 5 s honcho used to allow before its SIGKILL.
    assert MAX_WAIT_SECONDS <= 2 and seconds < 5
    assert not ListenerHeartbeat.objects.filter(config=config, stopped_at__isnull=True).exists()  # each consumer


@TO_GROUP
def test_the_cluster_ends_a_running_drain_and_exits_0_within_seconds(make_config, start, to_group):
    config = make_config("conductor", batch_size=1, wait_seconds=1, visibility_timeout=60)
    for n in range(30):
        publish(config.event, {"n": n}, message_id=f"m-{n}")
    cluster = start(["-m", "tests.handlers.slow_cluster"], SLOW_DISPATCH_SECONDS="1")  # a batch a second
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Conf, "SYNC", False)  # queued for the cluster, not run here
        async_task("handlers.tasks.drain_queue", config.pk, 50)  # its time budget: 50 s (QUEUES_DRAIN_SECONDS)
    wait_until(lambda: ReceivedMessage.objects.exists(), timeout=60, what="the drain to be under way")

    status, seconds = stop(cluster, to_group)
    assert status == 0 and seconds < STOP_LIMIT_SECONDS
    handled = ReceivedMessage.objects.count()
    assert handled < 30  # the drain ended early, between two batches:
    assert set(ReceivedMessage.objects.values_list("outcome", flat=True)) == {ReceivedMessage.Outcome.ACKNOWLEDGED}
    assert InternalMessage.objects.count() == 30 - handled
    assert not InternalMessage.objects.filter(delivery_count__gt=0).exists()  # none claimed and left
    task = Task.objects.get(func="handlers.tasks.drain_queue")  # and django-q2 recorded how it went
    assert task.success and task.result == handled
