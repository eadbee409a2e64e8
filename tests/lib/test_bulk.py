"""`eventhub.lib.bulk.insert_many`: the listener's inserts, on the database of this run (one round trip on
PostgreSQL, `bulk_create` elsewhere). Whatever goes in must read back exactly as `save()` would store it."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from eventhub.lib import bulk
from eventhub.lib.bulk import Query, build, fetch_together, insert_many
from handlers.models import ActionExecution, ExecutionStatus
from queues.models import ReceivedMessage
from workflows.models import Task, Workflow, WorkflowDefinition

pytestmark = pytest.mark.django_db(transaction=True)
AWKWARD = "it's \"quoted\", a tab\\t\there, a newline\nthere, 100% %s {braces} and ünïcödé ✓"


def test_it_inserts_several_models_together_and_gives_them_their_keys():
    received = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    records = [ReceivedMessage(event="conductor:q", message_id=f"m-{n}",
                               payload={"n": n, "text": AWKWARD, "big": 2**70},
                               received_at=received + timedelta(seconds=n), detail=AWKWARD) for n in range(3)]
    workflows = [Workflow(name="flow", version=1, input={"list": [1, 2.5, None, True]}) for _ in range(2)]
    tasks = [Task(workflow=w, seq=1, position=0, task_type="SIMPLE", task_def_name="t", reference_task_name="r")
             for w in workflows]
    # Assigned before the record has an id: the id is taken at insert time, as save() does.
    executions = [ActionExecution(execution_id=f"m-{n}_0", delivery=records[n], event="conductor:q",
                                  message_id=f"m-{n}", handler_name="h", index=0, action="start_workflow",
                                  status=ExecutionStatus.COMPLETED, input=None, output={"workflowId": "w"})
                  for n in range(3)]

    insert_many(records, workflows, tasks, [], executions)

    assert all(r.pk is not None and not r._state.adding for r in records + executions)
    for n, record in enumerate(records):
        stored = ReceivedMessage.objects.get(pk=record.pk)
        assert (stored.message_id, stored.payload, stored.detail) == (
            f"m-{n}", {"n": n, "text": AWKWARD, "big": 2**70}, AWKWARD)
        assert stored.received_at == received + timedelta(seconds=n)  # to the microsecond
        assert stored.delivery_count == 1 and stored.outcome == ReceivedMessage.Outcome.RECEIVED
    for execution, record in zip(executions, records, strict=True):
        stored = ActionExecution.objects.get(pk=execution.pk)
        assert stored.delivery_id == record.pk
        assert stored.status == "COMPLETED" and stored.input is None and stored.output == {"workflowId": "w"}
    assert {w.input["list"] == [1, 2.5, None, True] for w in Workflow.objects.all()} == {True}
    assert {t.workflow_id for t in Task.objects.all()} == {w.pk for w in workflows}
    assert all(w.updated_at is not None for w in Workflow.objects.all())


def test_json_null_and_sql_null_stay_apart():
    definition = WorkflowDefinition.objects.create(name="flow", version=1, definition={"tasks": []})
    Workflow(name="flow", version=1).save()
    insert_many([Workflow(name="flow", version=1, definition=definition, input={"a": None}, trigger=None)])
    stored = Workflow.objects.get(definition=definition)
    assert stored.input == {"a": None}
    assert stored.trigger is None
    assert Workflow.objects.filter(trigger__isnull=True).count() == 2


def test_keys_keep_coming_from_the_sequence_afterwards():
    first = [ReceivedMessage(event="conductor:q", message_id=f"a-{n}") for n in range(5)]
    insert_many(first)
    saved = ReceivedMessage.objects.create(event="conductor:q", message_id="b")
    later = [ReceivedMessage(event="conductor:q", message_id="c")]
    insert_many(later)
    keys = [r.pk for r in first] + [saved.pk, later[0].pk]
    assert len(set(keys)) == 7
    assert ReceivedMessage.objects.count() == 7


def test_a_new_connection_takes_new_keys_as_after_a_crash_that_lost_the_sequences_advance():
    """PostgreSQL crashed before the block's `nextval` reached the disk: after recovery the sequence is back
    where it was, and the ids still in the block are handed out again. They must not be used after it."""
    first = [ReceivedMessage(event="conductor:q", message_id="before")]
    insert_many(first)
    if connection.vendor == "postgresql":
        connection.close()  # (every connection is new after a crash)
        with connection.cursor() as cursor:  # the crash: the sequence forgets the block it gave out
            cursor.execute("SELECT setval(pg_get_serial_sequence('queues_receivedmessage', 'id'), %s)", [first[0].pk])
    later = [ReceivedMessage(event="conductor:q", message_id="after")]
    insert_many(later)
    saved = ReceivedMessage.objects.create(event="conductor:q", message_id="by save()")  # from the sequence
    assert len({first[0].pk, later[0].pk, saved.pk}) == 3
    assert ReceivedMessage.objects.count() == 3


def test_a_failed_insert_writes_nothing_and_says_why():
    workflow = Workflow(name="flow", version=1)
    insert_many([workflow])
    with pytest.raises(Exception, match="duplicate key|UNIQUE constraint"):
        insert_many([ReceivedMessage(event="conductor:q", message_id="x")], [Workflow(id=workflow.id, name="f",
                                                                                      version=1)])
    assert not ReceivedMessage.objects.filter(message_id="x").exists()


def test_it_reads_several_querysets_as_django_would():
    for n in range(3):
        ReceivedMessage.objects.create(event="conductor:q", message_id=f"m-{n}", payload={"n": n, "list": [n]})
    Workflow.objects.create(name="flow", version=1, input={"a": {"b": None}})
    querysets = [
        ReceivedMessage.objects.filter(event="conductor:q").order_by("-message_id"),
        Workflow.objects.all(),
        ReceivedMessage.objects.filter(message_id__in=[]),  # nothing to ask the database
        ReceivedMessage.objects.filter(message_id="m-1"),
    ]
    fetched = fetch_together(*querysets)
    assert fetched == [list(queryset) for queryset in querysets]
    assert [r.payload for r in fetched[0]] == [{"n": 2, "list": [2]}, {"n": 1, "list": [1]}, {"n": 0, "list": [0]}]
    assert fetched[1][0].input == {"a": {"b": None}} and fetched[1][0].created_at is not None
    assert all(not obj._state.adding for obj in fetched[0] + fetched[1])
    with pytest.raises(ValueError, match="plain querysets"):
        fetch_together(Task.objects.select_related("workflow"))


def _messages(event: str, ids: list[str]):
    return ReceivedMessage.objects.filter(event=event, message_id__in=ids).order_by("message_id")


def _named_like(text: str):
    return ReceivedMessage.objects.filter(message_id__contains=text).order_by("message_id")


def _in_batches_of(event: str, size: int):
    return ReceivedMessage.objects.filter(event=event, delivery_count__gte=size).order_by("message_id")


def test_a_query_reads_what_its_queryset_reads_whatever_the_values_of_one_shape():
    for n in range(4):
        ReceivedMessage.objects.create(event=f"conductor:q{n % 2}", message_id=f"m-{n}", payload={"n": n},
                                       delivery_count=n)
    asks = [("conductor:q0", ["m-0", "m-2"]), ("conductor:q1", ["m-1", "m-3"]), ("conductor:q1", ["m-3", "m-3"]),
            ("conductor:q0", ["m-1", "m-9"]), ("conductor:q0", ["m-0"]), ("conductor:q0", [])]
    for event, ids in asks:  # the same shape again and again, other shapes between
        [got] = fetch_together(Query(ReceivedMessage, _messages, {"event": event, "ids": ids}))
        assert got == list(_messages(event, ids)), (event, ids)
    for text in ("m-1", "m-", "x"):  # a value the lookup changes (%...%): compiled as it is each time
        [got] = fetch_together(Query(ReceivedMessage, _named_like, {"text": text}))
        assert got == list(_named_like(text))
    for size in (1, 3):  # a value that is not text: part of the shape
        [got] = fetch_together(Query(ReceivedMessage, _in_batches_of, {"event": "conductor:q1", "size": size}))
        assert got == list(_in_batches_of("conductor:q1", size))


def _delivered(count: str):
    return ReceivedMessage.objects.filter(delivery_count=count).order_by("message_id")


def test_a_query_whose_text_a_field_refuses_as_a_stand_in_or_made_by_a_closure_is_compiled_every_time():
    for n in range(3):
        ReceivedMessage.objects.create(event="conductor:q", message_id=f"m-{n}", payload={}, delivery_count=n)
    for count in ("1", "2", "1"):  # an integer field takes "1", not the stand-in text
        [got] = fetch_together(Query(ReceivedMessage, _delivered, {"count": count}))
        assert [r.message_id for r in got] == [f"m-{count}"]
    wanted = {"id": "m-0"}

    def chosen(event: str):  # reads more than its arguments: not compiled ahead
        return _messages(event, [wanted["id"]])

    for message_id in ("m-0", "m-2"):
        wanted["id"] = message_id
        [got] = fetch_together(Query(ReceivedMessage, chosen, {"event": "conductor:q"}))
        assert [r.message_id for r in got] == [message_id]


def test_a_query_shape_is_compiled_once(monkeypatch):
    monkeypatch.setattr(bulk, "_SHAPES", {})
    calls = []
    compile_shape = bulk._compile_shape
    monkeypatch.setattr(bulk, "_compile_shape", lambda *args: calls.append(args) or compile_shape(*args))
    for ids in (["a", "b"], ["c", "d"], ["e"], ["f", "g"]):
        fetch_together(Query(ReceivedMessage, _messages, {"event": "conductor:once", "ids": ids}))
    # Two ids, then one. (Elsewhere than on PostgreSQL each queryset simply runs: nothing is compiled ahead.)
    assert len(calls) == (2 if connection.vendor == "postgresql" else 0)


# `build`: the constructor's result, made cheaply -----------------------------------------------------


def _state_of(instance) -> dict:
    """What an instance holds, without the values a callable default draws afresh (ids, moments, {})."""
    drawn = {"id", "created_at", "scheduled_at", "received_at"}
    attrs = {k: v for k, v in vars(instance).items() if k != "_state" and k not in drawn}
    return {**attrs, "_adding": instance._state.adding, "_db": instance._state.db,
            "_cached": dict(instance._state.fields_cache)}


@pytest.mark.parametrize("make", [
    lambda model, **values: model(**values),
    lambda model, **values: build(model, **values),
], ids=["constructor", "build"])
def test_build_makes_what_the_constructor_makes(make):
    definition = WorkflowDefinition.objects.create(name="flow", definition={"name": "flow", "tasks": []})
    unsaved_record = ReceivedMessage(event="conductor:q", message_id="m")
    workflow = make(Workflow, definition=definition, name="flow", version=1, input={"a": 1}, correlation_id=None)
    task = make(Task, workflow=workflow, seq=1, position=0, task_type="SIMPLE", task_def_name="t",
                reference_task_name="r")
    execution = make(ActionExecution, delivery=unsaved_record, event="conductor:q", message_id="m", handler=None,
                     handler_name="h", index=0, action="start_workflow")
    by_constructor = (Workflow(definition=definition, name="flow", version=1, input={"a": 1}, correlation_id=None),
                      Task(workflow=workflow, seq=1, position=0, task_type="SIMPLE", task_def_name="t",
                           reference_task_name="r"),
                      ActionExecution(delivery=unsaved_record, event="conductor:q", message_id="m", handler=None,
                                      handler_name="h", index=0, action="start_workflow"))
    for made, expected in zip((workflow, task, execution), by_constructor, strict=True):
        assert _state_of(made) == _state_of(expected)
    assert workflow.definition_id == definition.pk and workflow.definition is definition
    assert task.workflow_id == workflow.pk and task.workflow is workflow
    assert execution.delivery_id is None and execution.delivery is unsaved_record  # its id is taken at insert
    assert workflow.input is not task.input and task.output is not Task().output  # fresh {} each time
    assert workflow.created_at is not None and len(workflow.pk) == 36 and workflow.pk != task.pk
    assert execution.status == "" and execution.attempts == 0 and execution.input is None

    insert_many([unsaved_record], [workflow], [task], [execution])
    stored = ActionExecution.objects.select_related("delivery").get(pk=execution.pk)
    assert stored.delivery.message_id == "m" and Task.objects.get(pk=task.pk).workflow_id == workflow.pk


def test_build_refuses_what_the_constructor_refuses():
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        build(Task, colour="red")


def test_build_runs_init_signals_through_the_constructor():
    from django.db.models.signals import post_init

    seen = []

    def note(sender, instance, **kwargs):
        seen.append(instance)

    post_init.connect(note, sender=Task)
    try:
        task = build(Task, seq=3)
    finally:
        post_init.disconnect(note, sender=Task)
    assert seen == [task] and task.seq == 3


# Django internals the module relies on, checked on the database of this run ------------------------
# (On PostgreSQL the tests above use them all; on SQLite `insert_many` and `fetch_together` hand over to
# `bulk_create` and plain querysets, so these run their Django half there too.)


def test_build_leaves_the_instance_state_the_constructor_leaves():
    definition = WorkflowDefinition.objects.create(name="flow", definition={"name": "flow", "tasks": []})
    for model, values in [(Workflow, {"definition": definition, "name": "flow", "version": 1}),
                          (Task, {"seq": 3}), (ActionExecution, {"delivery": None, "handler_name": "h"})]:
        made, expected = build(model, **values), model(**values)
        assert made._state.fields_cache == expected._state.fields_cache  # (made on first use: now in both)
        assert type(made._state) is type(expected._state)
        assert vars(made._state).keys() == vars(expected._state).keys(), model
        assert vars(made._state) == vars(expected._state), model


def test_a_compiled_shape_reads_rows_through_the_compilers_internals(monkeypatch):
    monkeypatch.setattr(bulk, "_SHAPES", {})
    for n in range(3):
        ReceivedMessage.objects.create(event="conductor:q", message_id=f"m-{n}", payload={"n": n})
    compilers = set()
    for ids in (["m-0", "m-2"], ["m-1", "m-9"]):  # one shape, compiled once, its compiler used again
        compiler, sql, params = bulk._compiled(
            Query(ReceivedMessage, _messages, {"event": "conductor:q", "ids": ids}), connection.alias)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            got = bulk._instances(compiler, cursor.fetchall(), connection.alias)
        compilers.add(id(compiler))
        assert got == list(_messages("conductor:q", ids))
        assert [r.payload for r in got] == [{"n": int(i[-1])} for i in ids if i != "m-9"]  # converters applied
        assert all(not r._state.adding and r._state.db == connection.alias for r in got)
    assert len(compilers) == 1


def test_a_foreign_key_assigned_before_its_object_was_saved_is_read_off_the_cache():
    record = ReceivedMessage(event="conductor:q", message_id="m")
    execution = ActionExecution(delivery=record, event="conductor:q", message_id="m", handler_name="h", index=0,
                                action="start_workflow")
    record.save()
    read = bulk._getter(ActionExecution._meta.get_field("delivery"), connection)
    assert execution.delivery_id is None
    assert read(execution) == record.pk and execution.delivery_id == record.pk
