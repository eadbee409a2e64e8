import json
import uuid

import pytest

from handlers.changes import save_handler
from handlers.dispatch import dispatch_batch
from handlers.models import ActionExecution, EventHandler, HandlerRevision
from queues.configs import ensure_config
from queues.models import QueueConfig, ReceivedMessage
from queues.providers.base import Message
from workflows.builtin import BuiltinEngine
from workflows.errors import EngineUnavailable
from workflows.models import Task, Workflow

from ..workflows.conftest import ADDRESS, register, shipping_definition
from .seeds import COMPLETE_DOCUSIGN, FAIL_DOCUSIGN, START_SHIPPING

pytestmark = pytest.mark.django_db


def handler(data: dict, **changes) -> EventHandler:
    item = EventHandler()
    item.apply_conductor({**data, **changes})
    item.full_clean()
    save_handler(item, user=None, source="test")
    return item


def message(payload, delivery_count: int = 1, message_id: str | None = None) -> Message:
    return Message(message_id=message_id or uuid.uuid4().hex, body=json.dumps(payload),
                   delivery_count=delivery_count, payload=payload)


def dispatch(event: str, *messages: Message, **kwargs):
    return dispatch_batch(ensure_config(event), list(messages), **kwargs)


class _Down(BuiltinEngine):
    def start_workflow(self, *args, **kwargs):
        raise EngineUnavailable("Conductor did not answer")


@pytest.fixture
def shipping():
    return register(shipping_definition())


@pytest.fixture
def customer_message():
    return message({"customer": {"name": ADDRESS["name"], "address": ADDRESS}})


def start_shipping() -> Workflow:
    handler(START_SHIPPING, event="conductor:shipping_start")
    dispatch("conductor:shipping_start", message({"customer": {"name": ADDRESS["name"], "address": ADDRESS}}))
    return Workflow.objects.get()


def test_a_message_starts_the_workflow_with_the_customer_address(shipping, customer_message):
    handler(START_SHIPPING, event="conductor:shipping_start")
    [decision] = dispatch("conductor:shipping_start", customer_message)
    assert decision.action == "ack" and decision.record == ReceivedMessage.objects.get()
    workflow = Workflow.objects.get()
    assert workflow.input["address"] == {key: ADDRESS[key] for key in ("street", "city", "zip")}
    assert workflow.input["customerName"] == ADDRESS["name"]
    assert workflow.input["conductor.event.messageId"] == customer_message.message_id
    assert workflow.input["conductor.event.name"] == "conductor:shipping_start"
    execution = ActionExecution.objects.get()
    assert (execution.status, execution.action, execution.attempts) == ("COMPLETED", "start_workflow", 1)
    assert execution.execution_id == f"{customer_message.message_id}_0"
    assert execution.output == {"workflowId": workflow.id} and execution.workflow_id == workflow.id
    assert execution.delivery_id == decision.record.pk
    assert execution.revision == HandlerRevision.objects.get(handler_name="start_shipping_workflow")
    # The two-way trail: the workflow names the message and execution that started it.
    assert workflow.trigger["messageId"] == customer_message.message_id
    assert workflow.trigger["executionId"] == execution.execution_id
    assert "start_shipping_workflow[0] start_workflow: COMPLETED" in ReceivedMessage.objects.get().detail


def test_a_completed_message_completes_the_human_task_and_the_workflow_moves_on(shipping):
    workflow = start_shipping()
    handler(COMPLETE_DOCUSIGN, event="conductor:docusign_completed")
    [decision] = dispatch("conductor:docusign_completed", message({"workflowInstanceId": workflow.id}))
    assert decision.action == "ack"
    human = Task.objects.get(workflow=workflow, reference_task_name="human_docusign_step_ref")
    assert human.status == "COMPLETED"
    assert Task.objects.get(workflow=workflow, reference_task_name="ship_order_ref").status == "SCHEDULED"
    execution = ActionExecution.objects.get(handler_name="complete_docusign_human_task_event")
    assert execution.status == "COMPLETED" and execution.workflow_id == workflow.id
    assert execution.output["taskId"] == human.id


