"""Commands of the project started as separate processes, each in a session of its own (as honcho starts its
processes, or a terminal its jobs), for tests that signal them as an operator would."""

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .brokers import ROOT


@contextmanager
def own_sessions(env: dict[str, str], log_for: Callable[[int], Path]) -> Iterator[Callable[..., subprocess.Popen]]:
    """`start(args, **extra_env)` runs `python *args` from the project's root with `env` (and `extra_env`), its
    output in `log_for(n)` for the n-th process started; whatever still runs at the end is killed, group and all."""
    started: list[subprocess.Popen] = []

    def start(args: list[str], **extra_env: str) -> subprocess.Popen:
        with open(log_for(len(started)), "wb") as log:
            process = subprocess.Popen([sys.executable, *args], cwd=ROOT, env={**env, **extra_env}, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
