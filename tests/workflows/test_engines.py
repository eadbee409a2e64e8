"""One contract, two engines: the built-in runtime, and the remote Conductor engine talking to a
live Eventhub server's own workflow API over HTTP (with an API key, as against a real Conductor)."""

import pytest

from handlers.models import ApiKey
from workflows.builtin import BuiltinEngine
from workflows.conductor import ConductorEngine
from workflows.errors import (
    NoSuchDefinition,
    NoSuchWorkflow,
    TaskAlreadyFinished,
    TaskNotFound,
    WorkflowAlreadyFinished,
)
from workflows.runtime import poll_tasks

from .conftest import ADDRESS, register, shipping_definition

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["builtin", "conductor"])
def engine(request, django_user_model):
    register(shipping_definition())
    if request.param == "builtin":
        yield BuiltinEngine()
        return
    live_server = request.getfixturevalue("live_api")
    user = django_user_model.objects.create_superuser(username="engine", password="pw-engine", email="")
    key, secret = ApiKey.issue(user, "remote engine")
    remote = ConductorEngine(live_server.url + "/api", key.key_id, secret, timeout=10, retries=0)
    yield remote
    remote.close()


def statuses(workflow: dict) -> list[tuple[str, str]]:
    return [(t["referenceTaskName"], t["status"]) for t in workflow["tasks"]]


def test_it_starts_a_workflow_and_reads_it_back(engine):
    workflow_id = engine.start_workflow("shipping_workflow", None, {"address": ADDRESS}, "order-1")
    workflow = engine.get_workflow(workflow_id)
    assert (workflow["workflowId"], workflow["status"], workflow["correlationId"]) == (workflow_id, "RUNNING",
                                                                                       "order-1")
    assert workflow["input"] == {"address": ADDRESS}
    assert statuses(workflow) == [("human_docusign_step_ref", "IN_PROGRESS")]
    assert engine.get_workflow(workflow_id, include_tasks=False)["tasks"] == []


def test_it_runs_the_shipping_workflow_to_completion(engine):
    workflow_id = engine.start_workflow("shipping_workflow", 1, {"address": ADDRESS})
    engine.complete_task(workflow_id=workflow_id, task_ref_name="human_docusign_step_ref",
                         output={"signedBy": "ada@example.com"})
    [shipping] = poll_tasks("ship_order", worker_id="worker-1")
    assert shipping.input == {"address": ADDRESS, "signedBy": "ada@example.com"}
    # Named by its id only, the task is reached with its workflow's id.
    assert engine.complete_task(task_id=shipping.id, output={"trackingNumber": "TRK-5"}) == (shipping.id, workflow_id)
    workflow = engine.get_workflow(workflow_id)
    assert workflow["status"] == "COMPLETED"
    assert workflow["output"] == {"trackingNumber": "TRK-5", "signedBy": "ada@example.com"}
    assert statuses(workflow) == [("human_docusign_step_ref", "COMPLETED"), ("ship_order_ref", "COMPLETED")]


def test_it_fails_the_workflow_with_the_reason(engine):
    workflow_id = engine.start_workflow("shipping_workflow")
    engine.fail_task(workflow_id=workflow_id, task_ref_name="human_docusign_step_ref", reason="declined",
                     output={"declinedBy": "ada"})
    workflow = engine.get_workflow(workflow_id)
    assert (workflow["status"], workflow["reasonForIncompletion"]) == ("FAILED", "declined")
    assert workflow["tasks"][0]["outputData"] == {"declinedBy": "ada"}


def test_it_returns_the_same_workflow_for_a_repeated_idempotency_key(engine):
    first = engine.start_workflow("shipping_workflow", idempotency_key="order-42")
    assert engine.start_workflow("shipping_workflow", idempotency_key="order-42") == first
    assert engine.start_workflow("shipping_workflow", idempotency_key="order-43") != first


def test_it_terminates_once(engine):
    workflow_id = engine.start_workflow("shipping_workflow")
    engine.terminate_workflow(workflow_id, "customer cancelled")
    workflow = engine.get_workflow(workflow_id)
    assert (workflow["status"], workflow["reasonForIncompletion"]) == ("TERMINATED", "customer cancelled")
    with pytest.raises(WorkflowAlreadyFinished) as error:
        engine.terminate_workflow(workflow_id, "again")
    assert error.value.retryable is False


def test_it_updates_variables_replacing_or_appending(engine):
    workflow_id = engine.start_workflow("shipping_workflow")
    engine.update_variables(workflow_id, {"tags": ["signed"], "stage": 1})
    engine.update_variables(workflow_id, {"tags": ["shipped"], "stage": 2}, append_array=True)
    assert engine.get_workflow(workflow_id)["variables"] == {"tags": ["signed", "shipped"], "stage": 2}


def test_it_classes_its_errors_as_retryable_or_permanent(engine):
    with pytest.raises(NoSuchDefinition) as no_definition:
        engine.start_workflow("no_such_workflow")
    with pytest.raises(NoSuchWorkflow) as no_workflow:
        engine.complete_task(workflow_id="no-such-id", task_ref_name="human_docusign_step_ref")
    workflow_id = engine.start_workflow("shipping_workflow")
    with pytest.raises(TaskNotFound) as not_yet:
        engine.complete_task(workflow_id=workflow_id, task_ref_name="ship_order_ref")
    engine.complete_task(workflow_id=workflow_id, task_ref_name="human_docusign_step_ref")
    with pytest.raises(TaskAlreadyFinished) as finished:
        engine.fail_task(workflow_id=workflow_id, task_ref_name="human_docusign_step_ref")
    with pytest.raises(TaskNotFound) as unknown_id:
        engine.complete_task(task_id="no-such-task")
    engine.terminate_workflow(workflow_id)
    with pytest.raises(TaskNotFound) as never:
        engine.complete_task(workflow_id=workflow_id, task_ref_name="no_such_ref")
    retryable = {name: error.value.retryable for name, error in [
        ("no_definition", no_definition), ("no_workflow", no_workflow), ("not_yet", not_yet),
        ("finished", finished), ("unknown_id", unknown_id), ("never", never)]}
    assert retryable == {"no_definition": False, "no_workflow": False, "not_yet": True, "finished": False,
                         "unknown_id": False, "never": False}


def test_a_task_reference_finds_the_highest_loop_iteration_of_that_task(engine):
    register({"name": "loop_flow", "version": 1, "tasks": [
        {"name": "approve", "taskReferenceName": f"approve__{n}", "type": "WAIT"} for n in (1, 2)]})
    workflow_id = engine.start_workflow("loop_flow")
    engine.complete_task(workflow_id=workflow_id, task_ref_name="approve", output={"by": "ada"})
    assert statuses(engine.get_workflow(workflow_id)) == [("approve__1", "COMPLETED"), ("approve__2", "IN_PROGRESS")]
    updated = engine.complete_task(workflow_id=workflow_id, task_ref_name="approve", output={"by": "bob"})
    workflow = engine.get_workflow(workflow_id)
    assert updated.task_id == workflow["tasks"][1]["taskId"] and workflow["status"] == "COMPLETED"
    assert workflow["tasks"][1]["outputData"] == {"by": "bob"}
