import json

import pytest

from handlers.dispatch import dispatch_batch
from handlers.models import ActionExecution
from handlers.replay import ReplayError, replay, replay_message
from queues.configs import ensure_config
from queues.models import ReceivedMessage
from workflows.builtin import BuiltinEngine
from workflows.errors import EngineUnavailable
from workflows.models import Workflow

from ..workflows.conftest import ADDRESS, register, shipping_definition
from .seeds import START_SHIPPING
from .test_dispatch import handler, message

pytestmark = pytest.mark.django_db


@pytest.fixture
def shipping():
    return register(shipping_definition())
EVENT = "conductor:shipping_start"


@pytest.fixture
def original(shipping) -> ReceivedMessage:
    handler(START_SHIPPING, event=EVENT)
    first = message({"customer": {"name": ADDRESS["name"], "address": ADDRESS}}, message_id="order-1")
    [decision] = dispatch_batch(ensure_config(EVENT), [first])
    return ReceivedMessage.objects.get(pk=decision.record.pk)


def test_it_runs_the_message_again_as_a_new_delivery_pointing_at_the_original(original, superuser):
    record = replay_message(original, user=superuser, reason="the workflow was deleted by mistake")
    assert Workflow.objects.count() == 2
    assert record.pk != original.pk and record.message_id == "order-1:replay:1"
    assert (record.replay_of, record.replayed_by, record.replay_reason) == (
        original, superuser, "the workflow was deleted by mistake")
    assert record.outcome == "ACKNOWLEDGED" and record.event == EVENT
    execution = record.executions.get()
    assert execution.status == "COMPLETED" and execution.duplicate_of is None
    assert execution.execution_id == "order-1:replay:1_0"
    workflow = Workflow.objects.get(pk=execution.workflow_id)
    assert workflow.trigger["messageId"] == "order-1:replay:1"
    assert workflow.input["conductor.event.messageId"] == "order-1:replay:1"


def test_each_replay_gets_its_own_number_and_a_replay_of_a_replay_points_at_the_original(original, superuser):
    first = replay_message(original, user=superuser, reason="one")
    second = replay_message(first, user=superuser, reason="two")
    assert second.message_id == "order-1:replay:2" and second.replay_of == original
    assert Workflow.objects.count() == 3
    assert not ActionExecution.objects.filter(duplicate_of__isnull=False).exists()


def test_a_replay_never_takes_the_number_of_an_earlier_one_since_deleted(original, superuser):
    replay_message(original, user=superuser, reason="one")
    second = replay_message(original, user=superuser, reason="two")
    ReceivedMessage.objects.filter(message_id="order-1:replay:1").delete()  # retention, say
    third = replay_message(original, user=superuser, reason="three")
    assert third.message_id == "order-1:replay:3" and second.message_id == "order-1:replay:2"
    assert third.executions.get().status == "COMPLETED" and Workflow.objects.count() == 4


def test_it_uses_an_edited_payload_when_given(original, superuser):
    edited = {"customer": {"name": "Grace Hopper", "address": ADDRESS}}
    record = replay_message(original, user=superuser, reason="fix the name", payload=edited)
    assert record.payload == edited
    workflow = Workflow.objects.get(pk=record.executions.get().workflow_id)
    assert workflow.input["customerName"] == "Grace Hopper"
    original.refresh_from_db()
    assert original.payload["customer"]["name"] == ADDRESS["name"]  # the original record is never changed


def test_it_runs_the_current_handlers_not_those_of_the_original_delivery(original, superuser):
    handler(START_SHIPPING, event=EVENT, name="a_second_handler", condition="$.customer.name == 'nobody'")
    record = replay_message(original, user=superuser, reason="new handler")
    statuses = dict(record.executions.values_list("handler_name", "status"))
    assert statuses == {"start_shipping_workflow": "COMPLETED", "a_second_handler": "SKIPPED"}


def test_a_transient_failure_is_final_for_a_replay_since_nothing_redelivers_it(original, superuser, monkeypatch):
    def down(*args, **kwargs):
        raise EngineUnavailable("Conductor did not answer")

    monkeypatch.setattr(BuiltinEngine, "start_workflow", down)
    result = replay(original, user=superuser, reason="try")
    assert result.decision.action == "nack"
    execution = result.record.executions.get()
    assert (execution.status, execution.retryable) == ("FAILED", True)
    assert "did not answer" in execution.error
    assert result.record.outcome == "RECEIVED" and "replay again later" in result.record.detail
    assert "FAILED" in result.summary


def test_it_needs_a_reason(original, superuser):
    with pytest.raises(ReplayError, match="reason"):
        replay_message(original, user=superuser, reason="  ")
    assert ReceivedMessage.objects.count() == 1


def test_an_unreadable_message_needs_an_edited_payload(shipping, superuser):
    handler(START_SHIPPING, event=EVENT)
    config = ensure_config(EVENT)
    broken = ReceivedMessage.objects.create(config=config, event=EVENT, message_id="bad", raw_body="{not json")
    with pytest.raises(ReplayError, match="edited payload"):
        replay_message(broken, user=superuser, reason="retry")
    fixed = replay_message(broken, user=superuser, reason="fixed", payload=json.loads('{"customer": {}}'))
    assert fixed.executions.get().status == "COMPLETED"


def test_a_payload_that_cannot_be_stored_is_refused(original, superuser):
    for bad in ({"a": "nul\x00"}, {"\udb70": 1}):
        with pytest.raises(ReplayError, match="cannot be stored"):
            replay_message(original, user=superuser, reason="edited", payload=bad)
    assert ReceivedMessage.objects.count() == 1
