"""The admin's backtest in Chromium at 1366 px: a condition typed into the handler form and backtested
unsaved, the result page it opens, and the progress bar of a long one moving while its task runs, until the
page shows the result by itself. Each page is saved under var/screenshots/.

The browser is Debian's Chromium (`/usr/bin/chromium`) driven by Playwright, never Playwright's own
downloads. (The fixtures here are this module's own, for now: tests/browser.py, the admin overview's
shared ones, has not landed yet.) Playwright keeps an asyncio loop running in the test's thread, under
which neither Django's ORM (hence DJANGO_ALLOW_ASYNC_UNSAFE for the test) nor the conditions' V8 sandbox
will run: the backtest task the test drives runs in a thread of its own, as a worker would.
"""

import re
import threading
import time
from pathlib import Path
from unittest import mock

import pytest
from django.db import connection
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.signing import SignedPackage
from playwright.sync_api import Page, expect, sync_playwright

from handlers import backtests
from handlers.models import Backtest, EventHandler, HandlerRevision
from handlers.tasks import run_backtest

from ..workflows.conftest import live_api  # noqa: F401 - a fixture
from .test_backtest import ORDERS, traffic  # noqa: F401 - a fixture
from .test_dispatch import handler

pytestmark = pytest.mark.django_db(transaction=True)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.fixture
def saved(traffic):  # noqa: F811 - (the stored messages first, and the handler before the browser's loop runs)
    return handler(ORDERS)


@pytest.fixture
def page(saved, live_api, monkeypatch, django_user_model) -> Page:  # noqa: F811
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    django_user_model.objects.create_superuser(username="ops", password="pw-ops-browser", email="")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=live_api.url,
                                      locale="en-GB", timezone_id="UTC")
        context.set_default_timeout(15_000)
        tab = context.new_page()
        tab.goto("/admin/login/")
        tab.fill("#id_username", "ops")
        tab.fill("#id_password", "pw-ops-browser")
        tab.click("input[type=submit]")
        tab.wait_for_url(re.compile(r"/admin/$"))
        yield tab
        browser.close()


@pytest.fixture
def screenshot(request):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    test = re.sub(r"\W+", "-", request.node.name).strip("-")

    def take(page: Page, name: str, full_page: bool = True) -> None:
        page.wait_for_load_state()
        page.screenshot(path=str(SCREENSHOTS / f"{test}-{name}.png"), full_page=full_page)

    return take


def figures(page: Page, table: str = "backtest-totals") -> dict[str, str]:
    """A table of counts as {heading: count}."""
    rows = page.locator(f"#{table} tr")
    return {rows.nth(i).locator("th").inner_text(): rows.nth(i).locator("td").first.inner_text()
            for i in range(rows.count())}


def test_a_condition_typed_into_the_form_is_backtested_unsaved_and_its_result_page_opens(page: Page, saved,
                                                                                         screenshot):
    revisions = HandlerRevision.objects.count()
    page.goto(f"/admin/handlers/eventhandler/{saved.pk}/change/")
    page.fill("#id_condition", "$.amount > 20")
    screenshot(page, "form")
    page.locator(".submit-row input.backtest").last.click()
    page.wait_for_url(re.compile(r"/admin/handlers/backtest/\d+/change/$"))
    expect(page.locator(".backtest-what")).to_contain_text("An unsaved draft of big_dutch_orders")
    assert figures(page) == {"Messages": "6", "Matched": "4", "Skipped": "2", "Failed": "0"}
    assert figures(page, "backtest-difference") == {"Newly matched": "2", "No longer matched": "1",
                                                    "Changed action inputs": "0"}
    expect(page.locator("h3", has_text="No longer matched (1)")).to_be_visible()
    expect(page.locator("#backtest-progress")).to_have_count(0)
    screenshot(page, "result")
    screenshot(page, "result-first-screen", full_page=False)
    assert EventHandler.objects.get().condition == ORDERS["condition"]  # tried, not saved
    assert HandlerRevision.objects.count() == revisions

    page.locator(".backtest-samples a", has_text="m-3").first.click()  # a sample opens its message
    expect(page).to_have_url(re.compile(r"/admin/queues/receivedmessage/\d+/change/$"))


def test_a_long_backtest_shows_its_progress_bar_moving_and_then_its_result(page: Page, saved, screenshot,
                                                                           settings, monkeypatch):
    settings.BACKTEST_INLINE_MAX = 1
    page.goto(f"/admin/handlers/eventhandler/{saved.pk}/change/")
    with mock.patch.object(Conf, "SYNC", False):  # queued for a worker, not run in the request
        page.locator(".submit-row input.backtest").first.click()
        page.wait_for_url(re.compile(r"/admin/handlers/backtest/\d+/change/$"))
        broker = get_broker()
        package_id, package = broker.dequeue()[0]
        broker.acknowledge(package_id)
    bar = page.locator("#backtest-progress")
    expect(bar).to_have_attribute("value", "0")
    expect(page.locator("#backtest-running")).to_contain_text("0 of 6 messages")
    screenshot(page, "scheduled")

    # The worker: a message a chunk, its progress written after each, slowly enough to watch.
    monkeypatch.setattr(backtests, "CHUNK", 1)
    monkeypatch.setattr(backtests, "PROGRESS_EVERY_SECONDS", 0)
    written = Backtest.record_progress
    halfway = threading.Event()

    def slowly(backtest, done, result):
        written(backtest, done, result)
        if done == 3:
            halfway.set()
        time.sleep(1.5 if done == 3 else 0.2)

    monkeypatch.setattr(Backtest, "record_progress", slowly)
    def run_in_thread(*args) -> None:
        try:
            run_backtest(*args)
        finally:
            connection.close()  # (a thread's connection outlives it otherwise: later tests count connections)

    worker = threading.Thread(target=run_in_thread, args=SignedPackage.loads(package)["args"])
    worker.start()
    try:
        assert halfway.wait(15)
        expect(page.locator("#backtest-progress-text")).to_have_text(re.compile(r"^[3-5] of 6 messages$"))
        expect(page.locator("#backtest-status")).to_have_text("in progress")
        expect(page.locator('#backtest-totals [data-count="total"]')).to_have_text(re.compile(r"^[3-5]$"))
        screenshot(page, "running")
    finally:
        worker.join(30)
    expect(page.locator("#backtest-progress")).to_have_count(0, timeout=10_000)  # the page reloads by itself
    assert figures(page) == {"Messages": "6", "Matched": "3", "Skipped": "3", "Failed": "0"}
    screenshot(page, "finished")
