"""The official conductor-python SDK against a live Eventhub server, as a Conductor user runs it.

This is also the issue's "done when": shipping_workflow registered, started with the customer's
address, its HUMAN task completed through the API, its shipping task done by a polling worker.
"""

from concurrent.futures import wait
from types import SimpleNamespace

import pytest
from conductor.client.automator.task_runner import TaskRunner
from conductor.client.configuration.configuration import Configuration
from conductor.client.configuration.settings.authentication_settings import AuthenticationSettings
from conductor.client.http.models.start_workflow_request import StartWorkflowRequest
from conductor.client.http.models.workflow_def import WorkflowDef
from conductor.client.http.models.workflow_task import WorkflowTask
from conductor.client.orkes.orkes_metadata_client import OrkesMetadataClient
from conductor.client.orkes.orkes_task_client import OrkesTaskClient
from conductor.client.orkes.orkes_workflow_client import OrkesWorkflowClient
from conductor.client.worker.worker import Worker

from handlers.models import ApiKey
from workflows.models import Workflow, WorkflowDefinition, WorkflowStatus

from .conftest import ADDRESS

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def configuration(live_api, django_user_model) -> Configuration:
    user = django_user_model.objects.create_superuser(username="sdk", password="pw-sdk", email="")
    key, secret = ApiKey.issue(user, "sdk")
    return Configuration(server_api_url=live_api.url + "/api",
                         authentication_settings=AuthenticationSettings(key_id=key.key_id, key_secret=secret))


@pytest.fixture
def sdk(configuration) -> SimpleNamespace:
    """The SDK's clients; their kept-alive connections are closed after the test, so no server
    thread outlives it holding the database."""
    clients = SimpleNamespace(metadata=OrkesMetadataClient(configuration), workflows=OrkesWorkflowClient(configuration),
                              tasks=OrkesTaskClient(configuration), configuration=configuration)
    yield clients
    for client in (clients.metadata, clients.workflows, clients.tasks):
        client.api_client.rest_client.close()


def shipping_def() -> WorkflowDef:
    return WorkflowDef(
        name="shipping_workflow", version=1, description="Sign, then ship.", input_parameters=["address"],
        tasks=[
            WorkflowTask(name="human_docusign_step", task_reference_name="human_docusign_step_ref", type="HUMAN",
                         input_parameters={"address": "${workflow.input.address}"}),
            WorkflowTask(name="ship_order", task_reference_name="ship_order_ref", type="SIMPLE",
                         input_parameters={"address": "${workflow.input.address}",
                                           "signer": "${human_docusign_step_ref.output.result.signedBy}"}),
        ],
        output_parameters={"trackingNumber": "${ship_order_ref.output.trackingNumber}"},
    )


def run_worker_once(configuration: Configuration, task_name: str, execute) -> None:
    """One poll → execute → update cycle of the SDK's own TaskRunner, waited for to the end."""
    runner = TaskRunner(Worker(task_name, execute, poll_interval=0.01, worker_id="sdk-worker"), configuration)
    try:
        runner.run_once()
        wait(list(runner._running_tasks), timeout=30)
    finally:
        runner._executor.shutdown(wait=True)
        runner.task_client.api_client.rest_client.close()


def ship(task) -> dict:
    address = task.input_data["address"]
    return {"trackingNumber": f"TRK-{address['zip'].replace(' ', '')}", "signer": task.input_data["signer"]}


def decline(task) -> dict:
    raise RuntimeError("the carrier refused the parcel")


def start_shipping(sdk: SimpleNamespace) -> str:
    sdk.metadata.register_workflow_def(shipping_def(), overwrite=True)
    workflow_id = sdk.workflows.start_workflow(
        StartWorkflowRequest(name="shipping_workflow", input={"address": ADDRESS}, correlation_id="order-1")
    )
    sdk.tasks.update_task_by_ref_name(workflow_id, "human_docusign_step_ref", "COMPLETED",
                                      {"signedBy": "ada@example.com"})
    return workflow_id


def test_it_registers_reads_and_starts_with_the_sdk(sdk):
    sdk.metadata.register_workflow_def(shipping_def(), overwrite=True)
    assert sdk.metadata.get_workflow_def("shipping_workflow").tasks[0].task_reference_name == "human_docusign_step_ref"
    assert WorkflowDefinition.objects.get().definition["tasks"][1]["type"] == "SIMPLE"
    workflow_id = sdk.workflows.start_workflow_by_name("shipping_workflow", {"address": ADDRESS}, correlationId="o-2")
    workflow = sdk.workflows.get_workflow(workflow_id, include_tasks=True)
    assert (workflow.workflow_id, workflow.status, workflow.correlation_id) == (workflow_id, "RUNNING", "o-2")
    assert workflow.input == {"address": ADDRESS}
    assert [t.reference_task_name for t in workflow.tasks] == ["human_docusign_step_ref"]


def test_it_runs_the_shipping_workflow_to_completed_with_the_sdk(sdk):
    workflow_id = start_shipping(sdk)
    run_worker_once(sdk.configuration, "ship_order", ship)
    workflow = sdk.workflows.get_workflow(workflow_id, include_tasks=True)
    assert workflow.status == "COMPLETED"
    assert workflow.output == {"trackingNumber": "TRK-SW1Y4LB"}
    ship_task = workflow.tasks[1]
    assert (ship_task.status, ship_task.worker_id) == ("COMPLETED", "sdk-worker")
    assert ship_task.output_data == {"trackingNumber": "TRK-SW1Y4LB", "signer": "ada@example.com"}


def test_it_ends_failed_when_the_worker_fails_the_task(sdk):
    workflow_id = start_shipping(sdk)
    run_worker_once(sdk.configuration, "ship_order", decline)
    workflow = Workflow.objects.get(pk=workflow_id)
    assert workflow.status == WorkflowStatus.FAILED
    assert "the carrier refused the parcel" in workflow.reason_for_incompletion


def test_it_completes_a_wait_task_by_reference_name_with_the_sdk(sdk):
    definition = WorkflowDef(name="wait_for_payment", version=1, tasks=[
        WorkflowTask(name="wait", task_reference_name="wait_ref", type="WAIT")])
    sdk.metadata.register_workflow_def(definition, overwrite=True)
    workflow_id = sdk.workflows.start_workflow(StartWorkflowRequest(name="wait_for_payment", input={}))
    task_id = sdk.tasks.update_task_by_ref_name(workflow_id, "wait_ref", "COMPLETED", {"paid": True})
    workflow = sdk.workflows.get_workflow(workflow_id, include_tasks=True)
    assert workflow.status == "COMPLETED"
    assert (workflow.tasks[0].task_id, workflow.tasks[0].output_data) == (task_id, {"result": {"paid": True}})


def test_it_terminates_with_the_sdk(sdk):
    workflow_id = start_shipping(sdk)
    sdk.workflows.terminate_workflow(workflow_id, reason="customer cancelled")
    workflow = Workflow.objects.get(pk=workflow_id)
    assert (workflow.status, workflow.reason_for_incompletion) == (WorkflowStatus.TERMINATED, "customer cancelled")
