"""The ops console for workflows: definitions edited as JSON, instances and tasks read-only with actions."""

import json
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from eventhub.lib.forms import StorableJSONField
from eventhub.lib.storable import UnreadableJSON, read_json
from queues.admin import AuditAdmin

from . import runtime
from .errors import EngineError
from .models import Task, TaskStatus, Workflow, WorkflowDefinition


class PrettyJSONWidget(forms.Textarea):
    def format_value(self, value):
        if isinstance(value, str):
            try:
                value = read_json(value)
            except UnreadableJSON:
                return value  # shown as typed, with the field's error
        return json.dumps(value, indent=2, ensure_ascii=False)


class WorkflowDefinitionForm(forms.ModelForm):
    class Meta:
        model = WorkflowDefinition
        fields = ["definition"]
        field_classes = {"definition": StorableJSONField}
        widgets = {"definition": PrettyJSONWidget(attrs={"rows": 30, "cols": 100, "style": "font-family: monospace"})}

    def _post_clean(self) -> None:
        # The model's clean() (called here by Django) is the one validation; name and version come
        # from the JSON, so their uniqueness is checked here rather than left to an IntegrityError.
        super()._post_clean()
        if self.errors:
            return
        instance = self.instance
        taken = WorkflowDefinition.objects.filter(name=instance.name, version=instance.version)
        if taken.exclude(pk=instance.pk).exists():
            self.add_error("definition", f"{instance.name} version {instance.version} already exists; "
                           "raise the version to register a new one.")


@admin.register(WorkflowDefinition)
class WorkflowDefinitionAdmin(admin.ModelAdmin):
    form = WorkflowDefinitionForm
    list_display = ["name", "version", "description", "task_count", "updated_at"]
    search_fields = ["name", "description"]
    list_filter = ["name"]
    readonly_fields = ["name", "version", "description", "created_at", "updated_at"]
    fields = ["definition", "name", "version", "description", "created_at", "updated_at"]

    @admin.display(description="tasks")
    def task_count(self, obj: WorkflowDefinition) -> int:
        return len(obj.tasks) if isinstance(obj.tasks, list) else 0


