"""`POST /api/eventhub/handlers/backtest` and `GET /api/eventhub/backtests/{id}`: answered at once up to
BACKTEST_INLINE_MAX messages, run as a django-q2 task beyond, the same keys either way."""

import json
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.signing import SignedPackage

from handlers import backtests
from handlers.conditions import _pool
from handlers.models import ActionExecution, Backtest
from handlers.tasks import backtest_task_ended, purge_old_records, run_backtest
from queues.models import OutboxMessage
from tests.conftest import make_user, token_client
from workflows.models import Workflow

from .test_backtest import EVENT, ORDERS, traffic  # noqa: F401 - a fixture
from .test_dispatch import handler

pytestmark = pytest.mark.django_db
URL = "/api/eventhub/handlers/backtest"
COUNTS = ("total", "matched", "skipped", "failed")
# The draft: over 20, any country (see test_backtest: m-3 no longer, m-5 and m-6 newly matched).
DRAFT = {**ORDERS, "condition": "$.amount > 20"}


def post(client, body: dict):
    return client.post(URL, data=json.dumps(body), content_type="application/json")


def counts(body: dict) -> dict:
    return {key: body[key] for key in COUNTS}


def differences(body: dict) -> dict:
    return {key: body["difference"][key] for key in backtests.DIFFERENCES}


@pytest.fixture
def saved():
    return handler(ORDERS)


def test_it_answers_a_draft_at_once_with_exact_counts_and_its_difference(api, traffic, saved):  # noqa: F811
    response = post(api, {"handler": DRAFT})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["handler"], body["draft"], body["comparedToRevision"]) == (
        "COMPLETED", "big_dutch_orders", True, saved.revision)
    assert counts(body) == {"total": 6, "matched": 4, "skipped": 2, "failed": 0}
    assert differences(body) == {"newlyMatched": 2, "noLongerMatched": 1, "changedInputs": 0}
    assert body["progress"] == {"done": 6, "expected": 6}
    assert body["event"] == EVENT and body["limit"] is None and body["outcomes"] == [] and body["active"] is True
    assert not Workflow.objects.exists() and not ActionExecution.objects.exists()
    assert not OutboxMessage.objects.exists()
    again = api.get(f"/api/eventhub/backtests/{body['id']}")
    assert again.status_code == 200 and again.json() == body


def test_a_saved_handler_by_name_is_backtested_without_a_comparison(api, traffic, saved):  # noqa: F811
    body = post(api, {"name": saved.name, "limit": 4}).json()  # the newest four: m-6, m-5, m-4 and m-3
    assert (body["draft"], body["difference"], body["comparedToRevision"]) == (False, None, None)
    assert counts(body) == {"total": 4, "matched": 1, "skipped": 3, "failed": 0}


def test_beyond_the_inline_maximum_it_runs_as_a_task_with_the_same_keys_and_counts(api, traffic, saved,  # noqa: F811
                                                                                   settings):
    inline = post(api, {"handler": DRAFT}).json()
    settings.BACKTEST_INLINE_MAX = 5
    response = post(api, {"handler": DRAFT})  # django-q2 runs tasks inline in the tests (sync)
    assert response.status_code == 202, response.content
    queued = response.json()
    assert queued["id"] != inline["id"] and queued["status"] == "COMPLETED"
    assert set(queued) == set(inline)
    assert (counts(queued), differences(queued)) == (counts(inline), differences(inline))
    assert queued["samples"] == inline["samples"] and queued["difference"] == inline["difference"]
    assert api.get(f"/api/eventhub/backtests/{queued['id']}").json() == queued
    assert not Workflow.objects.exists() and not ActionExecution.objects.exists()


def test_a_queued_backtest_shows_its_progress_until_the_worker_finishes_it(api, traffic, saved, settings,  # noqa: F811
                                                                          monkeypatch):
    settings.BACKTEST_INLINE_MAX = 1
    with mock.patch.object(Conf, "SYNC", False):
        response = post(api, {"handler": DRAFT, "limit": 5})
        broker = get_broker()
        package_id, package = broker.dequeue()[0]
        broker.acknowledge(package_id)
    assert response.status_code == 202
    queued = response.json()
    assert queued["status"] == "SCHEDULED" and queued["progress"] == {"done": 0, "expected": 5}
    assert counts(queued) == {"total": 0, "matched": 0, "skipped": 0, "failed": 0}
    assert differences(queued) == {"newlyMatched": 0, "noLongerMatched": 0, "changedInputs": 0}
    task = SignedPackage.loads(package)
    assert (task["func"], task["args"]) == ("handlers.tasks.run_backtest", (queued["id"],))

    seen = []
    monkeypatch.setattr(backtests, "CHUNK", 2)
    monkeypatch.setattr(backtests, "PROGRESS_EVERY_SECONDS", 0)
    real = Backtest.record_progress

    def watched(backtest, done, result):
        real(backtest, done, result)
        body = api.get(f"/api/eventhub/backtests/{queued['id']}").json()
        seen.append((body["status"], body["progress"]["done"], body["total"]))

    monkeypatch.setattr(Backtest, "record_progress", watched)
    assert run_backtest(*task["args"]) == 5  # what the cluster's worker runs
    assert seen == [("IN_PROGRESS", 2, 2), ("IN_PROGRESS", 4, 4), ("IN_PROGRESS", 5, 5)]
    done = api.get(f"/api/eventhub/backtests/{queued['id']}").json()
    assert done["status"] == "COMPLETED" and done["progress"] == {"done": 5, "expected": 5}
    assert done["startedAt"] and done["finishedAt"]
    assert run_backtest(*task["args"]) == 0  # a redelivered task finds it done


