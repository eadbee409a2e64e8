"""Dispatch reaches an engine through its interface only: a third engine, named in WORKFLOW_ENGINE by its
dotted path and a subclass of neither engine of the project, needs no change in handlers."""

import itertools
from contextlib import contextmanager

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from handlers.models import ActionExecution
from queues.models import ReceivedMessage
from workflows.builtin import BuiltinEngine
from workflows.conductor import ConductorEngine
from workflows.engine import EngineBatch, UpdatedTask, WorkflowEngine, get_engine
from workflows.errors import EngineUnavailable
from workflows.models import Workflow, WorkflowDefinition

from .seeds import START_SHIPPING
from .test_dispatch import dispatch, handler, message

pytestmark = pytest.mark.django_db
EVENT = "conductor:shipping_start"


class LedgerEngine(WorkflowEngine):
    """Not transactional: it keeps what it was asked in memory, as a remote server would, and cannot take
    it back. A start whose customer is "down" fails as an unreachable server would; "defect" crashes."""

    ids = itertools.count(1)

    def __init__(self) -> None:
        self.started: list[str] = []
        self.batches: list[tuple[str | None, bool]] = []

    @contextmanager
    def batch(self, *, key=None, together=False):
        self.batches.append((key, together))
        with super().batch(key=key, together=together) as unit:
            yield unit

    def start_workflow(self, name, version=None, input=None, correlation_id=None, task_to_domain=None,
                       idempotency_key=None, trigger=None, event=None) -> str:
        customer = input["customerName"]
        if customer == "down":
            raise EngineUnavailable("the ledger is down")
        self.started.append(customer)  # done: nothing undoes it now
        if customer == "defect":
            raise RuntimeError("a defect after the effect")
        return f"ledger-{next(self.ids)}"

    def complete_task(self, **kwargs) -> UpdatedTask:
        raise NotImplementedError

    def fail_task(self, **kwargs) -> UpdatedTask:
        raise NotImplementedError

    def terminate_workflow(self, workflow_id, reason=None) -> None:
        raise NotImplementedError

    def update_variables(self, workflow_id, variables, append_array=False) -> None:
        raise NotImplementedError

    def get_workflow(self, workflow_id, include_tasks=True) -> dict:
        raise NotImplementedError


class ReceiptBatch(EngineBatch):
    """A batch that reads the receipts' definitions ahead and leaves one new receipt row per start."""

    def __init__(self, engine: "ReceiptEngine") -> None:
        self.engine, self.receipts = engine, []

    def prefetch(self):
        return [WorkflowDefinition.objects.filter(name__startswith="receipt_")]

    def prefetched(self, results) -> None:
        self.engine.read_ahead.append([d.name for d in results[0]])

    def new_rows(self):
        receipts, self.receipts = self.receipts, []
        return [receipts]


class ReceiptEngine(LedgerEngine):
    def __init__(self) -> None:
        super().__init__()
        self.read_ahead: list[list[str]] = []
        self.unit: ReceiptBatch | None = None

    @contextmanager
    def batch(self, *, key=None, together=False):
        self.unit = ReceiptBatch(self)
        yield self.unit

    def start_workflow(self, *args, **kwargs) -> str:
        workflow_id = super().start_workflow(*args, **kwargs)
        self.unit.receipts.append(WorkflowDefinition(name=f"receipt_{workflow_id}", definition={}))
        return workflow_id


def customer(name: str) -> dict:
    return {"customer": {"name": name, "address": {}}}


@pytest.fixture
def ledger(settings) -> LedgerEngine:
    settings.WORKFLOW_ENGINE = f"{__name__}.LedgerEngine"
    engine = get_engine()
    assert type(engine) is LedgerEngine and not isinstance(engine, BuiltinEngine | ConductorEngine)
    engine.started.clear()
    engine.batches.clear()
    handler(START_SHIPPING, event=EVENT)
    return engine


def test_a_third_engine_named_by_its_dotted_path_runs_the_actions(ledger):
    messages = [message(customer("ada")), message(customer("grace"))]
    decisions = dispatch(EVENT, *messages)
    assert [d.action for d in decisions] == ["ack", "ack"]
    assert ledger.started == ["ada", "grace"]
    executions = ActionExecution.objects.order_by("pk")
    assert [e.status for e in executions] == ["COMPLETED", "COMPLETED"]
    assert all(e.workflow_id.startswith("ledger-") for e in executions)
    assert ledger.batches == [(EVENT, False)]  # one batch, never together: it is not transactional
    assert not Workflow.objects.exists()


def test_a_failure_costs_one_record_and_runs_nothing_twice_on_a_non_transactional_engine(ledger):
    first, broken, last = message(customer("first")), message(customer("defect")), message(customer("last"))
    decisions = dispatch(EVENT, first, broken, last)
    assert [d.action for d in decisions] == ["ack"] * 3
    assert ledger.started == ["first", "defect", "last"]  # each once: no start-over of the batch
    statuses = dict(ActionExecution.objects.values_list("message_id", "status"))
    assert statuses == {first.message_id: "COMPLETED", broken.message_id: "FAILED", last.message_id: "COMPLETED"}
    assert ReceivedMessage.objects.count() == 3


def test_a_retryable_failure_of_a_third_engine_returns_the_message(ledger):
    [decision] = dispatch(EVENT, down := message(customer("down")))
    assert decision.action == "nack"
    execution = ActionExecution.objects.get(message_id=down.message_id)
    assert (execution.status, execution.retryable) == ("IN_PROGRESS", True)


def test_an_engines_batch_reads_with_dispatch_and_inserts_with_its_records(settings):
    handler(START_SHIPPING, event=EVENT)
    engine = ReceiptEngine()
    dispatch(EVENT, message(customer("ada")), engine=engine)
    assert engine.read_ahead == [[]]
    with CaptureQueriesContext(connection) as queries:
        dispatch(EVENT, message(customer("grace")), engine=engine)
    [first_receipt] = engine.read_ahead[1]
    assert first_receipt.startswith("receipt_ledger-")
    assert WorkflowDefinition.objects.filter(name__startswith="receipt_").count() == 2
    if connection.vendor == "postgresql":  # one round trip to read, one statement to insert
        touching = [q["sql"] for q in queries.captured_queries if '"workflows_workflowdefinition"' in q["sql"]]
        [read] = [sql for sql in touching if sql.startswith("SELECT")]
        assert '"handlers_eventhandler"' in read
        [insert] = [sql for sql in touching if sql.startswith("INSERT")]
        assert '"handlers_actionexecution"' in insert