def pretty(value) -> str:
    return format_html("<pre style='margin:0'>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


class TaskInline(admin.TabularInline):
    model = Task
    fields = ["seq", "reference_task_name", "task_type", "status", "scheduled_at", "ended_at",
              "reason_for_incompletion"]
    readonly_fields = fields
    show_change_link = True
    extra = 0
    can_delete = False
    ordering = ["seq"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _report(modeladmin, request, done: list[str], refused: list[str], verb: str) -> None:
    if done:
        modeladmin.message_user(request, f"{verb} {len(done)}: {', '.join(done)}", messages.SUCCESS)
    for reason in refused:
        modeladmin.message_user(request, reason, messages.WARNING)


@admin.register(Workflow)
class WorkflowAdmin(AuditAdmin):
    list_display = ["id", "name", "version", "status", "correlation_id", "created_at", "ended_at"]
    list_filter = ["status", "name"]
    search_fields = ["=id", "correlation_id", "idempotency_key"]
    list_select_related = ["definition"]
    date_hierarchy = "created_at"
    inlines = [TaskInline]
    actions = ["terminate"]
    readonly_fields = ["id", "name", "version", "status", "correlation_id", "idempotency_key", "event",
                       "reason_for_incompletion", "trigger_shown", "event_trail", "input_shown", "variables_shown",
                       "output_shown", "created_at", "ended_at"]
    fields = readonly_fields

    @admin.display(description="input")
    def input_shown(self, obj: Workflow) -> str:
        return pretty(obj.input)

    @admin.display(description="variables")
    def variables_shown(self, obj: Workflow) -> str:
        return pretty(obj.variables)

    @admin.display(description="output")
    def output_shown(self, obj: Workflow) -> str:
        return pretty(obj.output)

    @admin.display(description="started by")
    def trigger_shown(self, obj: Workflow) -> str:
        return pretty(obj.trigger) if obj.trigger else "-"

    @admin.display(description="event trail")
    def event_trail(self, obj: Workflow) -> str:
        """Links to the message that started it and every event execution that acted on it (by search, so this
        app needs nothing from the handlers app)."""
        executions = reverse("admin:handlers_actionexecution_changelist") + "?" + urlencode({"q": obj.id})
        links = format_html('<a href="{}">event executions on this workflow</a>', executions)
        message_id = (obj.trigger or {}).get("messageId")
        if message_id:
            received = reverse("admin:queues_receivedmessage_changelist") + "?" + urlencode({"q": message_id})
            links = format_html('<a href="{}">message {}</a> · {}', received, message_id, links)
        return links

    @admin.action(description="Terminate the selected running workflows", permissions=["terminate"])
    def terminate(self, request, queryset) -> None:
        done, refused = [], []
        reason = f"Terminated from the admin by {request.user.get_username()}"
        for workflow_id in queryset.values_list("pk", flat=True):
            try:
                runtime.terminate_workflow(workflow_id, reason)
                done.append(workflow_id)
            except EngineError as exc:
                refused.append(exc.message)
        _report(self, request, done, refused, "Terminated")

    def has_terminate_permission(self, request) -> bool:
        return request.user.has_perm("workflows.change_workflow")


@admin.register(Task)
class TaskAdmin(AuditAdmin):
    list_display = ["id", "reference_task_name", "task_type", "status", "workflow_link", "scheduled_at", "ended_at"]
    list_filter = ["status", "task_type", "workflow__name"]
    search_fields = ["=id", "=workflow__id", "workflow__correlation_id", "reference_task_name"]
    list_select_related = ["workflow"]
    date_hierarchy = "scheduled_at"
    actions = ["complete_by_hand", "fail_by_hand"]
    readonly_fields = ["id", "workflow_link", "seq", "reference_task_name", "task_def_name", "task_type", "status",
                       "worker_id", "wait_until", "reason_for_incompletion", "trigger_shown", "input_shown",
                       "output_shown", "scheduled_at", "started_at", "ended_at"]
    fields = readonly_fields

    @admin.display(description="workflow")
    def workflow_link(self, obj: Task) -> str:
        return format_html("<a href='../../workflow/{}/change/'>{} ({})</a>", obj.workflow_id, obj.workflow.name,
                           obj.workflow.status)

    @admin.display(description="input")
    def input_shown(self, obj: Task) -> str:
        return pretty(obj.input)

    @admin.display(description="output")
    def output_shown(self, obj: Task) -> str:
        return pretty(obj.output)

    @admin.display(description="moved by")
    def trigger_shown(self, obj: Task) -> str:
        return pretty(obj.trigger) if obj.trigger else "-"

    def _update_by_hand(self, request, queryset, status: str, verb: str) -> None:
        done, refused = [], []
        who = request.user.get_username()
        for task in queryset.select_related(None).only("pk", "task_type", "reference_task_name"):
            if task.task_type not in ("HUMAN", "WAIT"):
                refused.append(f"Task {task.reference_task_name} ({task.pk}) is {task.task_type}: only HUMAN and "
                               "WAIT tasks are moved by hand.")
                continue
            reason = f"Failed from the admin by {who}" if status != TaskStatus.COMPLETED else None
            try:
                runtime.update_task(status, task_id=task.pk, output={"updatedBy": who}, reason=reason,
                                    trigger={"admin": who})
                done.append(task.pk)
            except EngineError as exc:
                refused.append(exc.message)
        _report(self, request, done, refused, verb)

    @admin.action(description="Complete the selected HUMAN / WAIT tasks", permissions=["move"])
    def complete_by_hand(self, request, queryset) -> None:
        self._update_by_hand(request, queryset, TaskStatus.COMPLETED, "Completed")

    @admin.action(description="Fail the selected HUMAN / WAIT tasks", permissions=["move"])
    def fail_by_hand(self, request, queryset) -> None:
        self._update_by_hand(request, queryset, TaskStatus.FAILED, "Failed")

    def has_move_permission(self, request) -> bool:
        return request.user.has_perm("workflows.change_task")

