import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from workflows import runtime
from workflows.errors import (
    InvalidRequest,
    NoSuchDefinition,
    NoSuchWorkflow,
    TaskAlreadyFinished,
    TaskNotFound,
    WorkflowAlreadyFinished,
)
from workflows.models import Task, TaskStatus, Workflow, WorkflowStatus

from .conftest import ADDRESS, one_task, register, shipping_definition, unique

pytestmark = pytest.mark.django_db


def tasks_of(workflow: Workflow) -> list[tuple[str, str]]:
    return [(t.reference_task_name, t.status) for t in workflow.tasks.order_by("seq")]


def test_it_schedules_the_first_task_with_resolved_input(shipping):
    workflow = runtime.start_workflow("shipping_workflow", None, {"address": ADDRESS}, "order-1")
    human = workflow.tasks.get()
    assert (human.reference_task_name, human.task_type, human.status) == (
        "human_docusign_step_ref", "HUMAN", TaskStatus.IN_PROGRESS)
    assert human.input == {"address": ADDRESS}
    assert workflow.status == WorkflowStatus.RUNNING and workflow.correlation_id == "order-1"


def test_it_runs_tasks_in_sequence_and_completes_with_the_output_parameters(shipping):
    workflow = runtime.start_workflow("shipping_workflow", None, {"address": ADDRESS})
    runtime.update_task("COMPLETED", workflow_id=workflow.id, task_ref_name="human_docusign_step_ref",
                        output={"signedBy": "ada@example.com"})
    ship = Task.objects.get(workflow=workflow, reference_task_name="ship_order_ref")
    assert ship.status == TaskStatus.SCHEDULED
    assert ship.input == {"address": ADDRESS, "signedBy": "ada@example.com"}
    runtime.update_task("COMPLETED", task_id=ship.id, output={"trackingNumber": "TRK-9"})
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.COMPLETED
    assert workflow.output == {"trackingNumber": "TRK-9", "signedBy": "ada@example.com"}
    assert workflow.ended_at is not None


def test_it_fails_the_workflow_when_a_task_fails(shipping):
    workflow = runtime.start_workflow("shipping_workflow", None, {"address": ADDRESS})
    runtime.update_task("FAILED", workflow_id=workflow.id, task_ref_name="human_docusign_step_ref",
                        reason="customer declined")
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.FAILED
    assert workflow.reason_for_incompletion == "customer declined"
    assert tasks_of(workflow) == [("human_docusign_step_ref", "FAILED")]


def test_it_merges_output_over_what_the_task_has(shipping):
    workflow = runtime.start_workflow("shipping_workflow", None, {"address": ADDRESS})
    runtime.update_task("IN_PROGRESS", workflow_id=workflow.id, task_ref_name="human_docusign_step_ref",
                        output={"a": 1, "b": 1})
    task = runtime.update_task("COMPLETED", workflow_id=workflow.id, task_ref_name="human_docusign_step_ref",
                               output={"b": 2})
    task.refresh_from_db()
    assert task.output == {"a": 1, "b": 2}


def test_it_uses_the_latest_version_unless_one_is_named(shipping):
    newer = dict(shipping.definition, version=2, tasks=shipping.definition["tasks"][:1])
    register(newer)
    assert runtime.start_workflow("shipping_workflow").version == 2
    assert runtime.start_workflow("shipping_workflow", 1).version == 1


def test_it_returns_the_existing_workflow_for_a_repeated_idempotency_key(shipping):
    first = runtime.start_workflow("shipping_workflow", idempotency_key="order-7")
    again = runtime.start_workflow("shipping_workflow", input={"other": True}, idempotency_key="order-7")
    assert again.id == first.id
    assert Workflow.objects.count() == 1


def test_it_stores_the_trigger_on_workflows_and_tasks(shipping):
    trigger = {"messageId": "m-1", "executionId": "m-1_0", "handler": "docusign"}
    workflow = runtime.start_workflow("shipping_workflow", trigger=trigger)
    task = runtime.update_task("COMPLETED", workflow_id=workflow.id, task_ref_name="human_docusign_step_ref",
                               trigger=trigger)
    assert Workflow.objects.get(pk=workflow.id).trigger == trigger
    assert Task.objects.get(pk=task.id).trigger == trigger


