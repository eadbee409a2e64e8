"""The quarantine path on every broker: keep the message in the table, then acknowledge it; retry and discard."""

import json

import pytest

from handlers import dispatch
from handlers.dispatch import Decision
from handlers.listener import Listener
from queues import quarantine
from queues.models import InternalMessage, QuarantinedMessage, ReceivedMessage

pytestmark = pytest.mark.django_db(transaction=True)
Reason = QuarantinedMessage.Reason


def drain(listener: Listener, expected: int, rounds: int = 5) -> int:
    """One-step polls until `expected` messages were handled: brokers take a moment to hand a requeued
    message back."""
    handled = 0
    for _ in range(rounds):
        handled += listener.run_once(wait=2)
        if handled >= expected:
            break
    return handled


def nack_everything(monkeypatch) -> None:
    def record_and_nack(config, messages, acknowledge=None):  # nothing to acknowledge
        return [Decision("nack", "workflow engine unavailable", decided.record)
                for decided in dispatch.__dict__["_real"](config, messages)]

    monkeypatch.setitem(dispatch.__dict__, "_real", dispatch.dispatch_batch)
    monkeypatch.setattr(dispatch, "dispatch_batch", record_and_nack)


def test_it_quarantines_an_unreadable_message_then_acknowledges_it(kind, make_config, providers):
    config = make_config(kind)
    providers(config.spec()).publish("not json {", message_id="bad-1")
    listener = Listener(events=[config.event])
    assert drain(listener, 1) == 1
    listener.close()

    item = QuarantinedMessage.objects.get()
    assert (item.event, item.message_id, item.reason) == (config.event, "bad-1", Reason.UNREADABLE)
    assert item.raw_body == "not json {" and item.payload is None
    assert "not JSON" in item.last_error
    assert ReceivedMessage.objects.get().outcome == ReceivedMessage.Outcome.QUARANTINED
    assert providers(config.spec()).receive(10, 1) == []


def test_it_quarantines_a_message_that_failed_on_every_delivery(kind, make_config, providers, monkeypatch):
    nack_everything(monkeypatch)
    config = make_config(kind, max_deliveries=2, visibility_timeout=0, batch_size=1)
    providers(config.spec()).publish(json.dumps({"order": 7}), message_id="m-7")
    listener = Listener(events=[config.event])
    assert drain(listener, 2) == 2
    listener.close()

    item = QuarantinedMessage.objects.get()
    assert (item.reason, item.payload, item.delivery_count) == (Reason.MAX_DELIVERIES, {"order": 7}, 2)
    assert item.last_error == "workflow engine unavailable"
    assert [(h["delivery"], h["outcome"]) for h in item.history] == [(1, "RETURNED"), (2, "QUARANTINED")]
    assert providers(config.spec()).receive(10, 1) == []


def test_it_retries_a_quarantined_message_with_an_edited_payload(kind, make_config, providers):
    config = make_config(kind)
    providers(config.spec()).publish("{broken", message_id="m-edit")
    listener = Listener(events=[config.event])
    drain(listener, 1)
    item = QuarantinedMessage.objects.get()

    new_id = quarantine.retry(item, payload={"fixed": True})
    assert drain(listener, 1) == 1
    listener.close()

    item.refresh_from_db()
    assert item.status == QuarantinedMessage.Status.RETRIED
    assert "edited payload" in item.resolution
    retried = ReceivedMessage.objects.get(outcome=ReceivedMessage.Outcome.ACKNOWLEDGED)
    assert (retried.message_id, retried.payload) == (new_id, {"fixed": True})
    assert new_id.startswith("m-edit.retry")


def test_it_skips_dispatch_for_a_message_already_delivered_too_often(make_config, monkeypatch):
    config = make_config("conductor", max_deliveries=1)
    InternalMessage.objects.create(queue=config.name, message_id="old", body="{}", delivery_count=1)
    monkeypatch.setattr(dispatch, "dispatch_batch", lambda *a: pytest.fail("dispatched a message past its maximum"))
    Listener(events=[config.event]).run_once(wait=0)
    item = QuarantinedMessage.objects.get()
    assert (item.reason, item.delivery_count) == (Reason.MAX_DELIVERIES, 2)
    assert not InternalMessage.objects.exists()


