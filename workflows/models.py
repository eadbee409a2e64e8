"""The built-in workflow runtime's state: definitions, workflow instances and their tasks.

Status names and JSON shapes are Conductor's, so its clients read them unchanged. Every status
change goes through `workflows.runtime`, which holds the locking rules.
"""

import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from .definitions import definition_problems


def new_id() -> str:
    return str(uuid.uuid4())


def epoch_ms(moment) -> int | None:
    return int(moment.timestamp() * 1000) if moment else None


def problem(path: str, detail: str) -> ValidationError:
    """A validation error that keeps its Conductor path, for both the API and the admin.

    Not code "invalid": a ModelForm would swap the message for its JSON field's "Enter a valid JSON".
    """
    return ValidationError("%(path)s: %(detail)s", code="definition_problem", params={"path": path, "detail": detail})


def _without_nulls(data: dict) -> dict:
    return {key: value for key, value in data.items() if value is not None}


class WorkflowDefinition(models.Model):
    """One version of a Conductor workflow definition, kept as the JSON it was registered with."""

    name = models.CharField(max_length=255, help_text="e.g. <code>shipping_workflow</code>.")
    version = models.PositiveIntegerField(default=1)
    description = models.TextField(blank=True, default="")
    definition = models.JSONField(
        help_text='Conductor JSON, e.g. <code>{"name": "shipping_workflow", "version": 1, "tasks": '
        '[{"name": "wait_for_signature", "taskReferenceName": "human_docusign_step_ref", "type": "HUMAN"}], '
        '"outputParameters": {}}</code>. Name, version and description are taken from it.'
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="workflow_definition_name_version")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    def clean(self) -> None:
        """The single validation of a definition: the admin form and the API both call it."""
        problems = definition_problems(self.definition)
        if problems:
            raise ValidationError({"definition": [problem(path, detail) for path, detail in problems]})
        self.sync_from_definition()

    def sync_from_definition(self) -> None:
        data = self.definition
        self.name = data["name"]
        self.version = data.get("version") or 1
        self.description = data.get("description") or ""
        data["version"] = self.version

    @classmethod
    def from_conductor(cls, data: Any, existing: "WorkflowDefinition | None" = None) -> "WorkflowDefinition":
        if not isinstance(data, dict):
            raise ValidationError({"definition": [problem("$", "a workflow definition must be a JSON object")]})
        definition = existing or cls()
        data = _without_nulls(data)
        if isinstance(data.get("tasks"), list):  # Conductor clients send every unset task field as null.
            data["tasks"] = [_without_nulls(task) if isinstance(task, dict) else task for task in data["tasks"]]
        definition.definition = data
        definition.clean()
        return definition

    @property
    def tasks(self) -> list[dict]:
        return self.definition.get("tasks", [])

    def to_conductor(self) -> dict:
        data = dict(self.definition)
        data.setdefault("inputParameters", [])
        data.setdefault("outputParameters", {})
        data["createTime"] = epoch_ms(self.created_at)
        data["updateTime"] = epoch_ms(self.updated_at)
        return data


class WorkflowStatus(models.TextChoices):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    TERMINATED = "TERMINATED"
    PAUSED = "PAUSED"


class TaskStatus(models.TextChoices):
    SCHEDULED = "SCHEDULED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    FAILED_WITH_TERMINAL_ERROR = "FAILED_WITH_TERMINAL_ERROR"
    CANCELED = "CANCELED"
    SKIPPED = "SKIPPED"
    TIMED_OUT = "TIMED_OUT"


ACTIVE_TASK_STATUSES = (TaskStatus.SCHEDULED, TaskStatus.IN_PROGRESS)
FAILED_TASK_STATUSES = (TaskStatus.FAILED, TaskStatus.FAILED_WITH_TERMINAL_ERROR, TaskStatus.TIMED_OUT)


