import pytest

from tests.conftest import make_user, token_client
from workflows.models import WorkflowDefinition

from .conftest import shipping_definition

pytestmark = pytest.mark.django_db


def test_it_registers_one_definition_with_an_empty_answer(api):
    response = api.post("/api/metadata/workflow", shipping_definition(), format="json")
    assert (response.status_code, response.content) == (200, b"")
    definition = WorkflowDefinition.objects.get()
    assert (definition.name, definition.version) == ("shipping_workflow", 1)


def test_it_registers_a_list_and_works_with_a_trailing_slash(api):
    response = api.post("/api/metadata/workflow/", [shipping_definition(version=1), shipping_definition(version=2)],
                        format="json")
    assert response.status_code == 200
    assert sorted(WorkflowDefinition.objects.values_list("version", flat=True)) == [1, 2]


def test_it_refuses_an_existing_version_unless_told_to_overwrite(api):
    api.post("/api/metadata/workflow", shipping_definition(), format="json")
    changed = dict(shipping_definition(), description="changed")
    conflict = api.post("/api/metadata/workflow", changed, format="json")
    assert conflict.status_code == 409
    assert conflict.json()["message"] == "Workflow with shipping_workflow.1 already exists!"
    assert api.post("/api/metadata/workflow?overwrite=true", changed, format="json").status_code == 200
    assert WorkflowDefinition.objects.get().description == "changed"


def test_it_creates_or_replaces_with_put(api):
    assert api.put("/api/metadata/workflow", [shipping_definition()], format="json").status_code == 200
    changed = dict(shipping_definition(), description="v1 replaced")
    assert api.put("/api/metadata/workflow", [changed], format="json").status_code == 200
    assert WorkflowDefinition.objects.get().description == "v1 replaced"


def test_it_reports_every_problem_and_saves_nothing(api):
    bad = {"name": "x", "tasks": [{"name": "a", "taskReferenceName": "a_ref", "type": "NOPE"}]}
    response = api.put("/api/metadata/workflow", [shipping_definition(), bad, "text"], format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["message"] == "Validation failed, check below errors for detail."
    paths = {problem["path"] for problem in body["validationErrors"]}
    assert paths == {"[1].tasks[0].type", "[2].$"}
    assert not WorkflowDefinition.objects.exists()


def test_it_reads_the_latest_or_a_named_version(api):
    api.post("/api/metadata/workflow", [shipping_definition(version=1), shipping_definition(version=4)], format="json")
    latest = api.get("/api/metadata/workflow/shipping_workflow")
    assert latest.status_code == 200 and latest.json()["version"] == 4
    assert api.get("/api/metadata/workflow/shipping_workflow/?version=1").json()["version"] == 1
    missing = api.get("/api/metadata/workflow/shipping_workflow?version=9")
    assert missing.status_code == 404 and missing.json()["status"] == 404
    assert api.get("/api/metadata/workflow?x=1").json()[0]["name"] == "shipping_workflow"


def test_it_needs_the_definition_permissions(django_user_model):
    reader = token_client(make_user(django_user_model, "reader", "view_workflowdefinition"))
    assert reader.get("/api/metadata/workflow").status_code == 200
    assert reader.post("/api/metadata/workflow", shipping_definition(), format="json").status_code == 403
    writer = token_client(make_user(django_user_model, "writer", "change_workflowdefinition"))
    assert writer.post("/api/metadata/workflow", shipping_definition(), format="json").status_code == 200
    assert token_client(make_user(django_user_model, "nobody")).get("/api/metadata/workflow").status_code == 403


def test_it_takes_an_empty_list_as_nothing_to_do_and_nulls_as_absent(api):
    assert api.put("/api/metadata/workflow", [], format="json").status_code == 200
    data = shipping_definition()
    data.update(description=None, outputParameters=None)
    data["tasks"][0].update(sink=None, type=None, asyncComplete=None)
    assert api.post("/api/metadata/workflow", data, format="json").status_code == 200
    stored = api.get("/api/metadata/workflow/shipping_workflow").json()
    assert "sink" not in stored["tasks"][0] and stored["outputParameters"] == {}


def test_it_refuses_a_sink_that_is_not_a_string(api):
    data = shipping_definition()
    data["tasks"][0]["sink"] = {}
    response = api.post("/api/metadata/workflow", data, format="json")
    assert response.status_code == 400
    assert response.json()["validationErrors"] == [{"path": "tasks[0].sink", "message": "must be a string, e.g. "
                                                    "conductor or sqs:queue_name"}]
