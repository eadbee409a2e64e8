"""What start_workflow, complete_task and fail_task do to a workflow, as Conductor's own event actions do it
(issue 19, points 5 to 9), on the built-in engine; tests/workflows/test_conductor_engine.py has the remote one."""

import pytest

from handlers.models import ActionExecution
from workflows.models import Task, Workflow

from ..workflows.conftest import register
from .test_dispatch import dispatch, handler, message

pytestmark = pytest.mark.django_db
START_EVENT = "conductor:parity_start"
TASK_EVENT = "conductor:parity_task"


def start_handler(**start) -> None:
    handler({"name": "parity_start", "event": START_EVENT, "active": True, "actions": [{
        "action": "start_workflow", "start_workflow": {"name": "parity_flow", "input": {"id": "${id}"}, **start}}]})


@pytest.fixture
def parity_flow():
    return register({"name": "parity_flow", "version": 1, "tasks": [
        {"name": "review", "taskReferenceName": "review_ref", "type": "HUMAN"},
        {"name": "ship", "taskReferenceName": "ship_ref", "type": "SIMPLE"},
    ]})


def started() -> Workflow:
    return Workflow.objects.get(pk=ActionExecution.objects.get(event=START_EVENT).workflow_id)


def test_it_gives_the_started_workflow_the_handlers_event(parity_flow, api):
    start_handler()
    dispatch(START_EVENT, message({"id": 7}))
    workflow = started()
    assert workflow.event == START_EVENT
    assert api.get(f"/api/workflow/{workflow.id}").json()["event"] == START_EVENT


def test_it_takes_the_payloads_task_to_domain_when_the_action_has_none(parity_flow):
    start_handler()
    dispatch(START_EVENT, message({"id": 7, "taskToDomain": {"ship": "eu"}}))
    workflow = started()
    assert workflow.task_to_domain == {"ship": "eu"}
    assert ActionExecution.objects.get(event=START_EVENT).input["taskToDomain"] == {"ship": "eu"}


def test_the_actions_own_task_to_domain_wins_over_the_payloads(parity_flow):
    start_handler(taskToDomain={"ship": "${region}"})
    dispatch(START_EVENT, message({"id": 7, "region": "us", "taskToDomain": {"ship": "eu"}}))
    assert started().task_to_domain == {"ship": "us"}


def test_it_keeps_the_literal_text_of_a_correlation_id_that_resolves_to_nothing(parity_flow):
    start_handler(correlationId="${order.id}")
    dispatch(START_EVENT, message({"id": 7}))
    assert started().correlation_id == "${order.id}"


def test_a_correlation_id_that_resolves_keeps_its_value(parity_flow):
    start_handler(correlationId="${order.id}")
    dispatch(START_EVENT, message({"id": 7, "order": {"id": "o-7"}}))
    assert started().correlation_id == "o-7"


@pytest.mark.parametrize("kind", ["complete_task", "fail_task"])
def test_a_task_action_writes_the_tasks_reference_into_its_output_as_conductor_does(parity_flow, kind):
    start_handler()
    dispatch(START_EVENT, message({"id": 7}))
    workflow = started()
    handler({"name": "parity_task", "event": TASK_EVENT, "active": True, "actions": [{
        "action": kind, kind: {"workflowId": "${wf}", "taskRefName": "review_ref", "output": {"by": "${by}"}}}]})
    [decision] = dispatch(TASK_EVENT, message({"wf": workflow.id, "by": "ada"}, message_id="m-1"))
    assert decision.action == "ack"
    review = Task.objects.get(workflow=workflow, reference_task_name="review_ref")
    assert review.status == ("COMPLETED" if kind == "complete_task" else "FAILED")
    assert review.output == {"workflowId": workflow.id, "taskRefName": "review_ref", "taskId": None, "by": "ada",
                             "conductor.event.messageId": "m-1", "conductor.event.name": TASK_EVENT}


def test_a_task_reference_finds_the_highest_loop_iteration_of_that_task():
    flow = register({"name": "loop_flow", "version": 1, "tasks": [
        {"name": "approve", "taskReferenceName": "approve__1", "type": "WAIT"},
        {"name": "approve", "taskReferenceName": "approve__2", "type": "WAIT"},
        {"name": "approve", "taskReferenceName": "approve__10", "type": "WAIT"},
        {"name": "approve_all", "taskReferenceName": "approve_all", "type": "WAIT"},
    ]})
    handler({"name": "loop_start", "event": START_EVENT, "active": True, "actions": [{
        "action": "start_workflow", "start_workflow": {"name": flow.name}}]})
    handler({"name": "loop_task", "event": TASK_EVENT, "active": True, "actions": [{
        "action": "complete_task", "complete_task": {"workflowId": "${wf}", "taskRefName": "approve"}}]})
    dispatch(START_EVENT, message({}))
    workflow = started()
    for _ in range(2):  # approve__1, then approve__2, each the highest iteration there is by then
        dispatch(TASK_EVENT, message({"wf": workflow.id}))
    tasks = dict(Task.objects.filter(workflow=workflow).values_list("reference_task_name", "status"))
    assert tasks == {"approve__1": "COMPLETED", "approve__2": "COMPLETED", "approve__10": "IN_PROGRESS"}
    dispatch(TASK_EVENT, message({"wf": workflow.id}))
    assert Task.objects.get(workflow=workflow, reference_task_name="approve__10").status == "COMPLETED"
    # approve_all is another task, not an iteration of approve: nothing is left for the reference.
    dispatch(TASK_EVENT, message({"wf": workflow.id}, message_id="m-last"))
    assert Task.objects.get(workflow=workflow, reference_task_name="approve_all").status == "IN_PROGRESS"
    assert ActionExecution.objects.get(message_id="m-last").status == "SKIPPED"  # approve__10: already finished