class Workflow(models.Model):
    id = models.CharField(primary_key=True, max_length=64, default=new_id, editable=False)
    definition = models.ForeignKey(WorkflowDefinition, null=True, on_delete=models.SET_NULL, related_name="workflows")
    name = models.CharField(max_length=255)
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=WorkflowStatus.choices, default=WorkflowStatus.RUNNING)
    # NULL, not "": Conductor's JSON tells "no correlation id" apart, and many NULL keys may coexist
    # under the unique constraint while each real key starts one workflow only.
    correlation_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    input = models.JSONField(default=dict)
    output = models.JSONField(default=dict)
    variables = models.JSONField(default=dict)
    task_to_domain = models.JSONField(default=dict)
    reason_for_incompletion = models.TextField(null=True, blank=True)  # noqa: DJ001 - absent in Conductor's JSON
    trigger = models.JSONField(
        null=True, blank=True, help_text="What started it: messageId, executionId, handler of an event action."
    )
    # NULL when no event started it, as Conductor's JSON leaves it out.
    event = models.CharField(  # noqa: DJ001
        max_length=1024, null=True, blank=True,
        help_text="The event whose handler started it, e.g. <code>sqs:shipping_start</code>.",
    )
    # A snapshot, so a definition edited or deleted later cannot change a running workflow.
    definition_snapshot = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["name", "correlation_id"], name="workflow_name_correlation"),
            models.Index(fields=["correlation_id"], name="workflow_correlation"),
            models.Index(fields=["status", "created_at"], name="workflow_status_created"),
        ]
        # A constraint rather than unique=True, which adds a second index for LIKE on PostgreSQL.
        constraints = [models.UniqueConstraint(fields=["idempotency_key"], name="workflow_idempotency_key")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version} {self.id}"

    @property
    def is_running(self) -> bool:
        return self.status == WorkflowStatus.RUNNING

    def task_definitions(self) -> list[dict]:
        return self.definition_snapshot.get("tasks", [])

    def to_conductor(self, tasks: list["Task"] | None = None) -> dict:
        data = {
            "workflowId": self.id,
            "workflowName": self.name,
            "workflowVersion": self.version,
            "status": self.status,
            "correlationId": self.correlation_id,
            "idempotencyKey": self.idempotency_key,
            "input": self.input,
            "output": self.output,
            "variables": self.variables,
            "taskToDomain": self.task_to_domain,
            "event": self.event,
            "reasonForIncompletion": self.reason_for_incompletion,
            "createTime": epoch_ms(self.created_at),
            "startTime": epoch_ms(self.created_at),
            "updateTime": epoch_ms(self.updated_at),
            "endTime": epoch_ms(self.ended_at),
            "priority": 0,
            "tasks": [task.to_conductor(self) for task in tasks] if tasks is not None else [],
        }
        if tasks is not None:
            failed = [t for t in tasks if t.status in FAILED_TASK_STATUSES]
            data["failedReferenceTaskNames"] = [t.reference_task_name for t in failed]
        return _without_nulls(data)


class Task(models.Model):
    id = models.CharField(primary_key=True, max_length=64, default=new_id, editable=False)
    # Indexed by task_workflow_ref (workflow first): a second index would be written for every task.
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="tasks", db_index=False)
    seq = models.PositiveIntegerField(help_text="Order within the workflow, from 1.")
    position = models.PositiveIntegerField(help_text="Index of the task in the definition's task list.")
    task_type = models.CharField(max_length=32)
    task_def_name = models.CharField(max_length=255)
    reference_task_name = models.CharField(max_length=255)
    status = models.CharField(max_length=32, choices=TaskStatus.choices, default=TaskStatus.SCHEDULED)
    input = models.JSONField(default=dict)
    output = models.JSONField(default=dict)
    # NULL means absent, as in Conductor's JSON; a task without a domain is polled without one.
    reason_for_incompletion = models.TextField(null=True, blank=True)  # noqa: DJ001
    worker_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    domain = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    poll_count = models.PositiveIntegerField(default=0)
    wait_until = models.DateTimeField(null=True, blank=True, help_text="When a WAIT task with a duration ends.")
    trigger = models.JSONField(
        null=True, blank=True, help_text="What moved it: messageId, executionId, handler of an event action."
    )
    scheduled_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["workflow", "seq"]
        indexes = [
            models.Index(fields=["workflow", "reference_task_name", "seq"], name="task_workflow_ref"),
            models.Index(fields=["task_type", "status", "scheduled_at"], name="task_poll"),
            models.Index(fields=["status", "wait_until"], name="task_wait_due"),
        ]

    def __str__(self) -> str:
        return f"{self.reference_task_name} ({self.task_type}) {self.id}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_TASK_STATUSES

    def to_conductor(self, workflow: Workflow | None = None) -> dict:
        workflow = workflow or self.workflow
        data = {
            "taskId": self.id,
            "taskType": self.task_type,
            "taskDefName": self.task_def_name,
            "referenceTaskName": self.reference_task_name,
            "status": self.status,
            "inputData": self.input,
            "outputData": self.output,
            "reasonForIncompletion": self.reason_for_incompletion,
            "workerId": self.worker_id,
            "domain": self.domain,
            "seq": self.seq,
            "pollCount": self.poll_count,
            "retryCount": 0,
            "workflowInstanceId": self.workflow_id,
            "workflowType": workflow.name,
            "correlationId": workflow.correlation_id,
            "scheduledTime": epoch_ms(self.scheduled_at),
            "startTime": epoch_ms(self.started_at) or 0,
            "endTime": epoch_ms(self.ended_at) or 0,
            "updateTime": epoch_ms(self.updated_at),
            "workflowTask": self.definition_task(workflow),
        }
        return _without_nulls(data)

    def definition_task(self, workflow: Workflow) -> dict | None:
        tasks = workflow.task_definitions()
        return tasks[self.position] if self.position < len(tasks) else None
