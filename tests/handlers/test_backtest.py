"""Backtests over stored messages (`handlers.backtests`): exact counts, the difference of a draft from the
saved version, which messages are read, and that nothing is executed."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from handlers import backtests
from handlers.backtests import Criteria, Scan, start
from handlers.models import ActionExecution, Backtest, EventHandler, HandlerRevision
from queues.models import OutboxMessage, ReceivedMessage
from workflows.models import Workflow

from .test_dispatch import handler
from .test_handler_limits import nested

pytestmark = pytest.mark.django_db
EVENT = "conductor:orders"
Outcome = ReceivedMessage.Outcome

# Start a workflow for Dutch orders over 10.
ORDERS = {
    "name": "big_dutch_orders", "event": EVENT, "active": True,
    "condition": "$.amount > 10 && $.country == 'NL'",
    "actions": [{"action": "start_workflow",
                 "start_workflow": {"name": "ship", "input": {"order": "${id}", "amount": "${amount}"}}}],
}


def stored(message_id: str, payload, *, hours_ago: float = 1, outcome: str = Outcome.ACKNOWLEDGED,
           event: str = EVENT, **fields) -> ReceivedMessage:
    return ReceivedMessage.objects.create(event=event, message_id=message_id, payload=payload, outcome=outcome,
                                          received_at=timezone.now() - timedelta(hours=hours_ago), **fields)


def order(number: int, amount, country: str = "NL") -> dict:
    return {"id": f"o-{number}", "amount": amount, "country": country}


@pytest.fixture
def traffic() -> None:
    """Six orders of the last week: three Dutch over 10, one Dutch at 5, one German, one without a
    country (the condition still evaluates: undefined == 'NL' is false), one with no amount at all."""
    stored("m-1", order(1, 25))
    stored("m-2", order(2, 50))
    stored("m-3", order(3, 11))
    stored("m-4", order(4, 5))
    stored("m-5", order(5, 40, "DE"))
    stored("m-6", {"id": "o-6", "amount": 30})


def draft(**changes) -> EventHandler:
    item = EventHandler()
    item.apply_conductor({**ORDERS, **changes})
    item.full_clean(validate_unique=False)
    return item


def scan(item: EventHandler, compared: EventHandler | None = None, **criteria) -> dict:
    result = Scan(item, Criteria.of(EVENT, **criteria), compared)
    assert result.run(wait=None) == ""
    return result.result()


def ids(samples: list[dict]) -> list[str]:
    return sorted(sample["messageId"] for sample in samples)


def test_it_counts_matched_skipped_and_failed_messages_with_samples_of_each(traffic):
    stored("m-7", "not an object")  # `$.amount` of a string is undefined: skipped, not failed
    stored("m-8", None)  # JSON null: `$.amount` throws
    result = scan(draft())
    assert {key: result[key] for key in ("total", "matched", "skipped", "failed")} == {
        "total": 8, "matched": 3, "skipped": 4, "failed": 1}
    assert (result["conditionErrors"], result["actionErrors"]) == (1, 0)
    assert ids(result["samples"]["matched"]) == ["m-1", "m-2", "m-3"]
    assert ids(result["samples"]["skipped"]) == ["m-4", "m-5", "m-6", "m-7"]
    [failed] = result["samples"]["failed"]
    assert failed["messageId"] == "m-8" and "TypeError" in failed["condition"]["error"]
    assert result["difference"] is None


def test_each_sample_shows_the_condition_and_every_action_resolved_as_dispatch_would(traffic):
    result = scan(draft())
    sample = next(s for s in result["samples"]["matched"] if s["messageId"] == "m-2")
    record = ReceivedMessage.objects.get(message_id="m-2")
    assert sample["id"] == record.pk and sample["outcome"] == "ACKNOWLEDGED"
    assert sample["receivedAt"] == record.received_at.isoformat()
    assert sample["condition"] == {"matched": True, "value": "true", "error": None}
    assert sample["actions"] == [{
        "index": 0, "action": "start_workflow", "expandInlineJSON": False, "wouldRun": True, "error": None,
        "input": {"name": "ship", "input": {"order": "o-2", "amount": 50, "conductor.event.messageId": "m-2",
                                            "conductor.event.name": EVENT}},
    }]
    skipped = next(s for s in result["samples"]["skipped"] if s["messageId"] == "m-4")
    assert skipped["condition"] == {"matched": False, "value": "false", "error": None}
    assert skipped["actions"][0]["wouldRun"] is False and skipped["actions"][0]["input"]["input"]["order"] == "o-4"


def test_a_draft_is_compared_with_the_saved_version_re_evaluated_over_the_same_messages(traffic):
    saved = handler(ORDERS)
    # Over 20 instead of over 10 (m-3 at 11 no longer), any country (m-5 and m-6 newly), and the amount
    # doubled: m-1 and m-2, matched by both, get different inputs.
    changed = draft(condition="$.amount > 20", actions=[{"action": "start_workflow", "start_workflow": {
        "name": "ship", "input": {"order": "${id}", "amount": "${amount}", "twice": "${amount}${amount}"}}}])
    result = scan(changed, saved)
    assert {key: result[key] for key in ("total", "matched", "skipped", "failed")} == {
        "total": 6, "matched": 4, "skipped": 2, "failed": 0}
    difference = result["difference"]
    assert {key: difference[key] for key in backtests.DIFFERENCES} == {
        "newlyMatched": 2, "noLongerMatched": 1, "changedInputs": 2}
    assert ids(difference["samples"]["newlyMatched"]) == ["m-5", "m-6"]
    assert ids(difference["samples"]["noLongerMatched"]) == ["m-3"]
    assert ids(difference["samples"]["changedInputs"]) == ["m-1", "m-2"]
    [m3] = difference["samples"]["noLongerMatched"]
    assert (m3["draft"]["condition"]["matched"], m3["saved"]["condition"]["matched"]) == (False, True)
    m1 = next(s for s in difference["samples"]["changedInputs"] if s["messageId"] == "m-1")
    assert m1["draft"]["actions"][0]["input"]["input"]["twice"] == "2525"
    assert "twice" not in m1["saved"]["actions"][0]["input"]["input"]


def test_a_draft_the_same_as_the_saved_version_differs_on_no_message(traffic):
    result = scan(draft(), handler(ORDERS))
    assert {key: result["difference"][key] for key in backtests.DIFFERENCES} == dict.fromkeys(backtests.DIFFERENCES, 0)


def test_an_action_whose_input_cannot_be_built_fails_its_message_and_says_why(traffic):
    # Saved before the template limits existed: written past the model's validation.
    poisoned = EventHandler.objects.create(name="poisoned", event=EVENT, active=True, actions=[
        {"action": "terminate_workflow", "terminate_workflow": {"workflowId": "${id}"}},
        {"action": "start_workflow", "start_workflow": {"name": "ship", "input": {"who": nested(2000)}}}])
    result = scan(poisoned)
    assert (result["total"], result["matched"], result["failed"]) == (6, 0, 6)
    assert (result["conditionErrors"], result["actionErrors"]) == (0, 6)
    first, second = result["samples"]["failed"][0]["actions"]
    assert first["error"] is None and first["input"]["workflowId"].startswith("o-")
    assert second["input"] is None and second["error"].startswith("its input could not be built")


def test_each_message_counts_once_as_its_latest_delivery_leaving_out_replays_and_unreadable_bodies(traffic):
    stored("m-9", order(9, 99), hours_ago=3, outcome=Outcome.RETURNED)
    stored("m-9", order(9, 99), hours_ago=2, outcome=Outcome.ACKNOWLEDGED, delivery_count=2)
    original = ReceivedMessage.objects.get(message_id="m-1")
    stored("m-1:replay:1", order(1, 25), replay_of=original, replay_reason="checking")
    stored("m-10", None, raw_body="<xml/>", outcome=Outcome.QUARANTINED)
    stored("m-11", order(11, 99), event="conductor:other")
    result = scan(draft())
    assert (result["total"], result["matched"]) == (7, 4)
    [m9] = [s for s in result["samples"]["matched"] if s["messageId"] == "m-9"]
    assert m9["outcome"] == "ACKNOWLEDGED"


def test_a_time_range_the_newest_n_and_outcomes_choose_the_messages(traffic):
    stored("old", order(20, 99), hours_ago=24 * 8)
    stored("quarantined", order(21, 99), hours_ago=0.5, outcome=Outcome.QUARANTINED)
    now = timezone.now()
    assert scan(draft())["total"] == 7  # the last BACKTEST_DEFAULT_DAYS (7) by default
    assert scan(draft(), start=now - timedelta(days=9))["total"] == 8
    assert scan(draft(), start=now - timedelta(days=9), end=now - timedelta(days=1))["total"] == 1
    newest = scan(draft(), limit=2)
    assert newest["total"] == 2 and ids(newest["samples"]["matched"]) == ["quarantined"]
    assert scan(draft(), limit=100)["total"] == 8  # a limit alone reaches back as far as records are kept
    only = scan(draft(), outcomes=["QUARANTINED", "RETURNED"])
    assert (only["total"], ids(only["samples"]["matched"])) == (1, ["quarantined"])


def test_it_keeps_only_so_many_samples_of_each_kind_however_many_messages(settings, monkeypatch):
    settings.BACKTEST_SAMPLES = 2
    monkeypatch.setattr(backtests, "CHUNK", 3)  # several chunks, each streamed and counted
    for number in range(10):
        stored(f"m-{number}", order(number, 20 + number))
    result = scan(draft())
    assert (result["total"], result["matched"], len(result["samples"]["matched"])) == (10, 10, 2)


def test_a_condition_that_keeps_overrunning_its_time_limit_is_given_up_for_the_rest(settings, monkeypatch):
    settings.CONDITION_TIME_LIMIT_SECONDS = 0.05
    monkeypatch.setattr(backtests, "CHUNK", 3)
    for number in range(7):
        stored(f"m-{number}", order(number, 20))
    result = scan(draft(condition="while (true) {}"))
    assert (result["total"], result["failed"], result["conditionErrors"]) == (7, 7, 7)
    reasons = [sample["condition"]["error"] for sample in result["samples"]["failed"]]
    assert reasons[:2] == ["the condition exceeded its 0.05 s time limit"] * 2
    assert "earlier messages of this batch" in reasons[2]  # the rest of the first chunk
    assert reasons[3:] == [backtests.GAVE_UP] * 4  # later chunks are not evaluated at all


def test_inline_json_is_expanded_for_the_condition_and_for_actions_that_ask():
    stored("m-1", {"order": json.dumps({"id": "o-1", "amount": 12})})
    item = draft(condition="$.order.amount > 10", actions=[
        {"action": "terminate_workflow", "expandInlineJSON": True, "terminate_workflow": {"workflowId": "${order.id}"}},
        {"action": "terminate_workflow", "terminate_workflow": {"workflowId": "${order.id}"}}])
    [sample] = scan(item)["samples"]["matched"]
    assert [action["input"]["workflowId"] for action in sample["actions"]] == ["o-1", None]


def test_a_backtest_executes_nothing_and_writes_only_its_own_record(traffic):
    saved = handler(ORDERS)
    revisions = HandlerRevision.objects.count()
    messages = list(ReceivedMessage.objects.order_by("pk").values())
    backtest, queued = start(draft(condition="true"), Criteria.of(EVENT), draft=True, compared=saved)
    assert not queued and backtest.status == Backtest.Status.COMPLETED and backtest.result["matched"] == 6
    assert not Workflow.objects.exists() and not ActionExecution.objects.exists()
    assert not OutboxMessage.objects.exists()
    assert list(ReceivedMessage.objects.order_by("pk").values()) == messages
    assert HandlerRevision.objects.count() == revisions
    saved.refresh_from_db()
    assert saved.condition == ORDERS["condition"]
    assert list(Backtest.objects.values_list("pk", flat=True)) == [backtest.pk]
