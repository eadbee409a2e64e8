"""`make run` stops cleanly: its web server, and the whole Procfile under its process manager
(`eventhub.processes`, honcho's), exit 0 within 10 s of SIGTERM or Ctrl-C, with nothing left running.

The Procfile is the real one with only the web server's port changed (to a free one); the database is the
test database, the settings are the production ones. `make run`'s set-up steps before it (migrate,
collectstatic, bootstrap_admin) are left out: they end by themselves. (The listener and the django-q2
cluster, each with work in hand, are stopped one by one in tests/handlers/test_process_stops.py.)"""

import os
import re
import signal
import socket
import time
import urllib.request

import pytest

from .brokers import ROOT, database_url, wait_until
from .processes import own_sessions

pytestmark = pytest.mark.django_db(transaction=True)
STOP_LIMIT_SECONDS = 10  # what the README promises


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def group_left(pgid: int) -> list[int]:
    """The live processes of a process group (the cluster's workers stay in their main process's)."""
    left = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # (state, ppid, pgrp, ...)
            left.append(int(entry))
    return left


@pytest.fixture
def start(tmp_path):
    """`start(args)`: a process in a session of its own (as a terminal's job is), production settings on the
    test database, output in `tmp_path / "output.log"`."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "eventhub.settings", "DATABASE_URL": database_url(),
           "SECRET_KEY": "test-make-run-stops", "PYTHONUNBUFFERED": "1"}
    with own_sessions(env, lambda n: tmp_path / "output.log") as start_process:
        yield start_process


def test_the_web_server_exits_0_within_seconds_of_sigterm_to_its_group(start):
    port = free_port()
    web = start(["manage.py", "runserver", f"127.0.0.1:{port}"])  # with its autoreloader's child, as make run has it
    wait_until(lambda: answers(port), timeout=60, what="the web server to answer")
    began = time.monotonic()
    os.killpg(web.pid, signal.SIGTERM)  # as honcho sends it
    assert web.wait(60) == 0
    assert time.monotonic() - began < STOP_LIMIT_SECONDS
    assert not answers(port)


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_every_process_of_the_procfile_exits_0_within_10_s(make_config, start, tmp_path, how):
    make_config("sqs", wait_seconds=20)  # so that the listener is in an SQS long poll when it is stopped
    port = free_port()
    procfile = (ROOT / "Procfile").read_text()
    assert "127.0.0.1:8000" in procfile
    (tmp_path / "Procfile").write_text(procfile.replace("127.0.0.1:8000", f"127.0.0.1:{port}"))
    manager = start(["-m", "eventhub.processes", "start", "--no-colour", "-f", str(tmp_path / "Procfile")])

    def output() -> str:
        return (tmp_path / "output.log").read_text(errors="replace")

    def everything_up() -> bool:
        text = output()
        return ("listen_queues started" in text and re.search(r"Q Cluster \S+ \[\w+\] running", text) is not None
                and answers(port))

    wait_until(everything_up, timeout=90, what="the web server, the listener and the cluster to be up")
    pids = {name: int(pid) for name, pid in re.findall(r"(\w+)\.1 started \(pid=(\d+)\)", output())}
    assert set(pids) == {"web", "listener", "worker"}

    began = time.monotonic()
    if how == "sigterm":
        manager.send_signal(signal.SIGTERM)  # as `kill`, or make passing on its own SIGTERM, sends it
    else:
        os.killpg(manager.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the foreground job's group
    try:
        status = manager.wait(60)
        seconds = time.monotonic() - began
    finally:  # honcho's processes have sessions of their own: the fixture's clean-up would not reach them
        left = {name: group_left(pid) for name, pid in pids.items() if group_left(pid)}
        for pid in pids.values():
            if group_left(pid):
                os.killpg(pid, signal.SIGKILL)

    text = output()
    assert status == 0, text[-3000:]
    assert seconds < STOP_LIMIT_SECONDS
    for name in pids:
        assert f"{name}.1 stopped (rc=0)" in text
    assert "SIGKILL" not in text and not left  # nothing left for honcho to kill, nothing left at all
