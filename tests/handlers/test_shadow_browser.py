"""A shadow twin's whole flow in Chromium at 1366 px (issue 24): Shadow copy on a live handler's page, the twin
edited in its form, real messages on the internal queue consumed by the listener while the original acts, the
comparison page, Promote's confirmation and the original after it. Each page is saved under var/screenshots/.

The listener runs in a thread of its own: the conditions' V8 sandbox refuses to run under the event loop
Playwright keeps in the test's thread (tests/browser.py)."""

import re
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import F
from playwright.sync_api import Page, expect

from handlers.listener import Listener
from handlers.models import ActionExecution, EventHandler, HandlerRevision
from queues.models import ReceivedMessage
from queues.publish import publish
from workflows.models import Workflow

from ..workflows.conftest import register, shipping_definition
from .seeds import START_SHIPPING
from .test_dispatch import handler

pytestmark = pytest.mark.django_db(transaction=True)
NAME = START_SHIPPING["name"]
TWIN = f"{NAME}__shadow"
MINUTE = timedelta(minutes=1)
ADDRESS = {"street": "1 Main St", "city": "Paris", "zip": "75001"}


@pytest.fixture
def original(make_config):
    config = make_config("conductor")
    register(shipping_definition())
    return handler(START_SHIPPING, event=config.event)


def deliver(event: str, payloads: dict[str, dict]) -> None:
    """Publish and consume in a thread (see the module's docstring), until every message is acknowledged."""
    failure: list[BaseException] = []

    def run() -> None:
        listener = Listener(relay=False)
        try:
            for message_id, payload in payloads.items():
                publish(event, payload, message_id=message_id)
            for _ in range(40):
                listener.run_once(wait=0.2)
                if ReceivedMessage.objects.filter(outcome="ACKNOWLEDGED").count() >= len(payloads):
                    return
            raise AssertionError("the listener did not consume the messages")
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            failure.append(exc)
        finally:
            listener.close()
            connection.close()

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(60)
    assert not worker.is_alive() and not failure, failure


def counts(page: Page) -> dict[str, str]:
    cells = page.locator("#shadow-counts td[data-count]")
    return {cells.nth(i).get_attribute("data-count"): cells.nth(i).inner_text() for i in range(cells.count())}


def fits(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_a_twin_is_copied_edited_watched_compared_and_promoted_in_the_browser(original, logged_in_page: Page,
                                                                              screenshot):
    page = logged_in_page
    page.goto(f"/admin/handlers/eventhandler/{original.pk}/change/")
    page.click("#shadow-copy")
    page.wait_for_url(re.compile(r"/admin/handlers/eventhandler/\d+/change/$"))
    twin = EventHandler.objects.get(name=TWIN)
    assert page.url.endswith(f"/eventhandler/{twin.pk}/change/")
    expect(page.locator("#shadow-note")).to_contain_text(f"Shadow twin of {NAME}")
    expect(page.locator("#id_mode")).to_have_value("shadow")
    screenshot(page, "twin-copied")

    # Edit the twin: VIP customers only.
    page.fill("#id_condition", "$.customer.vip == true")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist .success")).to_be_visible()
    twin.refresh_from_db()
    assert (twin.condition, twin.mode, twin.shadow_of_id) == ("$.customer.vip == true", "shadow", original.pk)

    deliver(original.event, {f"order-{n}": {"customer": {"name": f"c{n}", "vip": n == 0, "address": ADDRESS}}
                             for n in range(3)})
    assert Workflow.objects.count() == 3  # the original acted on all three; the twin ran nothing
    assert ActionExecution.objects.filter(handler_name=TWIN, status="SHADOW").count() == 3

    # The overview (which counts up to the start of its own second: the records are moved a minute back): the
    # twin's row is marked, and its decisions are no match.
    ReceivedMessage.objects.update(received_at=F("received_at") - MINUTE)
    ActionExecution.objects.update(created_at=F("created_at") - MINUTE, finished_at=F("finished_at") - MINUTE)
    page.goto("/admin/")
    expect(page.locator(f'#handler-table tr[data-handler="{NAME}"] td[data-col="matched"]')).to_have_text("3")
    twin_row = page.locator(f'#handler-table tr[data-handler="{TWIN}"]')
    expect(twin_row.locator("td.name").first).to_contain_text("shadow")
    expect(twin_row.locator('td[data-col="matched"]')).to_have_text("0")
    screenshot(page, "overview")
    page.goto("/admin/handlers/eventhandler/")
    expect(page.locator("#result_list")).to_contain_text("shadow")
    assert fits(page)
    screenshot(page, "handler-list")
    page.goto(f"/admin/handlers/actionexecution/?handler_name={TWIN}")
    expect(page.locator("#result_list tbody tr")).to_have_count(3)
    screenshot(page, "twin-executions")

    page.goto(f"/admin/handlers/eventhandler/{twin.pk}/change/")
    page.click("#shadow-compare")
    expect(page.locator("h1")).to_contain_text(f"{TWIN} against {NAME}")
    assert counts(page) == {"compared": "3", "twin_only": "0", "original_only": "2", "inputs": "0"}
    expect(page.locator("#shadow-differences tbody tr")).to_have_count(2)
    expect(page.locator('#shadow-differences tr[data-message="order-1"]')).to_contain_text(
        "matched by the original only")
    assert fits(page)
    screenshot(page, "compare")

    page.click("text=Promote…")
    expect(page.locator("h1")).to_contain_text(f"Promote {TWIN} into {NAME}?")
    expect(page.locator("#content-main pre")).to_contain_text('+  "condition": "$.customer.vip == true"')
    screenshot(page, "promote-confirm")
    page.click("#shadow-promote-confirm")
    page.wait_for_url(re.compile(rf"/eventhandler/{original.pk}/change/$"))
    expect(page.locator(".messagelist .success")).to_contain_text(f"Promoted “{TWIN}” into “{NAME}”")
    expect(page.locator("#id_condition")).to_have_value("$.customer.vip == true")
    screenshot(page, "promoted")
    assert not EventHandler.objects.filter(name=TWIN).exists()
    assert list(HandlerRevision.objects.filter(handler_name=NAME).order_by("number").values_list("source", flat=True)) \
        == ["test", "promote"]