def test_a_task_named_by_its_id_links_the_execution_to_its_workflow(shipping):
    workflow = start_shipping()
    human = Task.objects.get(workflow=workflow, reference_task_name="human_docusign_step_ref")
    handler(COMPLETE_DOCUSIGN, event="conductor:by_task_id",
            actions=[{"action": "complete_task", "complete_task": {"taskId": "${taskId}"}}])
    dispatch("conductor:by_task_id", message({"taskId": human.id}))
    execution = ActionExecution.objects.get(event="conductor:by_task_id")
    assert execution.status == "COMPLETED" and execution.workflow_id == workflow.id
    assert execution.output == {"taskId": human.id, "workflowId": workflow.id}


def test_a_failed_message_fails_the_human_task_and_the_workflow(shipping):
    workflow = start_shipping()
    handler(FAIL_DOCUSIGN, event="conductor:docusign_failed")
    dispatch("conductor:docusign_failed", message({"workflowInstanceId": workflow.id}))
    workflow.refresh_from_db()
    assert workflow.status == "FAILED"
    assert ActionExecution.objects.get(handler_name="fail_docusign_human_task_event").status == "COMPLETED"


def test_a_false_condition_gives_one_skipped_record_and_the_message_is_acknowledged(shipping, customer_message):
    handler(START_SHIPPING, event="conductor:shipping_start", condition="$.customer.address.country == 'FR'")
    [decision] = dispatch("conductor:shipping_start", customer_message)
    assert decision.action == "ack"
    execution = ActionExecution.objects.get()
    assert (execution.status, execution.index, execution.condition_value) == ("SKIPPED", -1, "false")
    assert "country == 'FR'" in execution.reason
    assert not Workflow.objects.exists()
    assert ReceivedMessage.objects.get().detail.startswith("unmatched: start_shipping_workflow: SKIPPED")


def test_an_unknown_workflow_gives_a_failed_record_and_the_message_is_acknowledged(customer_message):
    handler(START_SHIPPING, event="conductor:shipping_start")
    [decision] = dispatch("conductor:shipping_start", customer_message)
    assert decision.action == "ack"
    execution = ActionExecution.objects.get()
    assert execution.status == "FAILED" and not execution.retryable
    assert "shipping_workflow" in execution.error


def test_a_condition_error_fails_that_handler_only(shipping, customer_message):
    handler(START_SHIPPING, event="conductor:shipping_start")
    handler(START_SHIPPING, name="broken_condition", event="conductor:shipping_start", condition="$.x.y.z")
    dispatch("conductor:shipping_start", customer_message)
    broken = ActionExecution.objects.get(handler_name="broken_condition")
    assert broken.status == "FAILED" and "TypeError" in broken.error
    assert ActionExecution.objects.get(handler_name="start_shipping_workflow").status == "COMPLETED"
    assert Workflow.objects.count() == 1


def test_a_redelivered_message_does_not_run_again_and_the_duplicate_is_recorded(shipping, customer_message):
    handler(START_SHIPPING, event="conductor:shipping_start")
    dispatch("conductor:shipping_start", customer_message)
    again = message(customer_message.payload, delivery_count=2, message_id=customer_message.message_id)
    [decision] = dispatch("conductor:shipping_start", again)
    assert decision.action == "ack"
    assert Workflow.objects.count() == 1
    original, duplicate = ActionExecution.objects.order_by("id")
    assert duplicate.duplicate_of == original and duplicate.status == "SKIPPED"
    assert duplicate.delivery_id == decision.record.pk
    assert "duplicate delivery" in duplicate.reason


def test_a_task_that_does_not_exist_yet_keeps_the_message_until_the_deliveries_run_out(shipping):
    workflow = start_shipping()
    handler(COMPLETE_DOCUSIGN, event="conductor:docusign_completed",
            actions=[{"action": "complete_task", "complete_task": {
                "workflowId": "${workflowInstanceId}", "taskRefName": "not_scheduled_yet_ref"}}])
    config = ensure_config("conductor:docusign_completed")
    first = message({"workflowInstanceId": workflow.id}, message_id="m-1")
    [decision] = dispatch_batch(config, [first])
    assert decision.action == "nack"
    execution = ActionExecution.objects.get(handler_name="complete_docusign_human_task_event")
    assert (execution.status, execution.attempts, execution.retryable) == ("IN_PROGRESS", 1, True)
    last = message(first.payload, delivery_count=config.max_deliveries, message_id="m-1")
    [decision] = dispatch_batch(config, [last])
    assert decision.action == "nack"  # the listener quarantines it: this was the last delivery
    execution.refresh_from_db()
    assert (execution.status, execution.attempts) == ("FAILED", 2)
    assert "gave up after" in execution.error


