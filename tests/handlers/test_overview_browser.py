"""The overview and the lists it opens, in Chromium at 1366 px, after real traffic: messages published to
the internal queue and to RabbitMQ, consumed by the listener one step at a time. Each page visited is saved
under var/screenshots/."""

import re

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from handlers.listener import Listener
from handlers.models import ActionExecution
from queues.models import QuarantinedMessage, QueueConfig, ReceivedMessage
from queues.publish import publish, publish_raw

from ..workflows.conftest import one_task, register
from .test_dispatch import handler

pytestmark = pytest.mark.django_db(transaction=True)
Outcome = ReceivedMessage.Outcome


def start_workflow(name: str, event: str, workflow: str, condition: str | None = None):
    return handler({"name": name, "event": event, "active": True, "condition": condition, "actions": [
        {"action": "start_workflow", "start_workflow": {"name": workflow, "input": {"n": "${n}"}}}]})


@pytest.fixture
def traffic(make_config):
    """Two queues with real messages consumed: orders on the internal queue (three matched, two skipped by the
    condition), payments on RabbitMQ (two started, two whose second handler fails for good, one unreadable
    body quarantined). The listener's heartbeats stay alive. (A test lists it before its page: the listener
    runs before the browser's event loop does, which JavaScript conditions refuse to run under.)"""
    workflow = register(one_task("HUMAN")).name
    orders, payments = make_config("conductor"), make_config("amqp_queue")
    start_workflow("start_order", orders.event, workflow, condition="$.kind == 'order'")
    start_workflow("start_payment", payments.event, workflow)
    start_workflow("notify_ledger", payments.event, "no_such_workflow", condition="$.n > 1")
    for n in range(5):
        publish(orders.event, {"kind": "order" if n < 3 else "refund", "n": n})
    for n in range(4):
        publish(payments.event, {"n": n})
    publish_raw(payments.event, "this is not JSON")
    listener = Listener(relay=False)
    for _ in range(20):
        listener.run_once(wait=0.2)
        if ReceivedMessage.objects.count() == 10:
            break
    assert ReceivedMessage.objects.count() == 10
    yield orders, payments
    listener.close()


def cells(page: Page, table: str, key: str, value: str) -> dict[str, str]:
    row = page.locator(f'#{table} tr[data-{key}="{value}"]')
    columns = row.locator("td[data-col]")
    return {columns.nth(i).get_attribute("data-col"): columns.nth(i).inner_text().strip()
            for i in range(columns.count())}


def chart_total(page: Page, kind: str, key: str, css: str) -> int:
    """The sum of a chart's bars of one kind, as drawn (each bar's rect carries its count)."""
    rects = page.locator(f'.chart-card[data-{kind}="{key}"] svg rect.{css}')
    return sum(int(rects.nth(i).get_attribute("data-value")) for i in range(rects.count()))


