"""Real brokers for the tests: moto's SQS server on loopback (started here), RabbitMQ and NATS JetStream
as running on this machine (tests/services.sh), and the database queue."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from queues.kinds import provider_for
from queues.models import QueueConfig
from queues.providers.base import Provider, ProviderError, QueueSpec

ROOT = Path(__file__).resolve().parents[1]
KINDS = ["conductor", "sqs", "amqp_queue", "amqp_exchange", "nats"]
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_REGION": "us-east-1"}


@pytest.fixture(scope="session", autouse=True)
def sqs_server():
    """moto's SQS on 127.0.0.1 with a free port, and boto3 pointed at it through its own variables."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    saved = {name: os.environ.get(name) for name in [*AWS_ENV, "AWS_ENDPOINT_URL_SQS"]}
    os.environ.update(AWS_ENV, AWS_ENDPOINT_URL_SQS=f"http://{host}:{port}")
    yield f"http://{host}:{port}"
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    server.stop()


def unique_name(kind: str) -> str:
    suffix = uuid.uuid4().hex[:12]
    if kind == "sqs":
        return f"eh-test-{suffix}"
    if kind == "amqp_exchange":
        return f"eh.test.x.{suffix}?exchangeType=direct&routingKey=rk&bindQueueName=eh.test.bound.{suffix}"
    return f"eh.test.{suffix}"


def url_for(kind: str) -> str:
    from django.conf import settings

    return {"amqp_queue": settings.AMQP_URL, "amqp_exchange": settings.AMQP_URL, "nats": settings.NATS_URL}.get(
        kind, ""
    )


def make_spec(kind: str, **overrides) -> QueueSpec:
    values = {"kind": kind, "name": unique_name(kind), "url": url_for(kind), "batch_size": 10, "wait_seconds": 1,
              "visibility_timeout": 30, "max_deliveries": 3}
    values.update(overrides)
    return QueueSpec(**values)


def destroy(provider: Provider) -> None:
    """Remove what a test provisioned on the shared brokers (the database and moto go away by themselves)."""
    try:
        if provider.spec.kind == "nats":
            try:
                provider._ensure()  # finds the stream even if this provider was never used
                provider._run(provider._js.delete_stream(provider.stream))
            except ProviderError:
                pass  # another provider of the same test deleted it already
        elif provider.spec.kind.startswith("amqp"):
            channel = provider.channel
            for queue in (provider.options.queue, provider.dead_queue):
                channel.queue_delete(queue)
            channel.exchange_delete(f"{provider.options.queue}.dlx")
            if provider.options.is_exchange:
                channel.exchange_delete(provider.options.target)
    finally:
        provider.close()


@pytest.fixture
def providers():
    """Providers made by the test, cleaned up afterwards: `providers(spec)`."""
    made: list[Provider] = []

    def make(spec: QueueSpec) -> Provider:
        provider = provider_for(spec)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        destroy(provider)


@pytest.fixture(params=KINDS)
def kind(request) -> str:
    return request.param


@pytest.fixture
def make_config(providers):
    """Saved queue configs on real brokers, with their broker state cleaned up afterwards."""

    def make(kind: str, **fields) -> QueueConfig:
        values = {"kind": kind, "name": unique_name(kind), "wait_seconds": 1, "visibility_timeout": 0,
                  "max_deliveries": 3}
        values.update(fields)
        config = QueueConfig(**values)
        config.full_clean()
        config.save()
        providers(config.spec())  # registered for clean-up; connects lazily, only if used
        return config

    return make


def database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def listener_process():
    """Start `listen_queues` (or the slow-dispatch variant) as a real process on the test database."""
    started: list[subprocess.Popen] = []

    def start(*args: str, slow: float | None = None) -> subprocess.Popen:
        env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "tests.settings"}
        if slow is None:
            command = [sys.executable, str(ROOT / "manage.py"), "listen_queues", *args]
        else:
            env["SLOW_DISPATCH_SECONDS"] = str(slow)
            command = [sys.executable, "-m", "tests.handlers.slow_listener", *args]
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def wait_until(predicate, timeout: float = 20, what: str = "condition"):
    """Poll the database (not a sleep-and-hope): return as soon as `predicate()` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def spawn_listener(tmp_path):
    """`listen_queues` as a real process on the test database, its output in a file: a pipe nobody reads
    fills up and stalls the process. `spawn(**env)` adds environment variables."""
    started: list[subprocess.Popen] = []

    def spawn(**extra_env: str) -> subprocess.Popen:
        env = {**os.environ, **extra_env, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "tests.settings"}
        log = open(tmp_path / f"listener-{len(started)}.log", "wb")  # noqa: SIM115 - the child holds it open
        process = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "listen_queues"], cwd=ROOT,
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        started.append(process)
        return process

    yield spawn
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)