def test_it_quarantines_what_dispatch_rejects(make_config, monkeypatch):
    config = make_config("conductor")
    monkeypatch.setattr(dispatch, "dispatch_batch",
                        lambda c, ms, **_: [Decision("quarantine", "no handler matched")] * len(ms))
    InternalMessage.objects.create(queue=config.name, message_id="m", body='{"a": 1}')
    Listener(events=[config.event]).run_once(wait=0)
    item = QuarantinedMessage.objects.get()
    assert (item.reason, item.last_error) == (Reason.REJECTED, "no handler matched")
    assert not InternalMessage.objects.exists()


def test_it_discards_only_with_a_reason(make_config, django_user_model):
    config = make_config("conductor")
    InternalMessage.objects.create(queue=config.name, message_id="m", body="nope")
    Listener(events=[config.event]).run_once(wait=0)
    item = QuarantinedMessage.objects.get()
    with pytest.raises(ValueError, match="reason is required"):
        quarantine.discard(item, reason="  ")
    user = django_user_model.objects.create_user("ops")
    quarantine.discard(item, reason="test message from staging", user=user)
    item.refresh_from_db()
    assert (item.status, item.resolution, item.resolved_by) == ("DISCARDED", "test message from staging", user)
    with pytest.raises(quarantine.NotQuarantined):
        quarantine.retry(item)


UNSTORABLE_BODIES = {  # message id: (body, what the quarantine says)
    "nested-1000": ("[" * 1000 + "]" * 1000, "nested too deeply to read"),  # json.loads: RecursionError
    "nested-300": ("[" * 300 + "]" * 300, "nested more than 200 levels deep"),  # too deep for the records
    "escaped-nul": ('{"a": "x\\u0000y"}', "holds \\u0000 or an unpaired surrogate"),
    "lone-surrogate": ('{"a": "x\\ud800y"}', "holds \\u0000 or an unpaired surrogate"),
}


def test_a_body_the_records_cannot_hold_is_quarantined_alone_and_its_batch_goes_on(kind, make_config, providers):
    config = make_config(kind, batch_size=10)
    bodies = dict(UNSTORABLE_BODIES)
    if kind in ("amqp_queue", "nats"):  # (bytes on the wire: only these brokers carry a NUL byte as it is)
        bodies["raw-nul"] = ('{"a": "x\x00y"}', "NUL or unpaired surrogate characters")
    provider = providers(config.spec())
    provider.publish(json.dumps({"n": 1}), message_id="good-1")
    for message_id, (body, _) in bodies.items():
        provider.publish(body, message_id=message_id)
    provider.publish(json.dumps({"n": 2}), message_id="good-2")
    listener = Listener(events=[config.event])
    assert drain(listener, len(bodies) + 2) == len(bodies) + 2
    listener.close()

    outcomes = dict(ReceivedMessage.objects.values_list("message_id", "outcome"))
    assert outcomes == {"good-1": "ACKNOWLEDGED", "good-2": "ACKNOWLEDGED"} | dict.fromkeys(bodies, "QUARANTINED")
    for item in QuarantinedMessage.objects.all():
        assert item.reason == Reason.UNREADABLE and item.payload is None
        assert bodies[item.message_id][1] in item.last_error
    assert QuarantinedMessage.objects.get(message_id="nested-300").raw_body == bodies["nested-300"][0]
    if "raw-nul" in bodies:
        assert QuarantinedMessage.objects.get(message_id="raw-nul").raw_body == '{"a": "x\ufffdy"}'


