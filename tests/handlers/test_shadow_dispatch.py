"""A handler in shadow mode on the message path (issue 24): decided like any other, recorded SHADOW, nothing run,
and never counted as work done."""

import pytest

from handlers.backtests import Criteria, start
from handlers.changes import restore_revision, save_handler
from handlers.explain import explain
from handlers.listener import Listener
from handlers.models import ActionExecution, EventHandler, HandlerRevision
from handlers.replay import replay_message
from queues import quarantine
from queues.models import QuarantinedMessage, QueueConfig, ReceivedMessage
from queues.publish import publish
from workflows.models import Workflow

from ..workflows.conftest import ADDRESS, register, shipping_definition
from .seeds import START_SHIPPING
from .test_dispatch import dispatch, handler, message
from .test_handler_limits import nested

pytestmark = pytest.mark.django_db
EVENT = "conductor:shipping_start"
CUSTOMER = {"customer": {"name": ADDRESS["name"], "address": ADDRESS}}


@pytest.fixture(autouse=True)
def shipping():
    return register(shipping_definition())


def shadow(**changes) -> EventHandler:
    return handler(START_SHIPPING, name="shipping_shadow", event=EVENT, mode="shadow", **changes)


def records(name: str = "shipping_shadow") -> list[ActionExecution]:
    return list(ActionExecution.objects.filter(handler_name=name).order_by("index", "id"))


def test_it_records_the_resolved_input_as_shadow_and_starts_nothing():
    shadow()
    sent = message(CUSTOMER)
    [decision] = dispatch(EVENT, sent)
    [record] = records()
    assert (record.status, record.index, record.action, record.attempts) == ("SHADOW", 0, "start_workflow", 0)
    assert record.input["input"]["address"]["city"] == ADDRESS["city"]
    assert record.input["input"]["customerName"] == ADDRESS["name"]
    assert record.execution_id == f"{sent.message_id}_0" and record.finished_at is not None
    assert "in shadow" in record.reason and not record.error and not record.workflow_id
    assert not Workflow.objects.exists()
    # Nothing ran: the message was not matched by any live handler, and says why.
    assert decision.action == "ack" and "unmatched" in decision.record.detail
    assert "shipping_shadow: in shadow, would have run 1 action(s)" in decision.record.detail


def test_its_input_is_what_the_live_handler_records_beside_it():
    handler(START_SHIPPING, event=EVENT)
    shadow()
    dispatch(EVENT, message(CUSTOMER))
    [live] = records(START_SHIPPING["name"])
    [twin] = records()
    assert live.status == "COMPLETED" and Workflow.objects.count() == 1
    assert twin.status == "SHADOW" and twin.input == live.input


def test_a_false_condition_is_one_shadow_record_with_the_value():
    shadow(condition="$.priority > 5")
    dispatch(EVENT, message({"priority": 1, **CUSTOMER}))
    [record] = records()
    assert (record.status, record.index, record.condition_value) == ("SHADOW", -1, "false")
    assert "returned false, not true" in record.reason and not record.error


def test_a_failing_condition_is_a_shadow_record_with_the_error_not_a_failure():
    shadow(condition="$.customer.name.missing.deeper")
    [decision] = dispatch(EVENT, message(CUSTOMER))
    [record] = records()
    assert (record.status, record.index) == ("SHADOW", -1)
    assert "TypeError" in record.error and "the condition failed" in record.reason
    assert decision.action == "ack"
    assert not ActionExecution.objects.filter(status="FAILED").exists()


def test_an_input_that_cannot_be_built_is_a_shadow_record_with_the_error():
    EventHandler.objects.create(name="poisoned_shadow", event=EVENT, active=True, mode="shadow", actions=[
        {"action": "start_workflow", "start_workflow": {"name": "shipping_workflow", "input": {"who": nested(2000)}}}])
    [decision] = dispatch(EVENT, message(CUSTOMER))
    [record] = records("poisoned_shadow")
    assert record.status == "SHADOW" and record.input is None
    assert record.error.startswith("its input could not be built: the template nests too deeply")
    assert decision.action == "ack" and not ActionExecution.objects.filter(status="FAILED").exists()


