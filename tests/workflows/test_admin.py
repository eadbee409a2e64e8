import json

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext

from workflows import runtime
from workflows.models import TaskStatus, Workflow, WorkflowDefinition, WorkflowStatus

from .conftest import one_task, register, shipping_definition

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_it_adds_a_definition_from_json(admin_client):
    response = admin_client.post("/admin/workflows/workflowdefinition/add/",
                                 {"definition": json.dumps(shipping_definition(version=2))})
    assert response.status_code == 302
    definition = WorkflowDefinition.objects.get()
    assert (definition.name, definition.version) == ("shipping_workflow", 2)


def test_it_shows_each_validation_problem_with_its_path_and_saves_nothing(admin_client):
    bad = {"name": "x", "tasks": [{"name": "a", "taskReferenceName": "a_ref", "type": "EVENT"}]}
    response = admin_client.post("/admin/workflows/workflowdefinition/add/", {"definition": json.dumps(bad)})
    assert response.status_code == 200
    assert "tasks[0].sink: is required for an EVENT task" in response.content.decode()
    not_json = admin_client.post("/admin/workflows/workflowdefinition/add/", {"definition": "{nope"})
    assert not_json.status_code == 200 and "Not valid JSON" in not_json.content.decode()
    assert not WorkflowDefinition.objects.exists()


def test_it_refuses_a_version_that_exists(admin_client, shipping):
    response = admin_client.post("/admin/workflows/workflowdefinition/add/",
                                 {"definition": json.dumps(shipping_definition())})
    assert response.status_code == 200
    assert "shipping_workflow version 1 already exists" in response.content.decode()
    assert WorkflowDefinition.objects.count() == 1


def test_it_pretty_prints_the_definition_for_editing(admin_client, shipping):
    page = admin_client.get(f"/admin/workflows/workflowdefinition/{shipping.pk}/change/").content.decode()
    assert "&quot;taskReferenceName&quot;: &quot;human_docusign_step_ref&quot;" in page


def test_it_lists_workflows_and_tasks_without_a_query_per_row(admin_client, shipping):
    for index in range(3):
        runtime.start_workflow("shipping_workflow", correlation_id=f"order-{index}")
    with CaptureQueriesContext(connection) as few:
        admin_client.get("/admin/workflows/task/")
    for index in range(3, 9):
        runtime.start_workflow("shipping_workflow", correlation_id=f"order-{index}")
    with CaptureQueriesContext(connection) as many:
        tasks_page = admin_client.get("/admin/workflows/task/")
    assert len(many) == len(few)
    assert tasks_page.content.decode().count("human_docusign_step_ref") >= 9
    workflows_page = admin_client.get("/admin/workflows/workflow/?status__exact=RUNNING&q=order-4")
    assert workflows_page.status_code == 200
    assert "order-4" in workflows_page.content.decode() and "order-5" not in workflows_page.content.decode()


def test_it_shows_a_workflow_read_only_with_its_tasks_and_trigger(admin_client, shipping):
    workflow = runtime.start_workflow("shipping_workflow", trigger={"messageId": "msg-77", "executionId": "msg-77_0"})
    page = admin_client.get(f"/admin/workflows/workflow/{workflow.pk}/change/")
    body = page.content.decode()
    assert page.status_code == 200 and "msg-77_0" in body and "human_docusign_step_ref" in body
    assert admin_client.get("/admin/workflows/workflow/add/").status_code == 403


def test_it_terminates_workflows_from_an_action_and_reports_what_it_did(admin_client, shipping):
    running = runtime.start_workflow("shipping_workflow")
    done = runtime.start_workflow("shipping_workflow")
    runtime.terminate_workflow(done.id, "earlier")
    response = admin_client.post("/admin/workflows/workflow/", {
        "action": "terminate", "_selected_action": [running.pk, done.pk]}, follow=True)
    assert Workflow.objects.get(pk=running.pk).status == WorkflowStatus.TERMINATED
    assert "Terminated from the admin by root" in Workflow.objects.get(pk=running.pk).reason_for_incompletion
    messages = messages_of(response)
    assert f"Terminated 1: {running.pk}" in messages
    assert f"Workflow {done.pk} is already TERMINATED." in messages


def test_it_completes_or_fails_human_and_wait_tasks_by_hand_only(admin_client, shipping):
    data = one_task("WAIT")
    register(data)
    waiting = runtime.start_workflow(data["name"]).tasks.get()
    human_workflow = runtime.start_workflow("shipping_workflow")
    human = human_workflow.tasks.get()
    runtime.update_task("COMPLETED", task_id=human.id)
    simple = human_workflow.tasks.get(reference_task_name="ship_order_ref")
    response = admin_client.post("/admin/workflows/task/", {
        "action": "complete_by_hand", "_selected_action": [waiting.pk, simple.pk, human.pk]}, follow=True)
    waiting.refresh_from_db()
    assert (waiting.status, waiting.trigger) == (TaskStatus.COMPLETED, {"admin": "root"})
    assert waiting.workflow.status == WorkflowStatus.COMPLETED
    messages = messages_of(response)
    assert f"Completed 1: {waiting.pk}" in messages
    assert any("only HUMAN and WAIT tasks are moved by hand" in m for m in messages)
    assert any("already COMPLETED" in m for m in messages)
    other = runtime.start_workflow("shipping_workflow").tasks.get()
    admin_client.post("/admin/workflows/task/", {"action": "fail_by_hand", "_selected_action": [other.pk]})
    other.refresh_from_db()
    assert other.status == TaskStatus.FAILED and other.workflow.status == WorkflowStatus.FAILED