def test_a_finished_task_gives_a_skipped_record(shipping):
    workflow = start_shipping()
    handler(COMPLETE_DOCUSIGN, event="conductor:docusign_completed")
    dispatch("conductor:docusign_completed", message({"workflowInstanceId": workflow.id}))
    dispatch("conductor:docusign_completed", message({"workflowInstanceId": workflow.id}))
    late = ActionExecution.objects.filter(handler_name="complete_docusign_human_task_event").order_by("id").last()
    assert late.status == "SKIPPED" and "already" in late.error


def test_an_engine_outage_returns_the_message_and_records_the_attempt(shipping, customer_message):
    handler(START_SHIPPING, event="conductor:shipping_start")
    [decision] = dispatch("conductor:shipping_start", customer_message, engine=_Down())
    assert decision.action == "nack" and "did not answer" in decision.reason
    assert ActionExecution.objects.get().status == "IN_PROGRESS"
    again = message(customer_message.payload, delivery_count=2, message_id=customer_message.message_id)
    dispatch("conductor:shipping_start", again)
    execution = ActionExecution.objects.get()
    assert (execution.status, execution.attempts) == ("COMPLETED", 2)
    assert Workflow.objects.count() == 1


def test_an_action_effect_and_its_record_commit_together(shipping, customer_message):
    class CrashAfterEffect(BuiltinEngine):
        def start_workflow(self, *args, **kwargs):
            super().start_workflow(*args, **kwargs)
            raise RuntimeError("the process dies here")

    handler(START_SHIPPING, event="conductor:shipping_start")
    dispatch("conductor:shipping_start", customer_message, engine=CrashAfterEffect())
    assert not Workflow.objects.exists()  # the effect was rolled back with its failed record
    assert ActionExecution.objects.get().status == "FAILED"


def test_inactive_handlers_do_nothing_and_changes_apply_to_the_next_message(shipping):
    item = handler(START_SHIPPING, event="conductor:shipping_start", active=False)
    dispatch("conductor:shipping_start", message({"customer": {}}))
    assert not ActionExecution.objects.exists()
    item.active = True
    save_handler(item, user=None, source="test")
    dispatch("conductor:shipping_start", message({"customer": {}}))
    assert ActionExecution.objects.get().status == "COMPLETED"


def test_unmatched_messages_can_be_quarantined(customer_message):
    config = ensure_config("conductor:nobody_listens")
    config.unmatched = QueueConfig.Unmatched.QUARANTINE
    config.save()
    [decision] = dispatch_batch(config, [customer_message])
    assert decision.action == "quarantine" and "no active handler" in decision.reason


def test_inline_json_is_expanded_for_actions_that_ask(shipping):
    handler(START_SHIPPING, event="conductor:shipping_start", actions=[{
        "action": "start_workflow", "expandInlineJSON": True,
        "start_workflow": {"name": "shipping_workflow", "input": {"address": "${order.address}"}}}])
    dispatch("conductor:shipping_start", message({"order": json.dumps({"address": ADDRESS})}))
    assert Workflow.objects.get().input["address"] == ADDRESS


def test_inline_json_is_expanded_once_for_the_condition_and_for_actions_that_ask(shipping):
    # The order is JSON in a string, and its note JSON in a string inside that: only the order is parsed.
    handler(START_SHIPPING, event="conductor:shipping_start", condition="typeof $.order.note == 'string'", actions=[{
        "action": "start_workflow", "expandInlineJSON": True,
        "start_workflow": {"name": "shipping_workflow", "input": {"note": "${order.note}", "id": "${order.id}"}}}])
    note = json.dumps({"gift": True})
    dispatch("conductor:shipping_start", message({"order": json.dumps({"id": "o-1", "note": note})}))
    assert ActionExecution.objects.get().status == "COMPLETED"
    assert Workflow.objects.get().input["note"] == note and Workflow.objects.get().input["id"] == "o-1"


