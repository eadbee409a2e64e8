"""A real browser for the admin's pages: Debian's Chromium (`/usr/bin/chromium`, installed by
tests/services.sh) driven by Playwright for Python. Playwright's own browser downloads are never used, and a
test never skips because the browser is missing: it fails, saying how to install it.

Fixtures, for any test that opens a page (the overview's are the first):
- `browser`: a headless Chromium for one test;
- `site`: the live server, left with no request thread holding the database when the test ends;
- `page`: a 1366 × 768 tab (a common laptop) whose relative URLs go to the live server;
- `logged_in_page`: that tab, logged in to the admin through its login form as a superuser (`ops`);
- `screenshot(page, name)`: the whole page saved as var/screenshots/<test>-<name>.png, 1366 px wide.

Playwright's sync API keeps an asyncio event loop running in the test's thread while the browser is open,
and Django refuses ORM calls from a thread with a running loop (SynchronousOnlyOperation). The test's ORM
calls (creating records, asserting on them, running the listener) are plain synchronous code that only
shares the thread with that loop, so `browser` sets DJANGO_ALLOW_ASYNC_UNSAFE for its test alone. That is
also why the browser lives for one test, not the session: a session-wide one would keep the loop running,
and the setting on, through every later test of the run. Code that refuses to run under a loop whatever the
setting (the JavaScript conditions' sandbox, so the listener) runs before the browser starts: in a fixture
the test lists before its page.
"""

import re
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import Browser, Page, sync_playwright

from .workflows.conftest import end_request_threads

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1366, "height": 768}
SCREENSHOTS = Path(__file__).resolve().parents[1] / "var" / "screenshots"
USERNAME, PASSWORD = "ops", "pw-ops-browser"


@pytest.fixture
def browser(monkeypatch) -> Browser:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: run `bash tests/services.sh` (apt-get install chromium)")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def site(live_server):
    """Request threads close their connection after each request, and the threads of connections the browser
    kept alive are ended at teardown (tests.workflows.conftest.live_api says why)."""
    saved = connections.settings["default"]["CONN_MAX_AGE"]
    connections.settings["default"]["CONN_MAX_AGE"] = 0
    yield live_server
    end_request_threads()
    connections.settings["default"]["CONN_MAX_AGE"] = saved


@pytest.fixture
def page(site, browser) -> Page:
    # `site` before `browser`: the browser closes (and drops its kept-alive connections) first.
    context = browser.new_context(viewport=VIEWPORT, base_url=site.url, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def logged_in_page(page: Page, django_user_model, screenshot) -> Page:
    django_user_model.objects.create_superuser(username=USERNAME, password=PASSWORD, email="")
    page.goto("/admin/login/")
    screenshot(page, "login")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))
    return page


@pytest.fixture
def screenshot(request):
    """`screenshot(page, name)`: the full page, 1366 px wide, as var/screenshots/<test>-<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    test = re.sub(r"\W+", "-", request.node.name).strip("-")

    def take(page: Page, name: str) -> Path:
        path = SCREENSHOTS / f"{test}-{name}.png"
        page.wait_for_load_state()  # (after a click, the new page may still be laying out)
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