def start_then_complete(config):
    """A handler that starts a workflow, then completes `later_ref` in the message's `wf`: (the started
    workflow's definition, a workflow waiting at later_ref, a running one without it, where it must wait)."""
    from handlers.changes import save_handler
    from handlers.models import EventHandler
    from workflows import runtime

    from ..workflows.conftest import one_task, register

    started_flow = register(one_task("HUMAN", ref="first_ref"))
    waiting = runtime.start_workflow(register(one_task("HUMAN", ref="later_ref")).name)
    elsewhere = runtime.start_workflow(started_flow.name)  # running, but with no later_ref task: yet to come
    handler = EventHandler()
    handler.apply_conductor({"name": "start_then_complete", "event": config.event, "active": True, "actions": [
        {"action": "start_workflow", "start_workflow": {"name": started_flow.name}},
        {"action": "complete_task", "complete_task": {"workflowId": "${wf}", "taskRefName": "later_ref"}},
    ]})
    handler.full_clean()
    save_handler(handler, user=None, source="test")
    return started_flow, waiting, elsewhere


def test_a_retry_runs_only_what_did_not_complete_before_the_quarantine(make_config):
    from handlers.models import ActionExecution
    from workflows.models import Task, Workflow

    config = make_config("conductor", max_deliveries=2, visibility_timeout=0)
    started_flow, waiting, elsewhere = start_then_complete(config)
    publish = Listener(events=[config.event])

    def quarantined_after_deliveries() -> QuarantinedMessage:
        for _ in range(6):
            publish.run_once(wait=0)
            if (item := QuarantinedMessage.objects.filter(status="QUARANTINED").first()) is not None:
                return item
        raise AssertionError("the message was not quarantined")

    InternalMessage.objects.create(queue=config.spec().name, message_id="m-1", body=json.dumps({"wf": elsewhere.id}))
    first = quarantined_after_deliveries()
    quarantine.retry(first)  # as it was: the task is still missing, so it is quarantined again
    second = quarantined_after_deliveries()
    assert second.message_id == f"m-1.retry{first.pk}"
    quarantine.retry(second, payload={"wf": waiting.id})  # edited to a workflow whose task is there
    for _ in range(3):
        publish.run_once(wait=0)
    publish.close()

    assert Workflow.objects.filter(name=started_flow.name).count() == 2  # `elsewhere` and the one m-1 started
    last = {e.index: e for e in ActionExecution.objects.filter(message_id=f"{second.message_id}.retry{second.pk}")}
    assert last[0].status == "SKIPPED" and "it completed for message m-1 " in last[0].reason
    assert last[0].workflow_id == ActionExecution.objects.get(message_id="m-1", index=0, duplicate_of=None).workflow_id
    assert last[1].status == "COMPLETED"
    assert Task.objects.get(workflow=waiting, reference_task_name="later_ref").status == "COMPLETED"


def test_only_ids_quarantine_gave_out_count_as_retries(make_config):
    config = make_config("conductor")

    def quarantined(message_id: str, event: str = config.event) -> QuarantinedMessage:
        return QuarantinedMessage.objects.create(event=event, message_id=message_id, reason=Reason.UNREADABLE)

    first, long, other = quarantined("m-1"), quarantined("L" * 250), quarantined("m-2", event="conductor:elsewhere")
    discarded = quarantined("m-3")
    discarded.mark(QuarantinedMessage.Status.DISCARDED, None, "not wanted")
    again = quarantined(quarantine.retry_id("m-1", first.pk))
    ids = [
        "m-1", quarantine.retry_id("m-1", first.pk), quarantine.retry_id(again.message_id, again.pk),
        quarantine.retry_id("L" * 250, long.pk),  # cut to fit the records' column, still proven
        f"m-1.retry{first.pk}.retry{again.pk + 1000}",  # no such quarantined message
        f"m-x.retry{first.pk}",  # a quarantined message of another id
        f"m-2.retry{other.pk}", "x.retry7",  # another queue's; a producer's own id
        quarantine.retry_id("m-3", discarded.pk),  # discarded: never retried
    ]
    assert len(ids[3]) == 255
    assert quarantine.retried_messages(config.event, ids) == {
        ids[1]: ["m-1"], ids[2]: [ids[1], "m-1"], ids[3]: ["L" * 250],
    }
