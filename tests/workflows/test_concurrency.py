"""Two completions of one task at the same moment: exactly one wins, the other is told why.

PostgreSQL only: the row lock is what is under test. (pytest-django's SQLite test database is an
in-memory shared cache, where a second writer fails at once with "table is locked" instead of
waiting, so a thread test there would test the test set-up, not the runtime.)
"""

import threading
import time

import pytest
from django.db import connection, connections, transaction

from workflows import runtime
from workflows.errors import TaskAlreadyFinished
from workflows.models import Task, Workflow, WorkflowStatus

from .conftest import register, shipping_definition

pytestmark = pytest.mark.django_db(transaction=True)


def _waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


if "postgresql" in connections.settings["default"]["ENGINE"]:

    def _complete(workflow_id: str, who: str, results: dict, barrier: threading.Barrier) -> None:
        try:
            barrier.wait(timeout=10)
            runtime.update_task("COMPLETED", workflow_id=workflow_id, task_ref_name="human_docusign_step_ref",
                                output={"by": who})
            results[who] = "won"
        except TaskAlreadyFinished as exc:
            results[who] = exc
        finally:
            connections.close_all()


    def test_it_lets_only_one_of_two_racing_completions_win():
        register(shipping_definition())
        workflow = runtime.start_workflow("shipping_workflow")
        results: dict = {}
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=_complete, args=(workflow.id, who, results, barrier)) for who in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(str(type(r).__name__) if r != "won" else r for r in results.values()) == [
            "TaskAlreadyFinished", "won"]
        loser = next(r for r in results.values() if r != "won")
        assert "already COMPLETED" in str(loser)
        assert Task.objects.filter(workflow=workflow, reference_task_name="ship_order_ref").count() == 1
        winner = next(who for who, r in results.items() if r == "won")
        human = Task.objects.get(workflow=workflow, reference_task_name="human_docusign_step_ref")
        assert human.output == {"by": winner}


    def test_it_makes_the_second_completion_wait_for_the_first_and_then_refuses_it():
        """A holds the workflow's lock in an open transaction; B blocks on it, then sees the task done."""
        register(shipping_definition())
        workflow = runtime.start_workflow("shipping_workflow")
        a_done, release = threading.Event(), threading.Event()
        outcome: dict = {}

        def first() -> None:
            try:
                with transaction.atomic():
                    runtime.update_task("COMPLETED", workflow_id=workflow.id, task_ref_name="human_docusign_step_ref",
                                        output={"by": "a"})
                    a_done.set()
                    release.wait(timeout=20)
            finally:
                connections.close_all()

        def second() -> None:
            try:
                runtime.update_task("COMPLETED", workflow_id=workflow.id, task_ref_name="human_docusign_step_ref",
                                    output={"by": "b"})
                outcome["b"] = "won"
            except TaskAlreadyFinished as exc:
                outcome["b"] = exc
            finally:
                connections.close_all()

        thread_a = threading.Thread(target=first)
        thread_a.start()
        assert a_done.wait(timeout=20)
        thread_b = threading.Thread(target=second)
        thread_b.start()
        deadline = time.monotonic() + 20
        while not _waiting_on_a_lock() and time.monotonic() < deadline:
            time.sleep(0.01)  # Polling PostgreSQL for B's lock wait: an observed state, not a guess.
        assert _waiting_on_a_lock(), "the second completion never waited for the first one's lock"
        assert "b" not in outcome
        release.set()
        thread_a.join(timeout=20)
        thread_b.join(timeout=20)
        assert isinstance(outcome["b"], TaskAlreadyFinished)
        task = Task.objects.get(workflow=workflow, reference_task_name="human_docusign_step_ref")
        assert task.output == {"by": "a"}
        assert Workflow.objects.get(pk=workflow.id).status == WorkflowStatus.RUNNING
        assert Task.objects.filter(workflow=workflow, reference_task_name="ship_order_ref").count() == 1
