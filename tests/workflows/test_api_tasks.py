import pytest

from tests.conftest import make_user, token_client
from workflows.models import Task, TaskStatus, Workflow, WorkflowStatus

from .conftest import ADDRESS

pytestmark = pytest.mark.django_db


@pytest.fixture
def started(api, shipping) -> str:
    return api.post("/api/workflow/shipping_workflow", {"address": ADDRESS}, format="json").content.decode()


def human_done(api, workflow_id: str):
    return api.post(f"/api/tasks/{workflow_id}/human_docusign_step_ref/COMPLETED", {"signedBy": "ada@example.com"},
                    format="json", HTTP_ACCEPT="text/plain")


def test_it_completes_a_task_by_reference_name_and_answers_its_id(api, started):
    response = human_done(api, started)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    task = Task.objects.get(pk=response.content.decode())
    assert (task.reference_task_name, task.status, task.output) == (
        "human_docusign_step_ref", TaskStatus.COMPLETED, {"signedBy": "ada@example.com"})


def test_it_refuses_a_second_completion_with_409(api, started):
    human_done(api, started)
    again = human_done(api, started)
    assert again.status_code == 409
    assert "already COMPLETED" in again.json()["message"] and again.json()["retryable"] is False


def test_it_answers_404_for_a_task_not_scheduled_yet(api, started):
    response = api.post(f"/api/tasks/{started}/ship_order_ref/COMPLETED/", {}, format="json")
    assert response.status_code == 404 and "yet" in response.json()["message"]
    assert response.json()["retryable"] is True  # the task may still come: worth asking again
    assert api.post(f"/api/tasks/{started}/human_docusign_step_ref/DONE", {}, format="json").status_code == 400


def test_it_lets_a_worker_poll_and_answer_with_a_task_result(api, started):
    assert api.get("/api/tasks/poll/ship_order?workerid=w1").status_code == 204
    human_done(api, started)
    polled = api.get("/api/tasks/poll/ship_order?workerid=w1")
    assert polled.status_code == 200
    task = polled.json()
    assert (task["referenceTaskName"], task["status"], task["workerId"]) == ("ship_order_ref", "IN_PROGRESS", "w1")
    assert task["inputData"] == {"address": ADDRESS, "signedBy": "ada@example.com"}
    assert api.get("/api/tasks/poll/ship_order").status_code == 204
    result = {"taskId": task["taskId"], "workflowInstanceId": started, "status": "COMPLETED",
              "outputData": {"trackingNumber": "TRK-1"}, "workerId": "w1"}
    response = api.post("/api/tasks", result, format="json", HTTP_ACCEPT="text/plain")
    assert (response.status_code, response.content.decode()) == (200, task["taskId"])
    workflow = Workflow.objects.get(pk=started)
    assert workflow.status == WorkflowStatus.COMPLETED
    assert workflow.output == {"trackingNumber": "TRK-1", "signedBy": "ada@example.com"}


def test_it_batch_polls_an_empty_list_or_the_tasks(api, started):
    assert api.get("/api/tasks/poll/batch/ship_order?count=5&timeout=100").json() == []
    human_done(api, started)
    tasks = api.get("/api/tasks/poll/batch/ship_order/?count=5&workerid=w2").json()
    assert [(t["referenceTaskName"], t["workerId"]) for t in tasks] == [("ship_order_ref", "w2")]
    assert api.get("/api/tasks/poll/batch/ship_order?count=x").status_code == 400


def test_it_fails_a_workflow_from_a_failed_task_result(api, started):
    human_done(api, started)
    task = api.get("/api/tasks/poll/ship_order").json()
    result = {"taskId": task["taskId"], "status": "FAILED", "reasonForIncompletion": "carrier down"}
    assert api.post("/api/tasks/", result, format="json").status_code == 200
    workflow = Workflow.objects.get(pk=started)
    assert (workflow.status, workflow.reason_for_incompletion) == (WorkflowStatus.FAILED, "carrier down")


def test_it_reads_one_task(api, started):
    task_id = Task.objects.get().pk
    body = api.get(f"/api/tasks/{task_id}").json()
    assert (body["taskId"], body["workflowInstanceId"], body["taskType"]) == (task_id, started, "HUMAN")
    assert api.get("/api/tasks/nope").status_code == 404


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        ({"status": "COMPLETED"}, ["taskId"]),
        ({"taskId": "x"}, ["status"]),
        ([1, 2], ["body"]),
    ],
)
def test_it_refuses_a_malformed_task_result(api, started, body, paths):
    response = api.post("/api/tasks", body, format="json")
    assert response.status_code == 400
    assert [p["path"] for p in response.json()["validationErrors"]] == paths


def test_it_needs_the_task_change_permission_to_poll_or_update(django_user_model, started):
    reader = token_client(make_user(django_user_model, "reader", "view_task"))
    assert reader.get("/api/tasks/poll/ship_order").status_code == 403
    assert reader.post(f"/api/tasks/{started}/human_docusign_step_ref/COMPLETED", {}, format="json").status_code == 403
    worker = token_client(make_user(django_user_model, "worker", "change_task"))
    assert worker.get("/api/tasks/poll/ship_order").status_code == 204
    assert Task.objects.get().status == TaskStatus.IN_PROGRESS
