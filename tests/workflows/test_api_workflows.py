import pytest

from tests.conftest import make_user, token_client
from workflows.models import Workflow, WorkflowStatus

from .conftest import ADDRESS

pytestmark = pytest.mark.django_db


def test_it_starts_by_name_and_answers_the_bare_id_as_text(api, shipping):
    response = api.post("/api/workflow/shipping_workflow?correlationId=order-1", {"address": ADDRESS},
                        format="json", HTTP_ACCEPT="text/plain")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    workflow = Workflow.objects.get(pk=response.content.decode())
    assert (workflow.input, workflow.correlation_id) == ({"address": ADDRESS}, "order-1")


def test_it_answers_a_json_string_to_a_client_asking_only_for_json(api, shipping):
    response = api.post("/api/workflow/shipping_workflow/", {}, format="json", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert Workflow.objects.filter(pk=response.json()).exists()


def test_it_starts_from_a_start_workflow_request(api, shipping):
    body = {"name": "shipping_workflow", "version": 1, "input": {"address": ADDRESS}, "correlationId": "c-1",
            "taskToDomain": {"ship_order": "eu"}, "idempotencyKey": "idem-1"}
    first = api.post("/api/workflow", body, format="json", HTTP_ACCEPT="text/plain")
    again = api.post("/api/workflow/", body, format="json", HTTP_ACCEPT="text/plain")
    assert first.status_code == 200 and first.content == again.content
    workflow = Workflow.objects.get()
    assert (workflow.task_to_domain, workflow.idempotency_key) == ({"ship_order": "eu"}, "idem-1")


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"version": 1}, "name"),
        ({"name": "shipping_workflow", "version": "one"}, "version"),
        ({"name": "shipping_workflow", "input": [1]}, "input"),
        ({"name": "shipping_workflow", "correlationId": 5}, "correlationId"),
        ({"name": "shipping_workflow", "taskToDomain": {"ship_order": 1}}, "taskToDomain"),
        ({"name": "shipping_workflow", "priority": "high"}, "priority"),
    ],
)
def test_it_refuses_a_malformed_start_request(api, shipping, body, path):
    response = api.post("/api/workflow", body, format="json")
    assert response.status_code == 400
    assert [p["path"] for p in response.json()["validationErrors"]] == [path]
    assert not Workflow.objects.exists()


def test_it_answers_404_for_an_unknown_definition(api, db):
    response = api.post("/api/workflow/nope", {}, format="json", HTTP_ACCEPT="text/plain")
    assert response.status_code == 404
    assert response.json()["retryable"] is False and "nope" in response.json()["message"]


def test_it_reads_a_workflow_with_or_without_tasks(api, shipping):
    workflow_id = api.post("/api/workflow/shipping_workflow", {"address": ADDRESS}, format="json").content.decode()
    body = api.get(f"/api/workflow/{workflow_id}").json()
    assert (body["workflowId"], body["status"], body["workflowName"]) == (workflow_id, "RUNNING", "shipping_workflow")
    assert [t["referenceTaskName"] for t in body["tasks"]] == ["human_docusign_step_ref"]
    assert body["tasks"][0]["inputData"] == {"address": ADDRESS}
    assert "reasonForIncompletion" not in body  # null fields are left out
    assert api.get(f"/api/workflow/{workflow_id}/?includeTasks=False").json()["tasks"] == []
    assert api.get("/api/workflow/nope").status_code == 404
    assert api.get(f"/api/workflow/{workflow_id}?includeTasks=maybe").status_code == 400


def test_it_lists_workflows_by_correlation_id(api, shipping):
    ids = [api.post("/api/workflow/shipping_workflow?correlationId=c-9", {}, format="json").content.decode()
           for _ in range(2)]
    api.delete(f"/api/workflow/{ids[0]}?reason=dup")
    running = api.get("/api/workflow/shipping_workflow/correlated/c-9").json()
    assert [w["workflowId"] for w in running] == [ids[1]]
    everything = api.get("/api/workflow/shipping_workflow/correlated/c-9?includeClosed=true&includeTasks=true").json()
    assert [w["workflowId"] for w in everything] == ids
    assert everything[1]["tasks"][0]["referenceTaskName"] == "human_docusign_step_ref"


def test_it_terminates_with_a_reason_and_refuses_twice(api, shipping):
    workflow_id = api.post("/api/workflow/shipping_workflow", {}, format="json").content.decode()
    response = api.delete(f"/api/workflow/{workflow_id}?reason=customer+cancelled")
    assert (response.status_code, response.content) == (200, b"")
    workflow = Workflow.objects.get(pk=workflow_id)
    assert (workflow.status, workflow.reason_for_incompletion) == (WorkflowStatus.TERMINATED, "customer cancelled")
    again = api.delete(f"/api/workflow/{workflow_id}")
    assert again.status_code == 409 and "TERMINATED" in again.json()["message"]
    assert api.delete("/api/workflow/nope").status_code == 404


def test_it_updates_variables(api, shipping):
    workflow_id = api.post("/api/workflow/shipping_workflow", {}, format="json").content.decode()
    response = api.post(f"/api/workflow/{workflow_id}/variables", {"stage": "signed"}, format="json")
    assert response.status_code == 200 and response.json()["variables"] == {"stage": "signed"}
    assert api.post(f"/api/workflow/{workflow_id}/variables", [1], format="json").status_code == 400


def test_it_needs_the_workflow_permissions(django_user_model, shipping):
    reader = token_client(make_user(django_user_model, "reader", "view_workflow"))
    assert reader.post("/api/workflow/shipping_workflow", {}, format="json").status_code == 403
    assert reader.get("/api/workflow/nope").status_code == 404
    assert token_client(make_user(django_user_model, "nobody")).get("/api/workflow/x").status_code == 403
    assert not Workflow.objects.exists()


def test_it_refuses_a_null_input_and_bad_query_numbers(api, shipping):
    assert api.post("/api/workflow/shipping_workflow", "null", content_type="application/json").status_code == 400
    for query in ("version=0", "version=x", "priority=2147483648"):
        response = api.post(f"/api/workflow/shipping_workflow?{query}", {}, format="json")
        assert response.status_code == 400, query
    assert not Workflow.objects.exists()