def test_it_classes_engine_errors(shipping):
    with pytest.raises(NoSuchDefinition) as missing:
        runtime.start_workflow("no_such_workflow")
    assert missing.value.retryable is False
    with pytest.raises(NoSuchWorkflow):
        runtime.update_task("COMPLETED", workflow_id="nope", task_ref_name="x")
    workflow = runtime.start_workflow("shipping_workflow")
    with pytest.raises(TaskNotFound) as not_yet:
        runtime.update_task("COMPLETED", workflow_id=workflow.id, task_ref_name="ship_order_ref")
    assert not_yet.value.retryable is True
    runtime.update_task("COMPLETED", workflow_id=workflow.id, task_ref_name="human_docusign_step_ref")
    with pytest.raises(TaskAlreadyFinished) as finished:
        runtime.update_task("COMPLETED", workflow_id=workflow.id, task_ref_name="human_docusign_step_ref")
    assert finished.value.retryable is False
    runtime.terminate_workflow(workflow.id, "stop")
    with pytest.raises(TaskNotFound) as never:
        runtime.update_task("COMPLETED", workflow_id=workflow.id, task_ref_name="no_such_ref")
    assert never.value.retryable is False
    with pytest.raises(WorkflowAlreadyFinished):
        runtime.terminate_workflow(workflow.id, "again")
    with pytest.raises(InvalidRequest):
        runtime.update_task("DONE", workflow_id=workflow.id, task_ref_name="ship_order_ref")


def test_it_terminates_a_workflow_and_cancels_what_waits(shipping):
    workflow = runtime.start_workflow("shipping_workflow")
    runtime.terminate_workflow(workflow.id, "customer cancelled")
    workflow.refresh_from_db()
    assert (workflow.status, workflow.reason_for_incompletion) == (WorkflowStatus.TERMINATED, "customer cancelled")
    assert tasks_of(workflow) == [("human_docusign_step_ref", "CANCELED")]


def test_it_updates_variables_replacing_or_appending(shipping):
    workflow = runtime.start_workflow("shipping_workflow")
    runtime.update_variables(workflow.id, {"tags": ["a"], "n": 1})
    runtime.update_variables(workflow.id, {"tags": ["b"], "n": 2}, append_array=True)
    assert Workflow.objects.get(pk=workflow.id).variables == {"tags": ["a", "b"], "n": 2}
    runtime.update_variables(workflow.id, {"tags": ["c"]})
    assert Workflow.objects.get(pk=workflow.id).variables == {"tags": ["c"], "n": 2}


def test_it_runs_set_variable_and_terminate_inline(db):
    name = unique("flow")
    register({"name": name, "version": 1, "tasks": [
        {"name": "set", "taskReferenceName": "set_ref", "type": "SET_VARIABLE",
         "inputParameters": {"region": "${workflow.input.region}"}},
        {"name": "stop", "taskReferenceName": "stop_ref", "type": "TERMINATE",
         "inputParameters": {"terminationStatus": "COMPLETED", "terminationReason": "done early",
                             "workflowOutput": {"region": "${workflow.variables.region}"}}},
        {"name": "never", "taskReferenceName": "never_ref", "type": "SIMPLE"},
    ]})
    workflow = runtime.start_workflow(name, input={"region": "eu"})
    assert workflow.status == WorkflowStatus.COMPLETED
    assert workflow.variables == {"region": "eu"}
    assert workflow.output == {"region": "eu"}
    assert tasks_of(workflow) == [("set_ref", "COMPLETED"), ("stop_ref", "COMPLETED")]


def test_it_fails_a_workflow_terminated_with_status_failed(db):
    data = one_task("TERMINATE", inputParameters={"terminationStatus": "FAILED", "terminationReason": "bad order"})
    register(data)
    workflow = runtime.start_workflow(data["name"])
    assert (workflow.status, workflow.reason_for_incompletion) == (WorkflowStatus.FAILED, "bad order")


def test_it_keeps_an_indefinite_wait_until_completed_from_outside(db):
    data = one_task("WAIT")
    register(data)
    workflow = runtime.start_workflow(data["name"])
    task = workflow.tasks.get()
    assert (task.status, task.wait_until) == (TaskStatus.IN_PROGRESS, None)
    assert runtime.complete_due_waits(timezone.now() + dt.timedelta(days=365)) == 0
    runtime.update_task("COMPLETED", workflow_id=workflow.id, task_ref_name="step_ref")
    assert Workflow.objects.get(pk=workflow.id).status == WorkflowStatus.COMPLETED


