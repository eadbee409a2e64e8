"""The admin's backtest: the handler form's *Backtest* button runs what the form holds, unsaved, and leads
to a result page (a URL to share) with a progress bar while a long one runs as a task."""

import json
import re
from unittest import mock

import pytest
from django.urls import reverse
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.signing import SignedPackage

from handlers.models import ActionExecution, Backtest, EventHandler, HandlerRevision
from handlers.tasks import run_backtest
from tests.conftest import make_user
from workflows.models import Workflow

from .test_backtest import ORDERS, traffic  # noqa: F401 - a fixture
from .test_dispatch import handler

pytestmark = pytest.mark.django_db


@pytest.fixture
def saved():
    return handler(ORDERS)


@pytest.fixture
def editor_client(client, django_user_model):
    client.force_login(make_user(django_user_model, "editor", "view_eventhandler", "change_eventhandler",
                                 "add_eventhandler"))
    return client


def form_data(item: EventHandler, **changes) -> dict:
    """What the handler's change form posts, with `changes` typed in."""
    data = {"name": item.name, "event": item.event, "active": "on", "description": "",
            "condition": item.condition or "", "evaluator_type": "", "actions": json.dumps(item.actions),
            "loaded_revision": str(item.revision), "_backtest": "Backtest", **changes}
    return {key: value for key, value in data.items() if value is not None}


def backtest_url(item: EventHandler) -> str:
    return reverse("admin:handlers_eventhandler_backtest", args=[item.pk])


def result_url(backtest: Backtest) -> str:
    return reverse("admin:handlers_backtest_change", args=[backtest.pk])


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_the_handler_form_has_a_backtest_button_posting_the_form_as_it_is(editor_client, saved):
    page = editor_client.get(reverse("admin:handlers_eventhandler_change", args=[saved.pk])).content.decode()
    assert page.count(f'formaction="{backtest_url(saved)}"') == 2  # at the top and at the bottom (save_on_top)
    assert 'value="Backtest"' in page and 'name="_backtest"' in page
    add = editor_client.get(reverse("admin:handlers_eventhandler_add")).content.decode()
    assert f'formaction="{reverse("admin:handlers_eventhandler_backtest_new")}"' in add


def test_backtest_runs_the_forms_unsaved_content_and_shows_its_result_and_difference(editor_client, traffic,  # noqa: F811
                                                                                     saved):
    revisions = HandlerRevision.objects.count()
    response = editor_client.post(backtest_url(saved), form_data(saved, condition="$.amount > 20"))
    backtest = Backtest.objects.get()
    assert response.status_code == 302 and response["Location"] == result_url(backtest)
    assert (backtest.draft, backtest.handler["condition"], backtest.compared_revision) == (
        True, "$.amount > 20", saved.revision)
    assert (backtest.result["total"], backtest.result["matched"], backtest.result["skipped"]) == (6, 4, 2)
    page = text(editor_client.get(response["Location"]))
    assert "An unsaved draft of big_dutch_orders" in page
    assert "Matched 4" in page and "Skipped 2" in page and "Failed 0" in page
    assert f"Against the saved version (revision {saved.revision})" in page
    assert "Newly matched 2" in page and "No longer matched 1" in page and "Changed action inputs 0" in page
    assert "Newly matched (2) Message Received" in page and "m-5" in page and "m-6" in page
    assert 'id="backtest-progress"' not in editor_client.get(response["Location"]).content.decode()
    # Tried, not saved: the handler, its revisions and its event's records are as they were.
    saved.refresh_from_db()
    assert saved.condition == ORDERS["condition"] and HandlerRevision.objects.count() == revisions
    assert not Workflow.objects.exists() and not ActionExecution.objects.exists()


def test_a_new_handler_can_be_backtested_from_the_add_form(editor_client, traffic):  # noqa: F811
    item = EventHandler(**{"name": "fresh", "event": ORDERS["event"], "actions": ORDERS["actions"], "condition": ""})
    response = editor_client.post(reverse("admin:handlers_eventhandler_backtest_new"), form_data(item))
    backtest = Backtest.objects.get()
    assert response["Location"] == result_url(backtest)
    assert (backtest.draft, backtest.compared_to, backtest.result["matched"]) == (True, None, 6)
    assert not EventHandler.objects.exists()


