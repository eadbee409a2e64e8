"""The dry-run from real consumed and the lint warnings, in Chromium at 1366 px: messages consumed by the
listener, the dry-run page's picker (the latest message by default), its warnings, the handler list's paths
column and the warnings shown on save. Each page is saved under var/screenshots/."""

import json

import pytest
from playwright.sync_api import Page, expect

from handlers.models import EventHandler
from queues.models import ReceivedMessage

from .test_dispatch import handler
from .test_shapes import SIGNED, complete

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def docusign(consumed):  # (the listener runs before the browser's event loop)
    """Two real messages on the internal queue, the latest without workflowInstanceId, and a handler of them."""
    event = consumed(SIGNED)
    consumed({"status": "signed", "signer": {"email": "b@example.com"}})
    return handler(complete(event=event, email="${signer.email}"))


def test_the_dry_run_starts_from_the_latest_message_picks_another_and_warns(docusign, logged_in_page: Page,
                                                                             screenshot):
    page = logged_in_page
    first, latest = ReceivedMessage.objects.filter(event=docusign.event).order_by("received_at", "pk")
    page.goto(f"/admin/handlers/eventhandler/{docusign.pk}/dry-run/")
    picker = page.locator("#id_message")
    expect(picker).to_have_value(str(latest.pk))
    expect(picker.locator("option")).to_have_count(2)
    assert json.loads(page.locator("#id_payload").input_value()) == latest.payload
    expect(page.locator("#id_message_id")).to_have_value(latest.message_id)
    screenshot(page, "opened")

    page.click("input[value=Dry-run]")
    warnings = page.locator("#dry-run-warnings li")
    expect(warnings).to_have_count(2)
    expect(warnings.nth(0)).to_contain_text("${workflowInstanceId} resolved to nothing for this payload")
    expect(warnings.nth(1)).to_contain_text("would fail for this payload: workflowId resolved to None")
    expect(page.locator("#dry-run-result")).to_contain_text(latest.message_id)
    expect(page.locator(".errornote")).to_have_text("This action would fail with this input: workflowId resolved "
                                                    "to None: nothing in the message filled it in")
    screenshot(page, "latest-warned")

    picker.select_option(str(first.pk))  # (submits itself)
    page.wait_for_url(f"**/dry-run/?message={first.pk}")
    assert json.loads(page.locator("#id_payload").input_value()) == SIGNED
    page.click("input[value=Dry-run]")
    expect(page.locator("#dry-run-result")).to_contain_text(first.message_id)
    expect(page.locator("#dry-run-warnings")).to_have_count(0)
    expect(page.locator("#dry-run-no-warnings")).to_be_visible()
    expect(page.locator(".errornote")).to_have_count(0)
    assert '"workflowId": "wf-1"' in page.locator("#content-main pre").first.inner_text()
    screenshot(page, "first-clean")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366


def test_a_misspelled_path_is_warned_on_save_and_in_the_handler_list(docusign, logged_in_page: Page, screenshot):
    page = logged_in_page
    page.goto(f"/admin/handlers/eventhandler/{docusign.pk}/change/")
    actions = json.loads(page.locator("#id_actions").input_value())
    actions[0]["complete_task"]["workflowId"] = "${workflowInstnceId}"
    page.fill("#id_actions", json.dumps(actions, indent=2))
    page.click("input[name=_continue]")
    warning = page.locator("ul.messagelist li.warning")
    expect(warning).to_have_count(1)
    expect(warning).to_contain_text("${workflowInstnceId} reads workflowInstnceId, which no message sampled on")
    expect(warning).to_contain_text("did you mean workflowInstanceId?")
    screenshot(page, "saved-warned")

    page.goto("/admin/handlers/eventhandler/")
    expect(page.locator("td.field-lint_shown")).to_have_text("⚠ 1 unseen path")
    screenshot(page, "list")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366
    assert EventHandler.objects.get().actions[0]["complete_task"]["workflowId"] == "${workflowInstnceId}"
