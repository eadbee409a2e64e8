"""The built-in engine: the embedded runtime (workflows.runtime) behind the engine interface.

It is transactional: its changes are writes in the caller's transaction (savepoints, no commits), so an
event action's effect commits with its record or not at all.
"""

from . import runtime
from .engine import UpdatedTask, WorkflowEngine
from .errors import NoSuchWorkflow
from .models import Task, TaskStatus, Workflow


class BuiltinEngine(WorkflowEngine):
    """The embedded runtime; its changes join the caller's transaction (savepoints, no commits)."""

    transactional = True

    def start_workflow(self, name, version=None, input=None, correlation_id=None, task_to_domain=None,
                       idempotency_key=None, trigger=None) -> str:
        return runtime.start_workflow(name, version, input, correlation_id, task_to_domain, idempotency_key,
                                      trigger).id

    def complete_task(self, *, task_id=None, workflow_id=None, task_ref_name=None, output=None, reason=None,
                      trigger=None) -> UpdatedTask:
        task = runtime.update_task(TaskStatus.COMPLETED, task_id=task_id, workflow_id=workflow_id,
                                   task_ref_name=task_ref_name, output=output, reason=reason, trigger=trigger)
        return UpdatedTask(task.id, task.workflow_id)

    def fail_task(self, *, task_id=None, workflow_id=None, task_ref_name=None, output=None, reason=None,
                  trigger=None) -> UpdatedTask:
        task = runtime.update_task(TaskStatus.FAILED, task_id=task_id, workflow_id=workflow_id,
                                   task_ref_name=task_ref_name, output=output, reason=reason, trigger=trigger)
        return UpdatedTask(task.id, task.workflow_id)

    def terminate_workflow(self, workflow_id: str, reason: str | None = None) -> None:
        runtime.terminate_workflow(workflow_id, reason)

    def update_variables(self, workflow_id: str, variables: dict, append_array: bool = False) -> None:
        runtime.update_variables(workflow_id, variables, append_array)

    def get_workflow(self, workflow_id: str, include_tasks: bool = True) -> dict:
        workflow = Workflow.objects.filter(pk=workflow_id).first()
        if workflow is None:
            raise NoSuchWorkflow(f"No workflow with id {workflow_id!r}.")
        tasks = list(Task.objects.filter(workflow=workflow).order_by("seq")) if include_tasks else None
        return workflow.to_conductor(tasks)