def test_a_draft_that_would_not_save_is_not_run_and_says_why(editor_client, traffic, saved):  # noqa: F811
    response = editor_client.post(backtest_url(saved), form_data(saved, condition="$.amount >"))
    assert response.status_code == 400
    assert "cannot be backtested" in text(response) and "does not compile as JavaScript" in text(response)
    assert not Backtest.objects.exists()


def test_a_long_backtest_shows_a_progress_bar_until_its_task_is_done(editor_client, traffic, saved, settings):  # noqa: F811
    settings.BACKTEST_INLINE_MAX = 1
    with mock.patch.object(Conf, "SYNC", False):
        response = editor_client.post(backtest_url(saved), form_data(saved))
        broker = get_broker()
        package_id, package = broker.dequeue()[0]
        broker.acknowledge(package_id)
    backtest = Backtest.objects.get()
    page = editor_client.get(response["Location"]).content.decode()
    assert '<progress id="backtest-progress" max="6" value="0">' in page
    assert reverse("eventhub-backtest-result", kwargs={"id": backtest.pk}) in page  # what the bar polls
    assert '<span id="backtest-status">waiting for a worker</span>' in page

    run_backtest(*SignedPackage.loads(package)["args"])
    page = editor_client.get(response["Location"])
    assert 'id="backtest-progress"' not in page.content.decode() and "Matched 3" in text(page)


def test_the_result_page_is_shared_with_whoever_may_read_handlers(client, django_user_model, editor_client, traffic,  # noqa: F811
                                                                  saved):
    url = editor_client.post(backtest_url(saved), form_data(saved))["Location"]
    client.force_login(make_user(django_user_model, "reader", "view_eventhandler"))
    assert client.get(url).status_code == 200
    client.force_login(make_user(django_user_model, "stranger", "view_receivedmessage"))
    assert client.get(url).status_code == 403


def test_a_reader_without_change_permission_backtests_the_saved_handler(client, django_user_model, traffic, saved):  # noqa: F811
    client.force_login(make_user(django_user_model, "reader", "view_eventhandler"))
    page = client.get(reverse("admin:handlers_eventhandler_change", args=[saved.pk])).content.decode()
    assert 'name="_backtest_saved"' in page
    response = client.post(backtest_url(saved), {"_backtest_saved": "Backtest"})
    backtest = Backtest.objects.get()
    assert response["Location"] == result_url(backtest)
    assert (backtest.draft, backtest.result["matched"], backtest.created_by.username) == (False, 3, "reader")


def test_it_runs_again_over_other_messages_from_the_result_page(editor_client, traffic, saved):  # noqa: F811
    first_url = editor_client.post(backtest_url(saved), form_data(saved, condition="$.amount > 20"))["Location"]
    first = Backtest.objects.get()
    again = reverse("admin:handlers_backtest_again", args=[first.pk])
    assert f'action="{again}"' in editor_client.get(first_url).content.decode()
    response = editor_client.post(again, {"limit": "2", "outcomes": ["ACKNOWLEDGED"]})
    second = Backtest.objects.exclude(pk=first.pk).get()
    assert response["Location"] == result_url(second)
    assert second.handler == first.handler and second.compared_revision == saved.revision
    assert (second.criteria["limit"], second.criteria["outcomes"], second.result["total"]) == (2, ["ACKNOWLEDGED"], 2)
    assert editor_client.post(again, {"limit": "0"}).status_code == 200  # the form again, with its error
    assert Backtest.objects.count() == 2


def test_backtests_are_listed_read_only(editor_client, traffic, saved):  # noqa: F811
    editor_client.post(backtest_url(saved), form_data(saved))
    page = text(editor_client.get(reverse("admin:handlers_backtest_changelist")))
    assert "big_dutch_orders" in page and "3 / 3 / 0" in page and "6 / 6" in page
    assert editor_client.get(reverse("admin:handlers_backtest_add")).status_code == 403


def test_a_shadow_handlers_result_page_says_it_is_in_shadow_mode(editor_client, traffic):  # noqa: F811
    shadow = handler(ORDERS, mode="shadow")
    page = editor_client.get(editor_client.post(backtest_url(shadow), {"_backtest_saved": "Backtest"})["Location"])
    assert 'id="backtest-shadow"' in page.content.decode()
    assert "in shadow mode: as it stands, it would record each action as SHADOW and run nothing" in text(page)
