import datetime as dt

import pytest
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task, result

from workflows import runtime
from workflows.models import TaskStatus, Workflow, WorkflowStatus
from workflows.tasks import WAIT_SWEEP_SCHEDULE, sync_schedules

from .conftest import one_task, register

pytestmark = pytest.mark.django_db


def test_it_keeps_one_schedule_for_the_sweep_synced_by_name(settings):
    schedule = Schedule.objects.get(name=WAIT_SWEEP_SCHEDULE)
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "workflows.tasks.sweep_due_waits", Schedule.MINUTES, settings.WORKFLOW_WAIT_SWEEP_MINUTES)
    settings.WORKFLOW_WAIT_SWEEP_MINUTES = 5
    sync_schedules()
    assert Schedule.objects.filter(name=WAIT_SWEEP_SCHEDULE).count() == 1
    assert Schedule.objects.get(name=WAIT_SWEEP_SCHEDULE).minutes == 5


def test_it_completes_due_waits_when_django_q_runs_the_scheduled_function():
    data = one_task("WAIT", inputParameters={"duration": "0s"})
    data["tasks"].insert(0, {"name": "gate", "taskReferenceName": "gate_ref", "type": "HUMAN"})
    register(data)
    due = runtime.start_workflow(data["name"])
    later = one_task("WAIT", inputParameters={"duration": "1h"})
    register(later)
    not_due = runtime.start_workflow(later["name"])
    runtime.update_task("COMPLETED", workflow_id=due.id, task_ref_name="gate_ref")
    wait = due.tasks.get(reference_task_name="step_ref")
    # Scheduled with a zero duration: completed inline, not left for the sweep.
    assert wait.status == TaskStatus.COMPLETED
    # Make one due by moving its deadline into the past, as time passing would.
    pending = not_due.tasks.get()
    pending.wait_until = timezone.now() - dt.timedelta(seconds=1)
    pending.save()

    task_id = async_task(Schedule.objects.get(name=WAIT_SWEEP_SCHEDULE).func)
    assert result(task_id) == 1
    assert Workflow.objects.get(pk=not_due.id).status == WorkflowStatus.COMPLETED
    assert Workflow.objects.get(pk=due.id).status == WorkflowStatus.COMPLETED
