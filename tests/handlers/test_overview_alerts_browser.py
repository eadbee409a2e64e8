"""Alerts in Chromium at 1366 px: real traffic on the internal queue, consumed by the listener one step at a time,
makes two rules fire; the evaluation opens their alerts (and tells the mail outbox); then, in the browser, the
overview shows them at its top and the header counts them, one is acknowledged from the overview and the other
silenced from its own page, each with a reason; the state changes are checked in the database and on the
alert's page; and the clock moved past the silence brings the one back and resolves the other. Each page is
saved under var/screenshots/."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone
from playwright.sync_api import Page, expect

from handlers.alerts import evaluate_alerts
from handlers.listener import Listener
from handlers.models import Alert, RuleKind
from queues.models import ReceivedMessage
from queues.publish import publish

from ..browser import USERNAME
from ..workflows.conftest import one_task, register
from .test_overview_browser import start_workflow

pytestmark = pytest.mark.django_db(transaction=True)
SILENT, FAILING = "start_order", "notify_ledger"


@pytest.fixture
def traffic(make_config, settings):
    """Orders on the internal queue: four refunds, which `start_order` (orders only) never matches, and whose
    `notify_ledger` action fails every time (its workflow does not exist). Consumed by a real listener, whose
    heartbeat stays alive. (Listed before the page: the listener runs before the browser's event loop does.)"""
    settings.ALERTS_WEBHOOK_URL, settings.ALERTS_EMAILS = "", ["ops@example.com"]
    orders = make_config("conductor")
    start_workflow(SILENT, orders.event, register(one_task("HUMAN")).name, condition="$.kind == 'order'")
    start_workflow(FAILING, orders.event, "no_such_workflow")
    for n in range(4):
        publish(orders.event, {"kind": "refund", "n": n})
    listener = Listener(relay=False)
    for _ in range(20):
        listener.run_once(wait=0.2)
        if ReceivedMessage.objects.count() == 4:
            break
    assert ReceivedMessage.objects.count() == 4
    yield orders
    listener.close()


def row(page: Page, subject: str):
    return page.locator("#alert-table tr.alert", has=page.locator(f'td[data-col="subject"] a[title="{subject}"]'))


def changes(alert: Alert) -> list[tuple]:
    return list(alert.events.values_list("from_state", "to_state", "by_name", "reason"))


def test_alerts_opened_by_real_traffic_are_acknowledged_and_silenced_in_the_browser(
        traffic, logged_in_page: Page, screenshot):
    page = logged_in_page
    opened_at = timezone.now()
    assert evaluate_alerts(opened_at)["opened"] == 2
    silent, failing = Alert.objects.get(kind=RuleKind.HANDLER_SILENT), Alert.objects.get(kind=RuleKind.FAILURE_RATE)
    assert (silent.subject, failing.subject) == (SILENT, FAILING)
    assert sorted(m.subject.split(": ")[1] for m in mail.outbox) == [
        f"Handler failure rate above a threshold on {FAILING}",
        f"Handler silent while its event receives messages on {SILENT}"]

    # The overview: both at its top, counted in the header, each with its rule, subject, since and value.
    page.goto("/admin/")
    expect(page.locator("#site-name .open-alerts")).to_have_text("2 open alerts")
    expect(page.locator("#alert-table tr.alert.open")).to_have_count(2)
    expect(row(page, SILENT).locator('td[data-col="rule"]')).to_have_text("Handler silent")
    expect(row(page, FAILING).locator('td[data-col="rule"]')).to_have_text("Failure rate")
    expect(row(page, FAILING).locator('td[data-col="now"]')).to_contain_text(
        "4 of 4 executions failed in 15 min (100% > 50%)")
    expect(row(page, SILENT).locator('td[data-col="now"]')).to_contain_text("received 4 message(s)")
    expect(row(page, SILENT).locator('td[data-col="since"]')).to_have_text(re.compile(r"just now|\d+ s ago"))
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1366, "the overview is wider than 1366 px"
    screenshot(page, "overview-two-open")

    # Acknowledged from the overview, with a reason: back on the overview, counted no more.
    before = timezone.now()
    row(page, FAILING).locator("input[name=reason]").fill("registering the ledger workflow")
    row(page, FAILING).get_by_role("button", name="Acknowledge").click()
    expect(page.locator(".messagelist .success")).to_contain_text(f"{failing}: acknowledged.")
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.locator("#site-name .open-alerts")).to_have_text("1 open alert")
    expect(row(page, FAILING)).to_have_class(re.compile(r"\backnowledged\b"))
    state = row(page, FAILING).locator('td[data-col="state"]')
    expect(state).to_contain_text(re.compile(rf"(just now|\d+ s ago) · {USERNAME}"))
    expect(state).to_contain_text("“registering the ledger workflow”")
    screenshot(page, "overview-one-acknowledged")
    failing.refresh_from_db()
    event = failing.events.last()
    assert (failing.state, failing.reason) == ("acknowledged", "registering the ledger workflow")
    assert (event.by, event.by_name) == (get_user_model().objects.get(username=USERNAME), USERNAME)
    assert before <= event.at <= timezone.now()

    # Silenced for four hours from its own page, one click from the overview.
    row(page, SILENT).locator("a.badge").click()
    expect(page).to_have_url(re.compile(rf"/admin/handlers/alert/{silent.pk}/change/$"))
    screenshot(page, "alert-page-open")
    page.locator("#alert-state input[name=reason]").fill("producer deploy tonight renames the field")
    page.locator("#alert-state select[name=minutes]").select_option(label="4 hours")
    before = timezone.now()
    page.locator("#alert-state").get_by_role("button", name="Silence").click()
    expect(page.locator(".messagelist .success")).to_contain_text(f"{silent}: silenced until")
    expect(page).to_have_url(re.compile(rf"/admin/handlers/alert/{silent.pk}/change/$"))
    expect(page.locator("div.field-state")).to_contain_text("Silenced")
    events = page.locator("#events-group tbody tr").filter(has_text="Silenced")
    expect(events.first).to_contain_text("producer deploy tonight renames the field")
    expect(events.first).to_contain_text(USERNAME)
    screenshot(page, "alert-page-silenced")
    silent.refresh_from_db()
    event = silent.events.last()
    assert (silent.state, silent.reason, event.by_name) == ("silenced", "producer deploy tonight renames the field",
                                                           USERNAME)
    assert before <= event.at <= timezone.now() and silent.silenced_until == event.at + timedelta(hours=4)

    # The overview: nothing open, so no count in the header; both still shown, marked.
    page.goto("/admin/")
    expect(page.locator("#site-name .open-alerts")).to_have_count(0)
    expect(page.locator("#alert-table tr.alert")).to_have_count(2)
    expect(row(page, SILENT)).to_have_class(re.compile(r"\bsilenced\b"))
    local = timezone.localtime(silent.silenced_until)
    expect(row(page, SILENT).locator('td[data-col="state"]')).to_contain_text(
        f"until {local.day} {local:%b %H:%M} · {USERNAME}")
    screenshot(page, "overview-acknowledged-and-silenced")

    # Four hours and a minute later: the silence is over and the handler still never matches, so it is open
    # again (telling nobody twice); the failures have left the 15-minute window, so that alert resolved.
    evaluate_alerts(opened_at + timedelta(hours=4, minutes=1))
    page.goto("/admin/")
    expect(page.locator("#site-name .open-alerts")).to_have_text("1 open alert")
    expect(page.locator("#alert-table tr.alert")).to_have_count(1)
    expect(row(page, SILENT)).to_have_class(re.compile(r"\bopen\b"))
    screenshot(page, "overview-after-four-hours")
    assert changes(silent) == [("", "open", "eventhub", ""),
                               ("open", "silenced", USERNAME, "producer deploy tonight renames the field"),
                               ("silenced", "open", "eventhub", "silence ended")]
    assert changes(failing) == [("", "open", "eventhub", ""),
                                ("open", "acknowledged", USERNAME, "registering the ledger workflow"),
                                ("acknowledged", "resolved", "eventhub", "condition cleared")]
    assert [m.subject.split(":")[0] for m in mail.outbox] == ["Eventhub alert opened"] * 2 + ["Eventhub alert resolved"]

    page.goto(f"/admin/handlers/alert/{failing.pk}/change/")
    expect(page.locator("div.field-state")).to_contain_text("Resolved")
    expect(page.locator("#alert-state")).to_have_count(0)  # nothing left to acknowledge
    screenshot(page, "alert-page-resolved")