def test_a_task_that_overruns_its_time_stops_failed_keeping_its_counts(api, traffic, saved, settings):  # noqa: F811
    settings.BACKTEST_INLINE_MAX = 1
    settings.BACKTEST_TASK_SECONDS = -1
    body = post(api, {"name": saved.name}).json()
    assert body["status"] == "FAILED" and body["error"].startswith("stopped after -1 s (BACKTEST_TASK_SECONDS)")
    assert body["progress"] == {"done": 0, "expected": 6} and body["total"] == 0


def test_a_task_ends_between_two_chunks_when_the_cluster_stops_keeping_its_counts(api, traffic, saved,  # noqa: F811
                                                                                   settings, monkeypatch):
    settings.BACKTEST_INLINE_MAX = 1
    monkeypatch.setattr(backtests, "CHUNK", 2)
    asked = iter([False, False, True])
    monkeypatch.setattr(backtests, "stop_requested", lambda: next(asked))
    body = post(api, {"name": saved.name}).json()
    assert body["status"] == "FAILED" and body["error"].startswith("the task cluster was stopping")
    assert body["progress"] == {"done": 4, "expected": 6} and body["total"] == 4


def test_a_task_killed_by_the_cluster_leaves_its_backtest_failed(traffic, saved):  # noqa: F811
    backtest = Backtest.objects.create(handler_name="x", handler={}, criteria={}, status="IN_PROGRESS")
    backtest_task_ended(mock.Mock(success=False, args=(backtest.pk,), result="Task exceeded maximum timeout"))
    backtest.refresh_from_db()
    assert backtest.status == "FAILED" and "exceeded maximum timeout" in backtest.error


def test_it_needs_the_view_permission_on_event_handlers(django_user_model, traffic, saved):  # noqa: F811
    outsider = token_client(make_user(django_user_model, "outsider", "view_receivedmessage"))
    assert post(outsider, {"name": saved.name}).status_code == 403
    reader = token_client(make_user(django_user_model, "reader", "view_eventhandler"))
    body = post(reader, {"name": saved.name}).json()
    assert body["total"] == 6
    assert outsider.get(f"/api/eventhub/backtests/{body['id']}").status_code == 403
    assert reader.get(f"/api/eventhub/backtests/{body['id']}").status_code == 200


def test_an_invalid_draft_is_refused_with_the_path_of_each_problem(api, traffic):  # noqa: F811
    response = post(api, {"handler": {**DRAFT, "condition": "$.amount >", "actions": [{"action": "start_workflow"}]}})
    assert response.status_code == 400
    paths = {item["path"] for item in response.json()["validationErrors"]}
    assert paths == {"handler.condition", "handler.actions[0].start_workflow"}
    assert not Backtest.objects.exists()


@pytest.mark.parametrize(("body", "path"), [
    ({}, "name"),
    ({"name": "a", "handler": DRAFT}, "name"),
    ({"name": "a", "limit": 0}, "limit"),
    ({"name": "a", "outcomes": ["LOST"]}, "outcomes"),
    ({"name": "a", "from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to"),
])
def test_it_refuses_a_request_it_cannot_answer(api, body, path):
    response = post(api, body)
    assert response.status_code == 400
    assert path in {item["path"].split(".")[0] for item in response.json()["validationErrors"]}


def test_an_unknown_handler_or_backtest_is_a_404(api):
    assert post(api, {"name": "nobody"}).status_code == 404
    assert api.get("/api/eventhub/backtests/987654").status_code == 404


def test_busy_conditions_are_a_503_to_try_again(api, traffic, saved, settings):  # noqa: F811
    settings.CONDITION_ISOLATES = 1
    settings.CONDITION_ISOLATE_WAIT_SECONDS = 0
    with _pool.borrow():
        response = post(api, {"name": saved.name})
    assert response.status_code == 503 and response.json()["retryable"] is True
    assert not Backtest.objects.exists()


def test_old_backtests_are_purged_with_the_records(api, traffic, saved, settings):  # noqa: F811
    settings.BACKTEST_KEEP_HOURS = 24
    old, recent = (post(api, {"name": saved.name}).json()["id"] for _ in range(2))
    Backtest.objects.filter(pk=old).update(created_at=timezone.now() - timedelta(hours=25))
    purge_old_records()
    assert list(Backtest.objects.values_list("pk", flat=True)) == [recent]
    assert api.get(f"/api/eventhub/backtests/{old}").status_code == 404


def test_a_shadow_handlers_backtest_carries_its_mode(api, traffic):  # noqa: F811
    saved = handler(ORDERS, mode="shadow")
    body = post(api, {"name": saved.name}).json()
    assert (body["mode"], body["active"], body["matched"]) == ("shadow", True, 3)
    assert post(api, {"handler": DRAFT}).json()["mode"] == "live"