def test_a_value_param_condition_on_a_payload_that_is_not_an_object_is_a_failed_record(shipping):
    handler(START_SHIPPING, event="conductor:shipping_start", condition="ready", evaluatorType="value-param")
    [decision] = dispatch("conductor:shipping_start", message([{"ready": True}]))
    assert decision.action == "ack"
    execution = ActionExecution.objects.get()
    assert execution.status == "FAILED"
    assert execution.error == "value-param needs a JSON object as payload, not an array"
    assert not Workflow.objects.exists()


def test_actions_read_jsonpath_and_splice_maps_into_strings_as_java_prints_them(shipping):
    paths = {"label": "to ${customer.address}", "skus": "${order.items[*].sku}", "big": "${$..items[?(@.qty > 1)].sku}"}
    handler(START_SHIPPING, event="conductor:shipping_start", actions=[{
        "action": "start_workflow", "start_workflow": {"name": "shipping_workflow", "input": paths}}])
    items = [{"sku": "A1", "qty": 1}, {"sku": "B2", "qty": 2}]
    dispatch("conductor:shipping_start", message({"customer": {"address": {"city": "Oslo", "zip": 150}},
                                                  "order": {"items": items}}))
    workflow_input = Workflow.objects.get().input
    assert workflow_input["label"] == "to {city=Oslo, zip=150}"
    assert (workflow_input["skus"], workflow_input["big"]) == (["A1", "B2"], ["B2"])


def test_missing_parameters_fail_the_action_with_a_clear_error(shipping):
    handler(COMPLETE_DOCUSIGN, event="conductor:docusign_completed")
    dispatch("conductor:docusign_completed", message({"something": "else"}))
    execution = ActionExecution.objects.get()
    assert execution.status == "FAILED" and "workflowId resolved to None" in execution.error


def test_terminate_and_update_variables_act_on_the_workflow(shipping):
    workflow = start_shipping()
    handler(START_SHIPPING, name="vars", event="conductor:vars", actions=[{
        "action": "update_workflow_variables", "update_workflow_variables": {
            "workflowId": "${id}", "variables": {"tags": ["${tag}"]}, "appendArray": True}}])
    handler(START_SHIPPING, name="stop", event="conductor:stop", actions=[{
        "action": "terminate_workflow", "terminate_workflow": {"workflowId": "${id}", "terminationReason": "${why}"}}])
    dispatch("conductor:vars", message({"id": workflow.id, "tag": "a"}))
    dispatch("conductor:vars", message({"id": workflow.id, "tag": "b"}))
    workflow.refresh_from_db()
    assert workflow.variables["tags"] == ["a", "b"]
    dispatch("conductor:stop", message({"id": workflow.id, "why": "customer cancelled"}))
    workflow.refresh_from_db()
    assert workflow.status == "TERMINATED"


def test_two_copies_of_a_message_in_one_batch_run_once(shipping, customer_message):
    handler(START_SHIPPING, event="conductor:shipping_start")
    handler(START_SHIPPING, name="never_matches", event="conductor:shipping_start", condition="false")
    copy = message(customer_message.payload, delivery_count=2, message_id=customer_message.message_id)
    decisions = dispatch("conductor:shipping_start", customer_message, copy)
    assert [d.action for d in decisions] == ["ack", "ack"]
    assert Workflow.objects.count() == 1
    started = ActionExecution.objects.get(handler_name="start_shipping_workflow", duplicate_of=None)
    assert started.status == "COMPLETED"
    assert ActionExecution.objects.get(handler_name="start_shipping_workflow", duplicate_of=started).status == "SKIPPED"
    skipped = ActionExecution.objects.get(handler_name="never_matches", duplicate_of=None)
    assert ActionExecution.objects.filter(duplicate_of=skipped).count() == 1


def test_a_message_whose_condition_was_not_evaluated_comes_again_instead_of_failing(shipping, settings):
    """A condition that loops on some messages of a batch: the others are spared its time limit, and they
    are returned for redelivery rather than recorded FAILED and acknowledged (their actions lost)."""
    settings.CONDITION_TIME_LIMIT_SECONDS = 0.1
    handler(START_SHIPPING, event="conductor:shipping_start", condition="$.loop ? (function () { while (true) {} })() "
                                                                        ": $.ok")
    looping = [message({"loop": True}) for _ in range(2)]
    spared = message({"ok": True, "customer": {"name": "A", "address": ADDRESS}})
    decisions = dispatch("conductor:shipping_start", *looping, spared)
    assert [d.action for d in decisions] == ["ack", "ack", "nack"]
    assert list(ActionExecution.objects.filter(message_id=spared.message_id)) == []
    assert "not evaluated" in ReceivedMessage.objects.get(pk=decisions[2].record.pk).detail
    [again] = dispatch("conductor:shipping_start", message(spared.payload, delivery_count=2,
                                                            message_id=spared.message_id))
    assert again.action == "ack"
    assert ActionExecution.objects.get(message_id=spared.message_id).status == "COMPLETED"
    assert Workflow.objects.count() == 1


