"""Two consumers making the first attempt at one message at the same moment (a visibility timeout that
expired mid-batch, a redelivery after a lost connection): the first claims it, the second waits for it and
then records a duplicate. On a remote engine, whose calls cannot be undone, the workflow starts once."""

import threading
import time

import pytest
from django.db import connection

from handlers.dispatch import dispatch_batch
from handlers.models import ActionExecution
from queues.configs import ensure_config
from workflows.builtin import BuiltinEngine
from workflows.models import Workflow

from ..workflows.conftest import register, shipping_definition
from .seeds import START_SHIPPING
from .test_dispatch import handler, message
from .test_dispatch_engines import LedgerEngine

pytestmark = pytest.mark.django_db(transaction=True)
EVENT = "conductor:shipping_start"
PAYLOAD = {"customer": {"name": "Ada", "address": {"street": "s", "city": "c", "zip": "z"}}}


class SlowLedger(LedgerEngine):
    """A remote engine double: it counts the starts it receives, each taking a moment, as over a network."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def start_workflow(self, *args, **kwargs) -> str:
        with self.lock:
            workflow_id = super().start_workflow(*args, **kwargs)
        time.sleep(0.5)  # the other consumer's copy arrives meanwhile
        return workflow_id


def two_consumers_at_once(engine_for) -> list[BaseException]:
    """Both dispatch a copy of one message, first delivery, starting together; the errors they raised."""
    config = ensure_config(EVENT)
    copy = message(PAYLOAD, message_id="m-1")
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            start.wait()
            dispatch_batch(config, [copy], engine=engine_for())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=consume) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return errors


def assert_one_original_and_one_duplicate() -> None:
    original = ActionExecution.objects.get(duplicate_of__isnull=True)
    duplicate = ActionExecution.objects.get(duplicate_of__isnull=False)
    assert (original.status, duplicate.status, duplicate.duplicate_of_id) == ("COMPLETED", "SKIPPED", original.pk)
    assert duplicate.reason.startswith("duplicate delivery: already COMPLETED")


def test_a_remote_engine_receives_one_start_when_two_consumers_make_the_first_attempt_together():
    handler(START_SHIPPING, event=EVENT)
    ledger = SlowLedger()
    assert two_consumers_at_once(lambda: ledger) == []
    assert ledger.started == ["Ada"]
    assert_one_original_and_one_duplicate()


def test_the_built_in_engine_starts_one_workflow_and_neither_consumer_fails():
    register(shipping_definition())
    handler(START_SHIPPING, event=EVENT)
    assert two_consumers_at_once(BuiltinEngine) == []  # (without the claim: one batch's unique constraint fails)
    assert Workflow.objects.count() == 1
    assert_one_original_and_one_duplicate()
