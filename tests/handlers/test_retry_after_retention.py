"""A quarantined message can be retried whenever someone gets to it: its records, and its chain's, are kept
past the retention period meanwhile, so the retry still runs only what did not complete."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from handlers.listener import Listener
from handlers.models import ActionExecution
from handlers.tasks import purge_old_records
from queues import quarantine
from queues.models import InternalMessage, QuarantinedMessage, ReceivedMessage
from workflows.models import Task, Workflow

from .test_quarantine import start_then_complete

pytestmark = pytest.mark.django_db(transaction=True)


def age_everything(days: int) -> None:
    then = timezone.now() - timedelta(days=days)
    ReceivedMessage.objects.update(received_at=then)
    ActionExecution.objects.update(created_at=then)


def test_a_retry_after_the_retention_period_runs_only_what_did_not_complete(make_config):
    config = make_config("conductor", max_deliveries=2, visibility_timeout=0)
    started_flow, waiting, elsewhere = start_then_complete(config)
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