def test_a_redelivery_its_condition_was_not_evaluated_for_is_a_duplicate_when_its_actions_are_final(shipping,
                                                                                                    settings):
    settings.CONDITION_TIME_LIMIT_SECONDS = 0.1
    handler(START_SHIPPING, event="conductor:shipping_start", condition="$.loop ? (function () { while (true) {} })() "
                                                                        ": $.ok")
    done = message({"ok": True, "customer": {"name": "A", "address": ADDRESS}})
    dispatch("conductor:shipping_start", done)
    again = message(done.payload, delivery_count=2, message_id=done.message_id)
    decisions = dispatch("conductor:shipping_start", message({"loop": True}), message({"loop": True}), again)
    assert [d.action for d in decisions] == ["ack", "ack", "ack"]  # not returned to be evaluated again
    original = ActionExecution.objects.get(message_id=done.message_id, duplicate_of=None)
    assert [d.status for d in original.duplicates.all()] == ["SKIPPED"]
    assert Workflow.objects.count() == 1


def test_a_retry_records_the_revision_and_action_that_ran_then(shipping, customer_message):
    item = handler(START_SHIPPING, event="conductor:shipping_start")
    dispatch("conductor:shipping_start", customer_message, engine=_Down())
    item.actions = json.loads(json.dumps(item.actions))  # (a copy: the seed is shared with other tests)
    item.actions[0]["start_workflow"]["input"]["edited"] = True
    save_handler(item, user=None, source="test")
    again = message(customer_message.payload, delivery_count=2, message_id=customer_message.message_id)
    dispatch("conductor:shipping_start", again)
    execution = ActionExecution.objects.get()
    assert execution.status == "COMPLETED" and Workflow.objects.get().input["edited"] is True
    assert execution.revision.number == 2 == EventHandler.objects.get().revision

    # An action whose kind changed between the attempts runs as the kind it is now.
    workflow = Workflow.objects.get()
    item.actions = [{"action": "update_workflow_variables",
                     "update_workflow_variables": {"workflowId": workflow.id, "variables": {"seen": 1}}}]
    item.full_clean()
    save_handler(item, user=None, source="test")
    retried = message({"x": 1}, message_id="kind-change")
    ActionExecution.objects.create(execution_id="kind-change_0", event="conductor:shipping_start",
                                   message_id="kind-change", handler=item, handler_name=item.name, index=0,
                                   action="start_workflow", status="IN_PROGRESS", retryable=True, attempts=1)
    [decision] = dispatch("conductor:shipping_start", retried)
    execution = ActionExecution.objects.get(message_id="kind-change")
    assert decision.action == "ack" and (execution.action, execution.status) == ("update_workflow_variables",
                                                                               "COMPLETED")
    workflow.refresh_from_db()
    assert workflow.variables["seen"] == 1


@pytest.mark.parametrize("key", ["correlationId", "idempotencyKey"])
def test_a_too_long_key_fails_its_own_message_only(shipping, key):
    handler(START_SHIPPING, event="conductor:shipping_start", actions=[
        {"action": "start_workflow", "start_workflow": {"name": "shipping_workflow", key: "${ref}"}}])
    good, bad = message({"ref": "ok"}), message({"ref": "x" * 300})
    decisions = dispatch("conductor:shipping_start", good, bad)
    assert [d.action for d in decisions] == ["ack", "ack"]
    assert ActionExecution.objects.get(message_id=good.message_id).status == "COMPLETED"
    failed = ActionExecution.objects.get(message_id=bad.message_id)
    assert failed.status == "FAILED" and f"{key} is 300 characters long; at most 255" in failed.error
    assert Workflow.objects.count() == 1