def test_it_completes_a_wait_with_a_duration_once_it_is_due(db):
    data = one_task("WAIT", inputParameters={"duration": "2h 30m"})
    register(data)
    workflow = runtime.start_workflow(data["name"])
    task = workflow.tasks.get()
    assert task.wait_until == task.scheduled_at + dt.timedelta(hours=2, minutes=30)
    assert runtime.complete_due_waits(task.wait_until - dt.timedelta(seconds=1)) == 0
    assert runtime.complete_due_waits(task.wait_until) == 1
    assert Workflow.objects.get(pk=workflow.id).status == WorkflowStatus.COMPLETED


def test_it_waits_until_a_timestamp_and_passes_one_already_gone(db):
    future = one_task("WAIT", inputParameters={"until": "${workflow.input.until}"})
    register(future)
    workflow = runtime.start_workflow(future["name"], input={"until": "2999-01-01 10:00"})
    assert workflow.tasks.get().wait_until == dt.datetime(2999, 1, 1, 10, 0, tzinfo=dt.UTC)
    past = runtime.start_workflow(future["name"], input={"until": "2001-01-01T00:00:00+00:00"})
    assert past.status == WorkflowStatus.COMPLETED


def test_it_fails_a_wait_whose_resolved_duration_is_unreadable(db):
    data = one_task("WAIT", inputParameters={"duration": "${workflow.input.d}"})
    register(data)
    workflow = runtime.start_workflow(data["name"], input={"d": "soon"})
    assert workflow.status == WorkflowStatus.FAILED
    assert "soon" in workflow.reason_for_incompletion


def test_it_fails_an_event_task_whose_sink_is_unknown(db):
    data = one_task("EVENT", sink="kafka:orders")
    register(data)
    workflow = runtime.start_workflow(data["name"])
    assert workflow.status == WorkflowStatus.FAILED
    assert "kafka:orders" in workflow.reason_for_incompletion
    assert tasks_of(workflow) == [("step_ref", "FAILED")]


def test_it_lets_workers_claim_each_simple_task_once(shipping):
    workflow = runtime.start_workflow("shipping_workflow")
    assert runtime.poll_tasks("ship_order") == []
    runtime.update_task("COMPLETED", workflow_id=workflow.id, task_ref_name="human_docusign_step_ref")
    claimed = runtime.poll_tasks("ship_order", worker_id="w1", count=5)
    assert [(t.reference_task_name, t.status, t.worker_id, t.poll_count) for t in claimed] == [
        ("ship_order_ref", TaskStatus.IN_PROGRESS, "w1", 1)]
    assert runtime.poll_tasks("ship_order", worker_id="w2") == []


def test_it_polls_tasks_of_a_domain_only_with_that_domain(shipping):
    workflow = runtime.start_workflow("shipping_workflow", task_to_domain={"ship_order": "eu"})
    runtime.update_task("COMPLETED", workflow_id=workflow.id, task_ref_name="human_docusign_step_ref")
    assert runtime.poll_tasks("ship_order") == []
    assert [t.domain for t in runtime.poll_tasks("ship_order", domain="eu")] == ["eu"]


def test_definitions_are_remembered_by_exact_version_or_latest(shipping):
    newer = register(shipping_definition(version=2))
    other = register(shipping_definition(name="other_flow", version=3))
    wanted = {("shipping_workflow", 1), ("shipping_workflow", None), ("other_flow", None), ("other_flow", 7),
              ("missing_flow", None)}
    found = list(runtime.definitions_query(wanted))
    assert {d.pk for d in found} == {shipping.pk, newer.pk, other.pk}
    with runtime.remembering_definitions() as remembered:
        runtime.remember_definitions(wanted, found)
        with CaptureQueriesContext(connection) as reads:
            assert runtime.find_definition("shipping_workflow", 1).pk == shipping.pk
            assert runtime.find_definition("shipping_workflow", None).pk == newer.pk
            assert runtime.find_definition("other_flow", None).pk == other.pk
        assert reads.captured_queries == []
        assert remembered.used == {("shipping_workflow", 1), ("shipping_workflow", None), ("other_flow", None)}
        with pytest.raises(NoSuchDefinition):
            runtime.find_definition("other_flow", 7)
        with pytest.raises(NoSuchDefinition):
            runtime.find_definition("missing_flow", None)
    assert ("other_flow", 7) not in remembered.used  # only what was found (a batch reads ahead what it used)
