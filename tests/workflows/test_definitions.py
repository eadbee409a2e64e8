import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from workflows.definitions import parse_duration, parse_until
from workflows.models import WorkflowDefinition

from .conftest import shipping_definition


def problems_of(data) -> list[str]:
    with pytest.raises(ValidationError) as error:
        WorkflowDefinition.from_conductor(data)
    return [f"{e.params['path']}: {e.params['detail']}" for e in error.value.error_dict["definition"]]


def test_it_takes_name_version_and_description_from_the_json():
    definition = WorkflowDefinition.from_conductor(shipping_definition(version=3))
    assert (definition.name, definition.version) == ("shipping_workflow", 3)
    assert definition.description.startswith("Ship an order")


def test_it_defaults_the_version_to_one_and_drops_null_fields():
    data = shipping_definition()
    data.pop("version")
    data["timeoutPolicy"] = None
    definition = WorkflowDefinition.from_conductor(data)
    assert definition.version == 1 and "timeoutPolicy" not in definition.definition


def test_it_reports_every_problem_at_once_with_its_path():
    data = {
        "name": "bad name!",
        "version": 0,
        "tasks": [
            {"name": "a", "taskReferenceName": "same", "type": "LAMBDA"},
            {"name": "b", "taskReferenceName": "same", "type": "WAIT", "inputParameters": {"duration": "soon"}},
            {"name": "c", "taskReferenceName": "c_ref", "type": "EVENT"},
            {"taskReferenceName": "d_ref", "type": "TERMINATE", "inputParameters": {"terminationStatus": "DONE"}},
        ],
        "outputParameters": [],
    }
    problems = problems_of(data)
    assert "name: may hold only letters, digits and _ - . :" in problems
    assert "version: must be a whole number of 1 or more" in problems
    assert "outputParameters: must be a JSON object" in problems
    assert any(p.startswith("tasks[0].type: unknown task type 'LAMBDA'") for p in problems)
    assert "tasks[1].taskReferenceName: 'same' is used by an earlier task" in problems
    assert any(p.startswith("tasks[1].inputParameters.duration: duration 'soon'") for p in problems)
    assert any(p.startswith("tasks[2].sink: is required") for p in problems)
    assert "tasks[3].name: is required" in problems
    assert any(p.startswith("tasks[3].inputParameters.terminationStatus") for p in problems)


def test_it_needs_at_least_one_task_and_an_object():
    assert problems_of({"name": "x", "tasks": []}) == ["tasks: at least one task is required"]
    assert problems_of(["not", "an", "object"]) == ["$: a workflow definition must be a JSON object"]


def test_it_accepts_placeholders_where_values_come_at_run_time():
    data = {"name": "w", "tasks": [{"name": "w", "taskReferenceName": "w_ref", "type": "WAIT",
                                     "inputParameters": {"duration": "${workflow.input.d}"}}]}
    WorkflowDefinition.from_conductor(data)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2h 30m", 9000), ("45s", 45), ("1 day", 86400), ("1d2h", 93600), ("10 minutes 5 seconds", 605), ("0s", 0)],
)
def test_it_reads_durations(text, seconds):
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "soon", "2 fortnights", "h2", "5", None, 5])
def test_it_refuses_durations_it_cannot_read(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_it_reads_until_timestamps_as_utc_unless_zoned():
    assert parse_until("2026-01-31 10:00") == dt.datetime(2026, 1, 31, 10, 0, tzinfo=dt.UTC)
    assert parse_until("2026-01-31 10:00 UTC") == dt.datetime(2026, 1, 31, 10, 0, tzinfo=dt.UTC)
    assert parse_until("2026-01-31T10:00:00+02:00") == dt.datetime(2026, 1, 31, 8, 0, tzinfo=dt.UTC)
    with pytest.raises(ValueError):
        parse_until("tomorrow")


def test_it_reports_a_reference_name_that_is_not_text_instead_of_crashing():
    data = shipping_definition()
    data["tasks"][0]["taskReferenceName"] = {"not": "text"}
    assert "tasks[0].taskReferenceName: is required" in problems_of(data)
