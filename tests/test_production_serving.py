"""The production web server: the `web` process of Procfile.production (gunicorn, gunicorn.conf.py) with the
variables README "Production serving" documents, on the test database, spoken to as the TLS proxy would.

On PostgreSQL, a few hundred concurrent requests and the connections the web processes hold, read from
pg_stat_activity while they arrive, after, and once gunicorn has stopped.
"""

import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import requests
from django.db import connection, connections
from rest_framework.authtoken.models import Token

from .brokers import database_url, wait_until
from .production import ROOT, documented_environment, environment, run_manage

pytestmark = pytest.mark.django_db(transaction=True)
log = logging.getLogger(__name__)

HOST = "eventhub.example.com"  # ALLOWED_HOSTS in the README
PROXY = {"Host": HOST, "X-Forwarded-Proto": "https"}  # what the proxy that ends TLS adds
STATIC_FILE = "/static/admin/css/base.css"


def procfile_command(process: str) -> str:
    for line in (ROOT / "Procfile.production").read_text().splitlines():
        name, _, command = line.partition(":")
        if name == process:
            return command.strip().removeprefix("exec ")  # (run here under an exec of its own)
    raise AssertionError(f"Procfile.production has no {process} process")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class WebProcess:
    process: subprocess.Popen
    url: str
    log_path: Path

    def get(self, path: str, timeout: float = 30, **headers: str) -> requests.Response:
        return requests.get(self.url + path, headers={**PROXY, **headers}, allow_redirects=False, timeout=timeout)

    def stop(self) -> tuple[int, float]:
        """SIGTERM, as honcho or a platform sends it: the exit status and the seconds it took."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60), time.monotonic() - started

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def static_files():
    """`collectstatic`, as the README runs it before starting the server."""
    result = run_manage("collectstatic", "--no-input", "--verbosity", "0")
    assert result.returncode == 0, result.stderr


@pytest.fixture
def web(tmp_path, static_files):
    """Start Procfile.production's `web` command as honcho would, with the documented variables on the test
    database; `web(**variables)` adds or overrides variables, and returns once the server answers."""
    started: list[WebProcess] = []

    def start(**variables: str) -> WebProcess:
        port = free_port()
        env = environment(**{**documented_environment(), "DATABASE_URL": database_url(), "PORT": str(port),
                             **variables})
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the venv's gunicorn
        log_path = tmp_path / f"web-{len(started)}.log"
        with open(log_path, "wb") as output:  # a file, not a pipe nobody reads, which would fill and stall it
            process = subprocess.Popen(["sh", "-c", f"exec {procfile_command('web')}"], cwd=ROOT, env=env,
                                       stdout=output, stderr=subprocess.STDOUT)
        server = WebProcess(process, f"http://127.0.0.1:{port}", log_path)
        started.append(server)
        began = time.monotonic()
        wait_until(lambda: answers(server), timeout=30, what="gunicorn to answer")
        log.info("gunicorn answered %.2f s after it was started", time.monotonic() - began)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
        server.process.wait(10)


def answers(server: WebProcess) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(f"gunicorn exited with {server.process.returncode}:\n{server.output()}")
    try:
        return server.get(STATIC_FILE, timeout=2).status_code == 200
    except (requests.ConnectionError, requests.Timeout):  # not listening yet, or its workers still booting
        return False


def api_token(django_user_model) -> str:
    user = django_user_model.objects.create_superuser(username="ops", password="not-used", email="")
    return Token.objects.create(user=user).key


def gunicorn_config(**variables: str) -> subprocess.CompletedProcess:
    """What gunicorn makes of gunicorn.conf.py in this environment (`--print-config`: nothing is started)."""
    command = [str(Path(sys.executable).parent / "gunicorn"), "--config", "gunicorn.conf.py", "--print-config"]
    return subprocess.run(command, cwd=ROOT, env=environment(**variables), capture_output=True, text=True,
                          timeout=60)


def setting(config: str, name: str) -> str:
    return next(line.partition("=")[2].strip() for line in config.splitlines() if line.split(" ")[0] == name)


def test_it_runs_two_workers_of_eight_threads_on_port_8000_by_default():
    config = gunicorn_config().stdout
    assert [setting(config, name) for name in ("bind", "workers", "threads", "worker_class")] == [
        "['0.0.0.0:8000']", "2", "8", "gthread"]


def test_it_takes_its_port_workers_and_threads_from_the_environment():
    config = gunicorn_config(PORT="5100", WEB_CONCURRENCY="3", WEB_THREADS="5").stdout
    assert [setting(config, name) for name in ("bind", "workers", "threads")] == ["['0.0.0.0:5100']", "3", "5"]


def test_it_refuses_to_start_with_a_thread_count_it_cannot_read():
    result = gunicorn_config(WEB_THREADS="many")
    assert result.returncode != 0
    assert "WEB_THREADS='many' is not a whole number" in result.stdout + result.stderr


def test_it_serves_the_admin_the_api_and_static_files_as_behind_the_tls_proxy(web, django_user_model):
    token = api_token(django_user_model)
    server = web()

    login = server.get("/admin/login/")
    assert login.status_code == 200
    assert login.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert "secure" in login.headers["Set-Cookie"].lower().split("; ")

    plain = server.get("/admin/login/", **{"X-Forwarded-Proto": "http"})
    assert (plain.status_code, plain.headers["Location"]) == (301, f"https://{HOST}/admin/login/")

    css = server.get(STATIC_FILE, **{"Accept-Encoding": "gzip"})
    assert (css.status_code, css.headers.get("Content-Encoding")) == (200, "gzip")
    assert "body" in css.text
    assert server.get("/api/event", Authorization=f"Token {token}").json() == []
    assert server.get("/api/event", Authorization="Token not-a-token").status_code == 401

    status, seconds = server.stop()
    assert status == 0, server.output()
    log.info("gunicorn exited %s %.2f s after SIGTERM", status, seconds)


if "postgresql" in connections.settings["default"]["ENGINE"]:

    class ConnectionCounter(threading.Thread):
        """Reads how many connections the test database has, every few milliseconds, through a connection of
        its own to another database (so it never counts itself), and keeps the highest figure."""

        def __init__(self, database: str):
            super().__init__(daemon=True)
            self.database = database
            self.link = psycopg.connect(**{**connection.get_connection_params(), "dbname": "postgres"},
                                        autocommit=True)
            self.peak = 0
            self.readings = 0
            self.stopping = threading.Event()

        def count(self) -> int:
            return self.link.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                     [self.database]).fetchone()[0]

        def close_leftovers(self) -> None:
            """End connections earlier tests of this process left behind (threads that never closed theirs):
            from here on every connection to the test database is to be gunicorn's."""
            self.link.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                              [self.database])

        def run(self) -> None:
            while not self.stopping.wait(0.005):
                self.peak = max(self.peak, self.count())
                self.readings += 1

        def stop(self) -> None:
            self.stopping.set()
            self.join(5)

    def fire(server: WebProcess, token: str, requests_count: int, clients: int) -> dict[int, int]:
        """`requests_count` requests from `clients` threads, mixing pages that read the database (API calls,
        answered or refused by a token lookup) with ones that do not. Each request has an HTTP connection of
        its own, so both workers take their share (kept-alive connections may all land on one worker)."""
        kinds = itertools.cycle([
            ("/admin/login/", {}, 200),
            ("/api/event", {"Authorization": f"Token {token}"}, 200),
            ("/api/eventhub/executions", {"Authorization": f"Token {token}"}, 200),
            ("/api/event", {"Authorization": "Token not-a-token"}, 401),
            (STATIC_FILE, {}, 200),
        ])
        work = [next(kinds) for _ in range(requests_count)]

        def one(job) -> int:
            path, headers, expected = job
            status = server.get(path, **headers).status_code
            assert status == expected, f"{path}: {status}"
            return status

        with ThreadPoolExecutor(clients) as pool:
            statuses = list(pool.map(one, work))
        return {status: statuses.count(status) for status in set(statuses)}

    @pytest.mark.parametrize(("variables", "bound"), [
        ({}, 16),  # the defaults: WEB_CONCURRENCY=2 × WEB_THREADS=8
        ({"WEB_CONCURRENCY": "1", "WEB_THREADS": "4"}, 4),
    ], ids=["defaults", "one-worker-of-4-threads"])
    def test_it_holds_at_most_workers_times_threads_connections_however_many_requests_arrive(
        web, django_user_model, variables, bound
    ):
        token = api_token(django_user_model)
        database = connection.settings_dict["NAME"]
        connection.close()  # the test's own: from here on, every connection to the test database is gunicorn's
        counter = ConnectionCounter(database)
        counter.close_leftovers()
        wait_until(lambda: counter.count() == 0, timeout=10, what="no connection to the test database")
        server = web(**variables)
        counter.start()

        began = time.monotonic()
        statuses = fire(server, token, requests_count=400, clients=48)
        elapsed = time.monotonic() - began
        counter.stop()
        after = counter.count()
        log.info("%s: 400 requests (%s) in %.2f s; connections: at most %d in %d readings, %d after",
                 variables or "defaults", statuses, elapsed, counter.peak, counter.readings, after)
        assert 0 < counter.peak <= bound
        assert after <= bound

        status, seconds = server.stop()
        assert status == 0, server.output()
        wait_until(lambda: counter.count() == 0, timeout=10, what="gunicorn's connections to close")
        log.info("gunicorn exited %s %.2f s after SIGTERM; then 0 connections", status, seconds)
