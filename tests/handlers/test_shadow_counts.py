"""Shadow decisions never count as work done (issue 24): not in a message's outcome, the overview's matched and
failed numbers and their lists, the silent-handler alert or the last-match gauge; the listener's execution
counter has them under status SHADOW."""

import uuid
from datetime import timedelta

import pytest
from django.db.models import F
from django.test import override_settings
from prometheus_client import REGISTRY

from eventhub.lib import metrics
from handlers import overview
from handlers.alerts import evaluate_alerts, firing_now
from handlers.models import ActionExecution, Alert, EventHandler, RuleKind
from queues.models import ReceivedMessage

from ..test_metrics import TOKEN, samples
from ..workflows.conftest import register, shipping_definition
from .seeds import START_SHIPPING
from .test_dispatch import dispatch, handler, message
from .test_overview import INDEX, numbers, result_count

pytestmark = pytest.mark.django_db
EVENT = "conductor:shipping_start"
MINUTE = timedelta(minutes=1)
CUSTOMER = {"customer": {"name": "Ada", "address": {"street": "1 Main St", "city": "Paris", "zip": "75001"}}}


@pytest.fixture
def traffic():
    """A live handler and its shadow twin over the same three messages; the twin's condition fails on one and its
    input cannot be resolved on none; the live one starts three workflows."""
    register(shipping_definition())
    handler(START_SHIPPING, event=EVENT)
    handler(START_SHIPPING, event=EVENT, name="ship_shadow", mode="shadow", condition="$.customer.name.x.y")
    handler(START_SHIPPING, event=EVENT, name="all_shadow", mode="shadow")
    dispatch(EVENT, *(message(CUSTOMER) for _ in range(3)))
    ReceivedMessage.objects.update(outcome=ReceivedMessage.Outcome.ACKNOWLEDGED)  # (as the listener does next)
    # A minute back: the overview counts up to the start of its own second.
    ReceivedMessage.objects.update(received_at=F("received_at") - MINUTE)
    ActionExecution.objects.update(created_at=F("created_at") - MINUTE, started_at=F("started_at") - MINUTE,
                                   finished_at=F("finished_at") - MINUTE)


def test_the_overview_counts_no_shadow_decision_as_a_match_or_failure(admin_client, traffic):
    assert ActionExecution.objects.filter(status="SHADOW").count() == 6
    html = admin_client.get(INDEX).content.decode()
    row = numbers(html, "handler", "all_shadow")
    assert (row["matched"], row["skipped"], row["failed"], row["last_match"]) == ("0", "0", "0", "none kept")
    assert numbers(html, "handler", "ship_shadow")["failed"] == "0"
    assert numbers(html, "handler", START_SHIPPING["name"])["matched"] == "3"
    assert html.count('title="In shadow mode') == 2
    built = overview.build()
    [queue] = [row for row in built.queues if row.config.event == EVENT]
    assert (queue.acknowledged.value, queue.failed.value) == (3, 0)
    rows = {row.name: row for row in built.handlers}
    assert rows["all_shadow"].chart.totals["matched"].value == 0
    assert rows["ship_shadow"].chart.totals["failed"].value == 0
    assert rows[START_SHIPPING["name"]].chart.totals["matched"].value == 3
    # The lists behind the numbers say the same.
    assert result_count(admin_client, rows["all_shadow"].matched.url) == 0
    assert result_count(admin_client, rows[START_SHIPPING["name"]].matched.url) == 3


def test_a_message_only_a_shadow_handler_failed_on_reads_acknowledged(admin_client, traffic):
    html = admin_client.get("/admin/queues/receivedmessage/").content.decode()
    assert "Actions failed</span>" not in html and html.count(">Acknowledged</span>") == 3


def test_the_silent_handler_alert_leaves_shadow_handlers_out_and_shadow_records_do_not_quiet_it():
    register(shipping_definition())
    handler(START_SHIPPING, event=EVENT, name="watching", mode="shadow")
    live = handler(START_SHIPPING, event=EVENT, name="was_shadow", mode="shadow")
    dispatch(EVENT, message(CUSTOMER), message(CUSTOMER))
    assert ActionExecution.objects.filter(status="SHADOW").count() == 4
    assert not firing_now(ReceivedMessage.objects.latest("received_at").received_at)  # shadow ones are not checked
    live.mode = "live"
    live.save()
    evaluate_alerts()  # its shadow records are no match: it is silent while its event receives messages
    assert Alert.objects.get(kind=RuleKind.HANDLER_SILENT).subject == "was_shadow"


@override_settings(METRICS_TOKEN=TOKEN)
def test_the_last_match_gauge_reads_no_shadow_record(client):
    register(shipping_definition())
    live = handler(START_SHIPPING, event=EVENT, mode="shadow")
    dispatch(EVENT, message(CUSTOMER))
    EventHandler.objects.filter(pk=live.pk).update(mode="live")
    found = samples(client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).content.decode())
    assert not [key for key in found if key[0] == "eventhub_handler_seconds_since_last_match"]
    dispatch(EVENT, message(CUSTOMER))
    found = samples(client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).content.decode())
    assert [key for key in found if key[0] == "eventhub_handler_seconds_since_last_match"] == [
        ("eventhub_handler_seconds_since_last_match", ("event", EVENT), ("handler", START_SHIPPING["name"]))]


def test_the_execution_counter_has_shadow_decisions_under_their_own_status(monkeypatch):
    monkeypatch.setattr(metrics, "_enabled", True)
    register(shipping_definition())
    name = f"counted_{uuid.uuid4().hex[:6]}"
    handler(START_SHIPPING, event=EVENT, name=name, mode="shadow")

    def value(status: str) -> float:
        return REGISTRY.get_sample_value("eventhub_action_executions_total", {"handler": name, "status": status}) or 0

    dispatch(EVENT, message(CUSTOMER), message(CUSTOMER))
    assert (value("SHADOW"), value("COMPLETED"), value("FAILED")) == (2, 0, 0)
