"""A handler deleted, or a shadow twin promoted (which deletes the twin), while a batch of its event is in
flight: the batch read the handler when it started and commits records pointing at it when it ends. The
deletion waits for the batch (which holds its event's handlers lock shared), then detaches those records
like the earlier ones; the batch commits, and a remote engine's action, which nothing undoes, is not sent
again by a redelivery."""

import threading

import pytest
from django.db import connection

from handlers import shadow
from handlers.changes import delete_handler
from handlers.dispatch import dispatch_batch
from handlers.models import ActionExecution, EventHandler, ExecutionStatus
from queues.configs import ensure_config

from ..workflows.conftest import ADDRESS
from .seeds import START_SHIPPING
from .test_dispatch import handler, message
from .test_dispatch_engines import LedgerEngine

pytestmark = pytest.mark.django_db(transaction=True)
EVENT = "conductor:shipping_start"
NAME = START_SHIPPING["name"]


class HeldRemote(LedgerEngine):
    """A remote engine whose start takes as long as the test holds it: the batch is in flight meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.started_one, self.release = threading.Event(), threading.Event()

    def start_workflow(self, *args, **kwargs) -> str:
        workflow_id = super().start_workflow(*args, **kwargs)
        self.started_one.set()
        assert self.release.wait(20)
        return workflow_id


def in_thread(work, errors: list) -> tuple[threading.Thread, threading.Event]:
    done = threading.Event()

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            done.set()
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, done


def a_batch_held_while(deletion) -> list[BaseException]:
    """One message dispatched by a remote engine held mid-batch; `deletion` starts meanwhile and must wait
    for the batch; then both finish. The errors either raised."""
    config, engine, errors = ensure_config(EVENT), HeldRemote(), []
    payload = {"customer": {"name": "Ada", "address": ADDRESS}}
    batch, _ = in_thread(lambda: dispatch_batch(config, [message(payload, message_id="m-1")], engine=engine), errors)
    assert engine.started_one.wait(20)
    deleting, deleted = in_thread(deletion, errors)
    assert not deleted.wait(1), "the deletion did not wait for the batch in flight"
    engine.release.set()
    batch.join(30)
    deleting.join(30)
    assert engine.started == ["Ada"]  # sent once: the batch committed, nothing redelivers it
    return errors


def test_promoting_a_twin_waits_for_a_batch_in_flight_that_read_it():
    original = handler(START_SHIPPING, event=EVENT)
    twin = shadow.shadow_copy(original, user=None)
    errors = a_batch_held_while(lambda: shadow.promote(EventHandler.objects.get(pk=twin.pk), user=None))
    assert not errors, f"the batch or the promotion failed: {errors!r}"
    assert not EventHandler.objects.filter(pk=twin.pk).exists()
    live = ActionExecution.objects.get(message_id="m-1", handler_name=NAME)
    assert (live.status, live.handler_id) == (ExecutionStatus.COMPLETED, original.pk)
    shadowed = ActionExecution.objects.get(message_id="m-1", handler_name=twin.name)
    assert (shadowed.status, shadowed.handler_id) == (ExecutionStatus.SHADOW, None)  # detached, kept


def test_deleting_a_handler_waits_for_a_batch_in_flight_that_read_it():
    doomed = handler(START_SHIPPING, event=EVENT)
    errors = a_batch_held_while(lambda: delete_handler(EventHandler.objects.get(pk=doomed.pk), user=None,
                                                       source="api"))
    assert not errors, f"the batch or the deletion failed: {errors!r}"
    record = ActionExecution.objects.get(message_id="m-1", handler_name=NAME)
    assert (record.status, record.handler_id) == (ExecutionStatus.COMPLETED, None)
    assert not EventHandler.objects.exists()