@pytest.mark.parametrize(("region", "error"), [
    ("x" * 300, "taskToDomain['*'] is 300 characters long; at most 255 are allowed"),
    ({"name": "eu"}, "taskToDomain['*'] is a dict, not a domain name (a string)"),
])
def test_a_domain_the_tasks_cannot_hold_fails_its_own_message_only(shipping, region, error):
    start = {"name": "shipping_workflow", "taskToDomain": {"*": "${region}"}}
    handler(START_SHIPPING, event="conductor:shipping_start", actions=[{"action": "start_workflow",
                                                                       "start_workflow": start}])
    good, bad = message({"region": "eu"}), message({"region": region})
    decisions = dispatch("conductor:shipping_start", good, bad)
    assert [d.action for d in decisions] == ["ack", "ack"]
    assert ActionExecution.objects.get(message_id=good.message_id).status == "COMPLETED"
    failed = ActionExecution.objects.get(message_id=bad.message_id)
    assert failed.status == "FAILED" and error in failed.error and not failed.retryable
    assert list(Task.objects.values_list("domain", flat=True)) == ["eu"]


def test_an_action_waiting_for_a_retry_is_closed_when_its_message_is_acknowledged_without_it(shipping,
                                                                                           customer_message):
    item = handler(START_SHIPPING, event="conductor:shipping_start")
    dispatch("conductor:shipping_start", customer_message, engine=_Down())
    item.active = False
    save_handler(item, user=None, source="test")
    again = message(customer_message.payload, delivery_count=2, message_id=customer_message.message_id)
    [decision] = dispatch("conductor:shipping_start", again)
    assert decision.action == "ack"
    execution = ActionExecution.objects.get()
    assert execution.status == "SKIPPED" and not execution.retryable
    assert "delivery 2 of the message was acknowledged without it" in execution.reason
    assert not Workflow.objects.exists()


@pytest.mark.parametrize("id_length", [32, 300])  # (a broker id longer than the records' column is stored cut)
def test_an_action_waiting_for_a_retry_fails_when_its_message_is_quarantined_undispatched(shipping, id_length):
    from handlers.listener import handle_batch
    from queues.models import QuarantinedMessage
    from queues.providers.internal import InternalProvider

    handler(START_SHIPPING, event="conductor:shipping_start")
    config = ensure_config("conductor:shipping_start")
    first = message({"customer": {"address": ADDRESS}}, message_id=("m" * id_length))
    dispatch_batch(config, [first], engine=_Down())
    # The next deliveries' batches were rolled back (a database outage, a killed listener): this one is past
    # the maximum and goes to quarantine without being dispatched.
    late = message(first.payload, delivery_count=config.max_deliveries + 1, message_id=first.message_id)
    late.handle = (0, "gone")
    handle_batch(config, InternalProvider(config.spec()), [late])
    execution = ActionExecution.objects.get()
    assert execution.status == "FAILED" and execution.error.startswith("gave up: the message was quarantined")
    assert execution.finished_at is not None
    quarantined = QuarantinedMessage.objects.get()
    assert quarantined.message_id == execution.message_id == "m" * min(id_length, 255)
    assert [entry["delivery"] for entry in quarantined.history] == [1, config.max_deliveries + 1]


@pytest.mark.parametrize("note", [
    "[" * 1000 + "]" * 1000,  # more than json.loads can read
    "[" * 250 + "]" * 250,  # readable, deeper than the records can hold
    '{"a": "x\\u0000y"}',  # readable, holding text no record can store
])
def test_inline_json_the_records_cannot_hold_stays_a_string_and_its_batch_goes_on(shipping, note):
    start = {**START_SHIPPING["actions"][0], "expandInlineJSON": True}
    start["start_workflow"] = {**start["start_workflow"], "input": {"note": "${note}", "name": "${customer.name}"}}
    handler(START_SHIPPING, event="conductor:shipping_start", actions=[start])
    good = message({"customer": {"name": "Ada"}, "note": '{"ok": [1]}'})
    odd = message({"customer": {"name": "Bob"}, "note": note})
    assert [d.action for d in dispatch("conductor:shipping_start", good, odd)] == ["ack", "ack"]
    inputs = {w.input["name"]: w.input["note"] for w in Workflow.objects.all()}
    assert inputs == {"Ada": {"ok": [1]}, "Bob": note}


