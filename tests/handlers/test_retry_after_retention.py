"""A quarantined message can be retried whenever someone gets to it: its records, and its chain's, are kept
past the retention period meanwhile, so the retry still runs only what did not complete."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from handlers.changes import save_handler
from handlers.listener import Listener
from handlers.models import ActionExecution, EventHandler
from handlers.tasks import purge_old_records
from queues import quarantine
from queues.models import InternalMessage, QuarantinedMessage, ReceivedMessage
from workflows import runtime
from workflows.models import Task, Workflow

from ..workflows.conftest import one_task, register

pytestmark = pytest.mark.django_db(transaction=True)


def age_everything(days: int) -> None:
    then = timezone.now() - timedelta(days=days)
    ReceivedMessage.objects.update(received_at=then)
    ActionExecution.objects.update(created_at=then)


def test_a_retry_after_the_retention_period_runs_only_what_did_not_complete(make_config):
    config = make_config("conductor", max_deliveries=2, visibility_timeout=0)
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
    listener = Listener(events=[config.event])
    InternalMessage.objects.create(queue=config.spec().name, message_id="m-1", body=json.dumps({"wf": elsewhere.id}))
    for _ in range(6):
        listener.run_once(wait=0)
    kept = QuarantinedMessage.objects.get(status="QUARANTINED")
    assert Workflow.objects.filter(name=started_flow.name).count() == 2  # `elsewhere` and the one m-1 started

    age_everything(days=40)
    purge_old_records(days=30)  # the message waits in quarantine: its records stay
    assert ActionExecution.objects.filter(message_id="m-1", index=0, status="COMPLETED").exists()

    quarantine.retry(kept, payload={"wf": waiting.id})
    for _ in range(3):
        listener.run_once(wait=0)
    listener.close()

    assert Workflow.objects.filter(name=started_flow.name).count() == 2  # not started a second time
    retried = {e.index: e for e in ActionExecution.objects.filter(message_id=f"m-1.retry{kept.pk}")}
    assert retried[0].status == "SKIPPED" and "it completed for message m-1 " in retried[0].reason
    assert retried[1].status == "COMPLETED"
    assert Task.objects.get(workflow=waiting, reference_task_name="later_ref").status == "COMPLETED"

    age_everything(days=40)  # retried and done with: now nothing keeps them
    QuarantinedMessage.objects.update(resolved_at=timezone.now() - timedelta(days=40))
    purge_old_records(days=30)
    assert not ActionExecution.objects.exists() and not ReceivedMessage.objects.exists()
