"""Prometheus metrics and health probes: real messages through a broker, read back from the listener's
metrics port and the web's /metrics, equal to the records; credentials; probes."""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

from eventhub.lib import metrics, metrics_server
from handlers.listener import Listener
from handlers.models import ActionExecution
from queues.kinds import provider_for
from queues.models import QuarantinedMessage, ReceivedMessage
from workflows.models import Workflow

from .handlers.seeds import START_SHIPPING
from .handlers.test_dispatch import handler
from .workflows.conftest import register, shipping_definition

TOKEN = "scrape-secret"
ROOT = Path(__file__).resolve().parent.parent


def samples(text: str) -> dict[tuple, float]:
    """{(name, (label, value), ...): value} of a Prometheus text exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return found


def get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def listener_metrics(monkeypatch):
    """The listener's metrics on a free port, recording; yields (base URL, listener)."""
    monkeypatch.setattr(metrics, "_enabled", True)
    listener = Listener()
    server = metrics_server.serve(0, TOKEN, listener.unready, host="127.0.0.1")
    yield f"http://127.0.0.1:{server.server_port}", listener
    server.shutdown()
    listener.close()


@pytest.mark.django_db(transaction=True)
def test_the_listeners_metrics_count_real_messages_as_the_records_do(make_config, listener_metrics):
    base, listener = listener_metrics
    config = make_config("amqp_queue", max_deliveries=1)
    register(shipping_definition())
    handler(START_SHIPPING, event=config.event)
    handler({**START_SHIPPING, "name": "never", "condition": "$.customer.name == 'nobody'"}, event=config.event)
    before = samples(get(f"{base}/metrics", TOKEN)[1])
    provider = provider_for(config.spec())
    for n in range(5):
        provider.publish(json.dumps({"customer": {"name": f"c{n}", "address": {}}}), message_id=f"m-{n}")
    provider.publish("not json {", message_id="bad")
    provider.close()
    handled = 0
    for _ in range(10):
        handled += listener.run_once(wait=1)
        if handled >= 6:
            break

    status, text = get(f"{base}/metrics", TOKEN)
    assert status == 200
    after = samples(text)

    def delta(name: str, **labels) -> float:
        key = (name, *sorted(labels.items()))
        return after.get(key, 0.0) - before.get(key, 0.0)

    event = config.event
    acknowledged = ReceivedMessage.objects.filter(outcome="ACKNOWLEDGED").count()
    assert acknowledged == 5 and Workflow.objects.count() == 5
    assert delta("eventhub_messages_received_total", event=event, outcome="acknowledged") == acknowledged
    assert delta("eventhub_messages_received_total", event=event, outcome="quarantined") == \
        QuarantinedMessage.objects.count() == 1
    for name, status_ in ActionExecution.objects.values_list("handler_name", "status").distinct():
        expected = ActionExecution.objects.filter(handler_name=name, status=status_).count()
        assert delta("eventhub_action_executions_total", handler=name, status=status_) == expected
    assert delta("eventhub_condition_evaluations_total", event=event) == 5  # one handler has a condition
    assert delta("eventhub_receipt_to_record_seconds_count", event=event) == 6
    assert delta("eventhub_batch_size_sum", event=event) == 6


@pytest.mark.django_db(transaction=True)
def test_the_listeners_port_wants_the_token_and_answers_probes(listener_metrics):
    base, listener = listener_metrics
    assert get(f"{base}/metrics")[0] == 401
    assert get(f"{base}/metrics", "wrong")[0] == 401
    assert get(f"{base}/metrics", TOKEN)[0] == 200
    assert get(f"{base}/healthz") == (200, "ok\n")
    assert get(f"{base}/readyz") == (200, "ready\n")
    listener.stop.set()
    assert get(f"{base}/readyz") == (503, "stopping\n")


@pytest.mark.django_db
@override_settings(METRICS_TOKEN=TOKEN)
def test_the_webs_metrics_want_a_token_or_a_staff_session_and_read_the_database(client, admin_client):
    QuarantinedMessage.objects.create(event="conductor:q", message_id="m-1", reason="unreadable")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    by_token = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert by_token.status_code == 200
    found = samples(by_token.content.decode())
    assert found[("eventhub_quarantine_size", ("event", "conductor:q"))] == 1
    assert ("eventhub_http_requests_total", ("method", "GET"), ("status", "401"), ("view", "metrics")) in found
    assert admin_client.get("/metrics").status_code == 200


@pytest.mark.django_db
def test_healthz_needs_nothing_and_readyz_says_ready_whatever_the_host_probed(client):
    assert (client.get("/healthz").status_code, client.get("/healthz").content) == (200, b"ok\n")
    assert (client.get("/readyz").status_code, client.get("/readyz").content) == (200, b"ready\n")
    by_address = client.get("/readyz", HTTP_HOST="10.1.2.3:8000")  # (a probe by address: not in ALLOWED_HOSTS)
    assert (by_address.status_code, by_address.content) == (200, b"ready\n")


def test_readyz_answers_503_with_the_reason_when_the_database_is_unreachable():
    env = {**os.environ, "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nowhere", "DEBUG": "true",
           "DJANGO_SETTINGS_MODULE": "eventhub.settings"}
    script = ("import django; django.setup(); from django.test import Client; "
              "r = Client().get('/readyz'); print(r.status_code, r.content.decode().strip())")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    status, _, reason = out.stdout.strip().partition(" ")
    assert status == "503", out.stderr
    assert reason.startswith("database unreachable:") and "127.0.0.1" in reason
