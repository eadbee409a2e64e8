"""The built-in engine's batch: the runtime's batching, offered through the engine interface."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from eventhub.lib.bulk import fetch_together, insert_many
from workflows.builtin import BuiltinEngine, ReadAhead
from workflows.errors import NoSuchDefinition
from workflows.models import Task, Workflow, WorkflowDefinition

from .conftest import ADDRESS, register, shipping_definition

pytestmark = pytest.mark.django_db


def definition_reads(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if 'FROM "workflows_workflowdefinition"' in q["sql"]]


def savepoints(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SAVEPOINT")]


def start(engine: BuiltinEngine, name: str = "shipping_workflow") -> str:
    return engine.start_workflow(name, 1, {"address": ADDRESS})


def test_a_batch_reads_ahead_the_definitions_the_last_batch_of_its_key_used(shipping):
    engine = BuiltinEngine()
    with engine.batch(key="conductor:orders") as unit:
        assert unit.prefetch() == []
        start(engine)
    with engine.batch(key="conductor:elsewhere") as unit:
        assert unit.prefetch() == []  # another key learned nothing yet
    with engine.batch(key="conductor:orders") as unit:
        with CaptureQueriesContext(connection) as ahead:
            unit.prefetched(fetch_together(*unit.prefetch()))
        with CaptureQueriesContext(connection) as starting:
            start(engine)
    assert len(definition_reads(ahead)) == 1 and definition_reads(starting) == []
    assert Workflow.objects.filter(definition=shipping).count() == 2


def test_a_batch_without_a_key_reads_nothing_ahead(shipping):
    engine = BuiltinEngine()
    for _ in range(2):
        with engine.batch() as unit:
            assert unit.prefetch() == []
            start(engine)


def test_the_read_ahead_finds_a_new_version_and_misses_a_removed_definition():
    register(shipping_definition())
    engine = BuiltinEngine()
    with engine.batch(key="k"):
        engine.start_workflow("shipping_workflow")  # the latest version
    newer = register(shipping_definition(version=2))
    with engine.batch(key="k") as unit:
        unit.prefetched(fetch_together(*unit.prefetch()))
        assert Workflow.objects.get(pk=engine.start_workflow("shipping_workflow")).definition == newer
    WorkflowDefinition.objects.all().delete()
    with engine.batch(key="k") as unit, pytest.raises(NoSuchDefinition):
        unit.prefetched(fetch_together(*unit.prefetch()))
        engine.start_workflow("shipping_workflow")


def test_workflows_started_together_are_the_callers_new_rows():
    register(shipping_definition())
    engine = BuiltinEngine()
    with transaction.atomic(), engine.batch(key="k", together=True) as unit:
        workflow_id = start(engine)
        assert not Workflow.objects.filter(pk=workflow_id).exists()  # started in memory
        workflows, tasks = unit.new_rows()
        assert [w.id for w in workflows] == [workflow_id] and [t.workflow_id for t in tasks] == [workflow_id]
        assert unit.new_rows() == [[], []]  # taken once
        insert_many(workflows, tasks)
    assert Task.objects.get(workflow_id=workflow_id).reference_task_name == "human_docusign_step_ref"


def test_rows_the_caller_leaves_are_inserted_as_the_batch_ends():
    register(shipping_definition())
    engine = BuiltinEngine()
    with transaction.atomic(), engine.batch(key="k", together=True):
        workflow_id = start(engine)
    assert Workflow.objects.filter(pk=workflow_id).exists()


def test_a_failed_batch_leaves_its_rows_behind_with_the_callers_rollback():
    register(shipping_definition())
    engine = BuiltinEngine()
    with pytest.raises(RuntimeError), transaction.atomic(), engine.batch(key="k", together=True):
        start(engine)
        raise RuntimeError("the caller starts over")
    assert not Workflow.objects.exists()


def test_inside_a_batch_the_runtime_relies_on_the_callers_savepoints(shipping):
    engine = BuiltinEngine()
    workflow_id = start(engine)
    with CaptureQueriesContext(connection) as alone:
        engine.update_variables(workflow_id, {"a": 1})
    with CaptureQueriesContext(connection) as batched:
        with engine.batch(key="k"):
            engine.update_variables(workflow_id, {"b": 2})
    assert len(savepoints(alone)) == 1 and savepoints(batched) == []


def test_the_read_ahead_is_bounded_per_key_and_in_keys(monkeypatch):
    monkeypatch.setattr(ReadAhead, "MAX_KEYS", 3)
    read_ahead = ReadAhead()
    read_ahead.learn("k", {(f"flow_{i}", None) for i in range(100)})
    assert len(read_ahead.wanted("k")) == ReadAhead.MAX_DEFINITIONS
    for key in ("a", "b", "c"):
        read_ahead.learn(key, {("flow", 1)})
    assert read_ahead.wanted("k") == frozenset()  # the least recently used key went first
    read_ahead.wanted("a")
    read_ahead.learn("d", {("flow", 1)})
    assert read_ahead.wanted("a") and not read_ahead.wanted("b")


def test_the_read_ahead_follows_the_last_batch_and_keeps_what_it_knew_after_a_failure():
    read_ahead = ReadAhead()
    read_ahead.learn("k", {("a", 1), ("b", None)})
    read_ahead.learn("k", {("c", 2)}, keep_known=True)  # failed part-way: what it did not reach stays
    assert read_ahead.wanted("k") == {("a", 1), ("b", None), ("c", 2)}
    read_ahead.learn("k", {("c", 2)})
    assert read_ahead.wanted("k") == {("c", 2)}