def test_the_overview_shows_real_traffic_as_the_records_have_it_and_a_number_opens_its_list(
        traffic, logged_in_page: Page, screenshot):
    orders, payments = traffic
    page = logged_in_page
    page.goto("/admin/")
    expect(page.locator("h1")).to_have_text("Is everything flowing?")
    screenshot(page, "overview")

    for config in (orders, payments):
        records = ReceivedMessage.objects.filter(event=config.event)
        failed = records.filter(outcome=Outcome.ACKNOWLEDGED, executions__status="FAILED").distinct().count()
        assert cells(page, "queue-table", "event", config.event) | {"last_poll": "", "last_error": ""} == {
            "listeners": "1", "recent": str(records.count()), "in": str(records.count()),
            "acknowledged": str(records.filter(outcome=Outcome.ACKNOWLEDGED).count() - failed),
            "failed": str(failed), "quarantined": str(QuarantinedMessage.objects.filter(event=config.event).count()),
            "open_quarantine": str(QuarantinedMessage.objects.filter(event=config.event, status="QUARANTINED").count()),
            "depth": "0" if config.kind == "conductor" else cells(page, "queue-table", "event", config.event)["depth"],
            "dead": cells(page, "queue-table", "event", config.event)["dead"],
            "oldest": "—", "last_poll": "", "last_error": ""}
    assert cells(page, "queue-table", "event", payments.event)["failed"] == "2"
    assert cells(page, "queue-table", "event", payments.event)["quarantined"] == "1"
    for name in ("start_order", "start_payment", "notify_ledger"):
        records = ActionExecution.objects.filter(handler_name=name, duplicate_of=None)
        shown = cells(page, "handler-table", "handler", name)
        assert (shown["matched"], shown["skipped"], shown["failed"]) == (
            str(records.filter(index=0).count()), str(records.filter(index=-1, status="SKIPPED").count()),
            str(records.filter(status="FAILED").count())), name
        assert re.fullmatch(r"[\d.]+ (ms|s)", shown["p50"]) and re.fullmatch(r"[\d.]+ (ms|s)", shown["p99"]), shown
    assert cells(page, "handler-table", "handler", "start_order")["skipped"] == "2"

    # The charts draw the same records: every message of the hour in its queue's bars, failures in red.
    assert chart_total(page, "queue", orders.event, "ok") == 5
    assert chart_total(page, "queue", payments.event, "failed") == 2
    assert chart_total(page, "queue", payments.event, "quarantined") == 1
    assert chart_total(page, "handler", "notify_ledger", "failed") == 2

    page.locator(f'#queue-table tr[data-event="{payments.event}"] td[data-col="failed"] a').click()
    expect(page.locator("#changelist")).to_be_visible()
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first.locator("td.field-outcome_shown")).to_contain_text("Actions failed")
    expect(page.locator("#changelist-filter li.selected", has_text="Acknowledged, actions failed")).to_have_count(1)
    screenshot(page, "failed-messages")

    page.goto("/admin/?range=week")
    expect(page.locator(".tabs a.selected")).to_have_text("Last week")
    assert chart_total(page, "queue", orders.event, "ok") == 5
    screenshot(page, "overview-week")


def test_every_list_fits_a_1366_px_screen_and_quarantine_links_both_ways(traffic, logged_in_page: Page, screenshot):
    orders, payments = traffic
    page = logged_in_page
    QueueConfig.objects.filter(pk=orders.pk).update(  # (a long error is what used to push the last columns off)
        last_error="ProviderError: database queue conductor:orders: could not connect to server: Connection refused "
                   "(is the server running on host 127.0.0.1 and accepting TCP/IP connections on port 5432?)",
        last_error_at=timezone.now())
    page.goto("/admin/")
    screenshot(page, "overview-with-an-error")
    expect(page.locator(f'#queue-table tr[data-event="{orders.event}"] .dot.error')).to_have_count(1)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1366, "the overview is wider than 1366 px"
    for model in ("queues/receivedmessage", "handlers/actionexecution", "queues/quarantinedmessage",
                  "queues/queueconfig", "queues/listenerheartbeat", "handlers/eventhandler"):
        page.goto(f"/admin/{model}/")
        screenshot(page, model.split("/")[1])
        overflow = page.evaluate("() => { const r = document.querySelector('#changelist .results');"
                                 " return r.scrollWidth - r.clientWidth; }")
        assert overflow <= 0, f"{model}: the list is {overflow} px wider than the page"
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 1366, model
    # No ✖ that only meant "not a replay"; message ids on one line.
    page.goto("/admin/queues/receivedmessage/")
    expect(page.locator("#result_list img[alt='False']")).to_have_count(0)
    heights = page.locator("#result_list .eh-id, #result_list td.field-received time").evaluate_all(
        "shown => shown.map(s => s.getBoundingClientRect().height)")
    assert len(heights) == 20 and max(heights) < 20, heights  # one line each

    # Quarantine: open entries only by default; the entry and its message point at each other.
    entry = QuarantinedMessage.objects.get(event=payments.event)
    page.goto("/admin/queues/quarantinedmessage/")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    page.locator("#result_list tbody tr a").first.click()
    page.get_by_role("link", name="the delivery quarantined").click()
    expect(page.locator("div.field-quarantine")).to_contain_text("its quarantine entry")
    screenshot(page, "quarantined-message")
    page.get_by_role("link", name="its quarantine entry").click()
    expect(page).to_have_url(re.compile(rf"/quarantinedmessage/{entry.pk}/change/$"))
    screenshot(page, "quarantine-entry")
