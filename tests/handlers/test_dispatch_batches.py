"""A batch's actions run together under one savepoint; when one raises, the batch runs again one savepoint
per action. Either way every message ends with exactly one set of records and one effect per action."""

import copy

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from handlers.models import ActionExecution
from queues.models import ReceivedMessage
from workflows import runtime
from workflows.builtin import BuiltinEngine
from workflows.models import Workflow

from ..workflows.conftest import ADDRESS, register, shipping_definition
from .seeds import START_SHIPPING
from .test_dispatch import dispatch, handler, message

pytestmark = pytest.mark.django_db
EVENT = "conductor:shipping_start"


@pytest.fixture
def shipping():
    return register(shipping_definition())


def customer(name: str) -> dict:
    return {"customer": {"name": name, "address": ADDRESS}}


def test_it_starts_one_workflow_per_message_of_a_batch(shipping):
    handler(START_SHIPPING, event=EVENT)
    messages = [message(customer(f"customer {i}")) for i in range(5)]
    decisions = dispatch(EVENT, *messages)
    assert [d.action for d in decisions] == ["ack"] * 5
    assert sorted(w.input["customerName"] for w in Workflow.objects.all()) == [f"customer {i}" for i in range(5)]
    executions = ActionExecution.objects.order_by("id")
    assert [e.message_id for e in executions] == [m.message_id for m in messages]
    assert {e.status for e in executions} == {"COMPLETED"}
    assert {e.workflow_id for e in executions} == set(Workflow.objects.values_list("id", flat=True))


def test_it_keeps_the_other_messages_effects_exactly_once_when_one_action_fails(shipping):
    class CrashForOne(BuiltinEngine):
        def start_workflow(self, name, version=None, input=None, *args, **kwargs):
            workflow_id = super().start_workflow(name, version, input, *args, **kwargs)
            if input["customerName"] == "the crashing one":
                raise RuntimeError("a defect after the effect")
            return workflow_id

    handler(START_SHIPPING, event=EVENT)
    first, crashing, last = message(customer("first")), message(customer("the crashing one")), message(customer("last"))
    decisions = dispatch(EVENT, first, crashing, last, engine=CrashForOne())
    assert [d.action for d in decisions] == ["ack"] * 3
    # The crashing action's workflow was rolled back; the others exist once each, not twice.
    assert sorted(Workflow.objects.values_list("input__customerName", flat=True)) == ["first", "last"]
    statuses = dict(ActionExecution.objects.values_list("message_id", "status"))
    assert statuses == {first.message_id: "COMPLETED", crashing.message_id: "FAILED", last.message_id: "COMPLETED"}
    assert ActionExecution.objects.get(message_id=crashing.message_id).attempts == 1
    assert ReceivedMessage.objects.count() == 3


def test_it_records_a_retryable_failure_beside_completed_actions_of_the_same_batch(shipping):
    handler(START_SHIPPING, event=EVENT)
    complete = handler({
        "name": "complete_human", "event": EVENT, "condition": "$.workflowInstanceId != null",
        "actions": [{"action": "complete_task", "complete_task": {
            "workflowId": "${workflowInstanceId}", "taskRefName": "no_such_task_yet_ref", "output": {}}}],
        "active": True,
    })
    started = message(customer("started"))
    dispatch(EVENT, started)
    workflow = Workflow.objects.get()
    waiting = message({**customer("waits"), "workflowInstanceId": workflow.id})
    fresh = message(customer("fresh"))
    decisions = dispatch(EVENT, waiting, fresh)
    # The task does not exist yet: retryable, so that message comes back; the other one is done.
    assert [d.action for d in decisions] == ["nack", "ack"]
    assert Workflow.objects.count() == 3
    retry = ActionExecution.objects.get(handler_name=complete.name, message_id=waiting.message_id)
    assert retry.status == "IN_PROGRESS" and retry.retryable


def _definition_reads(queries: list[dict]) -> list[str]:
    return [q["sql"] for q in queries if 'FROM "workflows_workflowdefinition"' in q["sql"]]


def test_a_queues_next_batch_reads_the_definitions_it_starts_with_its_handlers(shipping, monkeypatch):
    reads = []
    read = runtime._read_definition
    monkeypatch.setattr(runtime, "_read_definition", lambda *args: reads.append(args) or read(*args))
    handler(START_SHIPPING, event=EVENT)
    engine = BuiltinEngine()  # (its read-ahead starts empty)
    dispatch(EVENT, message(customer("first")), engine=engine)
    assert reads == [("shipping_workflow", 1)]  # the first batch reads it when its first workflow starts
    with CaptureQueriesContext(connection) as second:
        dispatch(EVENT, message(customer("second")), message(customer("third")), engine=engine)
    assert reads == [("shipping_workflow", 1)]  # the second, with its handlers
    [read_ahead] = _definition_reads(second.captured_queries)
    if connection.vendor == "postgresql":  # in the handlers' round trip
        assert '"handlers_eventhandler"' in read_ahead
    assert {w.definition_id for w in Workflow.objects.all()} == {shipping.pk}


def test_a_definitions_new_version_is_started_by_the_next_batch(shipping):
    latest = copy.deepcopy(START_SHIPPING)
    latest["actions"][0]["start_workflow"]["version"] = None
    handler(latest, event=EVENT)
    dispatch(EVENT, message(customer("first")))
    newer = register(shipping_definition(version=2))
    dispatch(EVENT, message(customer("second")))
    assert dict(Workflow.objects.values_list("input__customerName", "version")) == {"first": 1, "second": 2}
    assert Workflow.objects.get(version=2).definition_id == newer.pk


def test_a_definition_removed_since_the_last_batch_fails_its_action_as_before(shipping):
    handler(START_SHIPPING, event=EVENT)
    dispatch(EVENT, message(customer("first")))
    shipping.delete()
    [decision] = dispatch(EVENT, gone := message(customer("second")))
    execution = ActionExecution.objects.get(message_id=gone.message_id)
    assert (decision.action, execution.status) == ("ack", "FAILED")
    assert "No workflow definition 'shipping_workflow'" in execution.error