def test_a_queue_that_quarantines_unmatched_messages_quarantines_one_only_a_shadow_handler_matched():
    shadow()
    QueueConfig.objects.filter(event=EVENT).update(unmatched=QueueConfig.Unmatched.QUARANTINE)
    [decision] = dispatch(EVENT, message(CUSTOMER))
    assert decision.action == "quarantine" and records()[0].status == "SHADOW"


def test_a_redelivery_records_a_shadow_duplicate():
    shadow()
    sent = message(CUSTOMER)
    dispatch(EVENT, sent)
    dispatch(EVENT, message(CUSTOMER, delivery_count=2, message_id=sent.message_id))
    original, duplicate = records()
    assert duplicate.duplicate_of == original and duplicate.status == "SHADOW"


def test_the_message_did_nothing_when_only_a_shadow_handler_matched():
    shadow()
    dispatch(EVENT, message(CUSTOMER))
    why = explain(ReceivedMessage.objects.get())
    assert why.headline == "It did nothing: only handlers in shadow mode decided on it, and they run nothing."
    assert any("in shadow mode, would have run with the input shown on its record" in line for line in why.lines)



def test_a_replay_records_a_shadow_handlers_decision_again_and_runs_only_the_live_one(superuser):
    handler(START_SHIPPING, event=EVENT)
    shadow(condition="$.customer.name == 'Ada'")
    [decision] = dispatch(EVENT, message({**CUSTOMER, "customer": {**CUSTOMER["customer"], "name": "Ada"}}))
    replayed = replay_message(decision.record, user=superuser, reason="try the twin again")
    assert Workflow.objects.count() == 2
    assert sorted(replayed.executions.values_list("handler_name", "status")) == [
        ("shipping_shadow", "SHADOW"), (START_SHIPPING["name"], "COMPLETED")]


def test_a_backtest_evaluates_a_shadow_handler_as_it_would_run_live():
    saved = shadow(condition="$.customer.name == 'Ada'")
    dispatch(EVENT, message(CUSTOMER), message({**CUSTOMER, "customer": {**CUSTOMER["customer"], "name": "Ada"}}))
    result = start(saved, Criteria.of(EVENT), draft=False)[0].result
    assert (result["total"], result["matched"], result["skipped"]) == (2, 1, 1)


def test_restoring_a_revision_from_before_shadow_makes_the_handler_live_again(superuser):
    live = handler(START_SHIPPING, event=EVENT)
    first = HandlerRevision.objects.get(handler_name=live.name)
    live.mode = "shadow"
    save_handler(live, user=None, source="test")
    assert HandlerRevision.objects.get(handler_name=live.name, number=2).snapshot["mode"] == "shadow"
    assert restore_revision(first, user=superuser).mode == "live"


def test_a_handler_set_live_runs_nothing_on_a_redelivery_of_a_message_it_shadowed_and_runs_on_its_replay(superuser):
    item = shadow()
    sent = message(CUSTOMER)
    dispatch(EVENT, sent)
    item.mode = "live"
    save_handler(item, user=None, source="test")
    # The message was decided while the handler was in shadow mode: its SHADOW records stand (README).
    dispatch(EVENT, message(CUSTOMER, delivery_count=2, message_id=sent.message_id))
    assert [r.status for r in records()] == ["SHADOW", "SHADOW"] and not Workflow.objects.exists()
    # A replay is a new delivery: the now-live handler runs on it.
    replayed = replay_message(ReceivedMessage.objects.earliest("id"), user=superuser, reason="act on it now")
    assert list(replayed.executions.values_list("status", flat=True)) == ["COMPLETED"]
    assert Workflow.objects.count() == 1


def test_a_new_producers_message_kept_in_quarantine_runs_the_handler_retried_once_it_is_live():
    item = shadow()
    QueueConfig.objects.filter(event=EVENT).update(unmatched=QueueConfig.Unmatched.QUARANTINE)
    publish(EVENT, CUSTOMER, message_id="first")
    listener = Listener(events=[EVENT])
    assert listener.run_once(wait=0) == 1
    kept = QuarantinedMessage.objects.get()
    assert kept.message_id == "first" and records()[0].status == "SHADOW"
    item.mode = "live"
    save_handler(item, user=None, source="test")
    retried = quarantine.retry(kept)
    assert listener.run_once(wait=0) == 1
    listener.close()
    assert ActionExecution.objects.get(message_id=retried).status == "COMPLETED" and Workflow.objects.count() == 1