def test_a_redelivery_does_not_run_a_handler_whose_condition_was_false_on_its_first_delivery(shipping):
    item = handler(START_SHIPPING, event="conductor:shipping_start", condition="$.express == true")
    first = message({"express": False, "customer": {"address": ADDRESS}})
    dispatch("conductor:shipping_start", first)
    item.condition = ""  # edited after the message was decided; then the broker delivers it again
    save_handler(item, user=None, source="test")
    dispatch("conductor:shipping_start", message(first.payload, delivery_count=2, message_id=first.message_id))
    original, duplicate = ActionExecution.objects.order_by("id")
    assert (original.index, original.status) == (-1, "SKIPPED")
    assert duplicate.duplicate_of == original and duplicate.status == "SKIPPED"
    assert not Workflow.objects.exists()


def test_a_renamed_handler_reads_only_the_revision_of_its_current_name():
    from handlers.dispatch import _their_revisions

    item = handler(START_SHIPPING, event="conductor:shipping_start")
    item.name = "start_shipping_renamed"
    save_handler(item, user=None, source="test")
    # The old name's first revision and the new name's first revision both carry number 1.
    assert sorted(HandlerRevision.objects.filter(handler=item).values_list("handler_name", "number")) == [
        ("start_shipping_renamed", 1), ("start_shipping_workflow", 1)]
    assert [r.handler_name for r in _their_revisions("conductor:shipping_start")] == ["start_shipping_renamed"]


def test_a_retry_runs_an_action_changed_since_it_completed(shipping, customer_message):
    from queues.models import QuarantinedMessage
    from queues.quarantine import retry_id

    item = handler(START_SHIPPING, event="conductor:shipping_start")
    dispatch("conductor:shipping_start", customer_message)
    quarantined = QuarantinedMessage.objects.create(event="conductor:shipping_start", reason="max_deliveries",
                                                    message_id=customer_message.message_id)
    item.apply_conductor({**START_SHIPPING, "event": item.event, "actions": [
        {"action": "terminate_workflow", "terminate_workflow": {"workflowId": "no-such-workflow"}}]})
    save_handler(item, user=None, source="test")
    retried = message(customer_message.payload, message_id=retry_id(customer_message.message_id, quarantined.pk))
    dispatch("conductor:shipping_start", retried)
    execution = ActionExecution.objects.get(message_id=retried.message_id)
    assert (execution.action, execution.status) == ("terminate_workflow", "FAILED")


def test_a_retry_of_a_retry_skips_what_the_nearer_retry_completed(shipping, customer_message):
    from queues.models import QuarantinedMessage
    from queues.quarantine import retry_id
    from workflows import runtime

    running = runtime.start_workflow(shipping.name, input={"customerName": "x"})
    item = handler(START_SHIPPING, event="conductor:shipping_start", actions=[
        {"action": "terminate_workflow", "terminate_workflow": {"workflowId": running.id}}])
    dispatch("conductor:shipping_start", customer_message)  # terminates: COMPLETED

    def retry_of(message_id: str) -> Message:
        quarantined = QuarantinedMessage.objects.create(event="conductor:shipping_start", message_id=message_id,
                                                        reason="max_deliveries")
        return message(customer_message.payload, message_id=retry_id(message_id, quarantined.pk))

    item.apply_conductor({**START_SHIPPING, "event": item.event})  # now it starts a workflow instead
    save_handler(item, user=None, source="test")
    first_retry = retry_of(customer_message.message_id)
    dispatch("conductor:shipping_start", first_retry)  # a changed action: it runs, and completes
    second_retry = retry_of(first_retry.message_id)
    dispatch("conductor:shipping_start", second_retry)
    last = ActionExecution.objects.get(message_id=second_retry.message_id)
    assert last.status == "SKIPPED" and f"it completed for message {first_retry.message_id} " in last.reason
    assert Workflow.objects.count() == 2  # `running` and the one the first retry started


def test_a_message_id_holding_nul_is_recorded_with_u_fffd_in_its_place(shipping):
    handler(START_SHIPPING, event="conductor:shipping_start")
    odd = message({"customer": {"name": "A", "address": ADDRESS}}, message_id="id\x00with-nul")
    assert [d.action for d in dispatch("conductor:shipping_start", odd)] == ["ack"]
    assert ActionExecution.objects.get().execution_id == "id\ufffdwith-nul_0"
    assert ReceivedMessage.objects.get().message_id == "id\ufffdwith-nul"
