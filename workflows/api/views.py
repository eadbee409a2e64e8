"""The subset of Conductor's workflow API its clients use, answered by the built-in runtime.

Authentication, permissions (`permission_model`: view to read, change to write) and the error body
are the project's global DRF settings. Start and task-update calls answer the bare id as
`text/plain` when the client accepts it, as Conductor does: its clients send `Accept: text/plain`.
"""

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import runtime
from ..errors import EngineError
from ..models import Task, Workflow, WorkflowDefinition, WorkflowStatus
from .serializers import (
    StartWorkflowRequestSerializer,
    TaskResultSerializer,
    TaskSerializer,
    WorkflowDefSerializer,
    WorkflowErrorSerializer,
    WorkflowSerializer,
)

ERRORS = {code: WorkflowErrorSerializer for code in (400, 401, 403, 404)}
ID_TEXT = {
    (200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="The bare id."),
    (200, "application/json"): OpenApiResponse(OpenApiTypes.STR, description="The id as a JSON string."),
}
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


class EngineProblem(exceptions.APIException):
    """An engine error answered with its own status code, in Conductor's error body."""

    def __init__(self, error: EngineError):
        super().__init__(error.message)
        self.status_code = error.http_status
        self.retryable = error.retryable


def query_bool(request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE | _FALSE:
        return value in _TRUE
    raise exceptions.ValidationError({name: [f"must be true or false, not {raw!r}"]})


MAX_INT = 2**31 - 1


def int_parameter(name: str, description: str = "", minimum: int = 0) -> OpenApiParameter:
    """A whole-number query parameter, with the bounds `query_int` enforces."""
    return OpenApiParameter(name, {"type": "integer", "minimum": minimum, "maximum": MAX_INT},
                            description=description)


def query_int(request, name: str, minimum: int = 0) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise exceptions.ValidationError({name: [f"must be a whole number, not {raw!r}"]}) from None
    if value < minimum or value > MAX_INT:
        raise exceptions.ValidationError({name: [f"must be between {minimum} and {MAX_INT}"]})
    return value


def object_body(request, name: str = "body", *, allow_missing: bool = True) -> dict:
    """The JSON object a body holds; an empty body counts as `{}` where allowed (JSON `null` does not)."""
    data = request.data
    if data == {} and allow_missing:
        return {}
    if not isinstance(data, dict):
        raise exceptions.ValidationError({name: ["must be a JSON object"]})
    return data


def id_response(request, value: str) -> HttpResponse:
    """The bare id as text, unless the client asked for JSON and not for text."""
    accept = request.META.get("HTTP_ACCEPT", "")
    if "application/json" in accept and "text/plain" not in accept and "*/*" not in accept:
        return Response(value)
    return HttpResponse(value, content_type="text/plain")


def empty_ok() -> HttpResponse:
    return HttpResponse(status=200)


class EngineAPIView(APIView):
    def handle_exception(self, exc):
        if isinstance(exc, EngineError):
            exc = EngineProblem(exc)
        return super().handle_exception(exc)


class ChangePermission(BasePermission):
    """For GETs that change state (a poll claims a task): the model's change permission."""

    def has_permission(self, request, view) -> bool:
        model = view.permission_model
        return bool(request.user and request.user.is_authenticated and request.user.has_perm(
            f"{model._meta.app_label}.change_{model._meta.model_name}"
        ))


# Metadata ----------------------------------------------------------------------------------------


def _definitions_of(data: Any) -> list[WorkflowDefinition]:
    """Validate every definition of a body (one or a list; an empty list is nothing to do) before any is saved."""
    items = data if isinstance(data, list) else [data]
    definitions, problems = [], {}
    for index, item in enumerate(items):
        existing = None
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            version = item.get("version") or 1
            if isinstance(version, int) and not isinstance(version, bool):
                existing = WorkflowDefinition.objects.filter(name=item["name"], version=version).first()
        try:
            definitions.append(WorkflowDefinition.from_conductor(item, existing))
        except DjangoValidationError as exc:
            prefix = f"[{index}]." if isinstance(data, list) else ""
            for path, message in _problems(exc):
                problems.setdefault(prefix + path, []).append(message)
    if problems:
        raise exceptions.ValidationError(problems)
    return definitions


def _problems(error: DjangoValidationError) -> list[tuple[str, str]]:
    out = []
    for errors in error.error_dict.values():
        for item in errors:
            params = item.params or {}
            out.append((params.get("path", "$"), params.get("detail", next(iter(item)))))
    return out


def _save_all(definitions: list[WorkflowDefinition]) -> None:
    with transaction.atomic():
        for definition in definitions:
            definition.save()


class WorkflowDefinitionsView(EngineAPIView):
    permission_model = WorkflowDefinition

    @extend_schema(operation_id="getAllWorkflows", responses={200: WorkflowDefSerializer(many=True), **ERRORS})
    def get(self, request):
        return Response([d.to_conductor() for d in WorkflowDefinition.objects.order_by("name", "version")])

    @extend_schema(
        operation_id="create",
        request={"application/json": WorkflowDefSerializer},
        parameters=[OpenApiParameter("overwrite", OpenApiTypes.BOOL, description="Replace an existing version.")],
        responses={200: OpenApiResponse(description="Registered; empty body."), 409: WorkflowErrorSerializer, **ERRORS},
        description="Register a workflow definition, or a list of them.",
    )
    def post(self, request):
        overwrite = query_bool(request, "overwrite", default=False)
        definitions = _definitions_of(request.data)
        taken = [d for d in definitions if d.pk]
        if taken and not overwrite:
            raise _conflict(f"Workflow with {taken[0].name}.{taken[0].version} already exists!")
        try:
            _save_all(definitions)
        except IntegrityError:
            raise _conflict("A workflow with that name and version was registered at the same time.") from None
        return empty_ok()

    @extend_schema(
        operation_id="update",
        request={"application/json": WorkflowDefSerializer(many=True)},
        responses={200: OpenApiResponse(description="Registered or replaced; empty body."), **ERRORS},
        description="Create or replace each workflow definition of a list (a single one is accepted too).",
    )
    def put(self, request):
        try:
            _save_all(_definitions_of(request.data))
        except IntegrityError:
            raise _conflict("A workflow with that name and version was registered at the same time.") from None
        return empty_ok()


def _conflict(message: str) -> exceptions.APIException:
    error = exceptions.APIException(message)
    error.status_code = 409
    return error


class WorkflowDefinitionView(EngineAPIView):
    permission_model = WorkflowDefinition

    @extend_schema(
        operation_id="get",
        parameters=[int_parameter("version", "Omitted: the latest.", minimum=1)],
        responses={200: WorkflowDefSerializer, **ERRORS},
    )
    def get(self, request, name: str):
        return Response(runtime.find_definition(name, query_int(request, "version", minimum=1)).to_conductor())


# Workflows -----------------------------------------------------------------------------------------


def _start(request, name: Any, body: dict, **overrides) -> HttpResponse:
    if not isinstance(name, str) or not name:
        raise exceptions.ValidationError({"name": ["is required: the workflow definition to start"]})
    fields = {
        "version": body.get("version"), "input": body.get("input"), "correlationId": body.get("correlationId"),
        "taskToDomain": body.get("taskToDomain"), "idempotencyKey": body.get("idempotencyKey"),
        "priority": body.get("priority"), **overrides,
    }
    problems = _start_problems(fields)
    if problems:
        raise exceptions.ValidationError(problems)
    workflow = runtime.start_workflow(
        name, fields["version"], fields["input"], fields["correlationId"], fields["taskToDomain"],
        fields["idempotencyKey"],
    )
    return id_response(request, workflow.id)


def _start_problems(fields: dict) -> dict:
    problems: dict = {}
    version = fields["version"]
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        problems["version"] = ["must be a whole number, or null for the latest"]
    for key in ("input", "taskToDomain"):
        if fields[key] is not None and not isinstance(fields[key], dict):
            problems[key] = ["must be a JSON object"]
    for key in ("correlationId", "idempotencyKey"):
        if fields[key] is not None and not isinstance(fields[key], str):
            problems[key] = ["must be a string"]
    domains = fields["taskToDomain"]
    if isinstance(domains, dict) and not all(isinstance(value, str) for value in domains.values()):
        problems["taskToDomain"] = ["maps task names to domain names (strings)"]
    priority = fields.get("priority")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        problems["priority"] = ["must be a whole number"]
    return problems


class StartWorkflowView(EngineAPIView):
    permission_model = Workflow

    @extend_schema(
        operation_id="startWorkflow",
        request={"application/json": StartWorkflowRequestSerializer},
        responses={**ID_TEXT, **ERRORS},
        description="Start a workflow from a StartWorkflowRequest; answers its id.",
    )
    def post(self, request):
        body = object_body(request, allow_missing=False)
        return _start(request, body.get("name"), body)


class WorkflowView(EngineAPIView):
    """`GET`/`DELETE /workflow/{workflowId}` read or terminate; `POST /workflow/{name}` starts one."""

    permission_model = Workflow

    @extend_schema(
        operation_id="getExecutionStatus",
        parameters=[
            OpenApiParameter("key", OpenApiTypes.STR, OpenApiParameter.PATH, description="The workflow id."),
            OpenApiParameter("includeTasks", OpenApiTypes.BOOL, description="Default true."),
        ],
        responses={200: WorkflowSerializer, **ERRORS},
    )
    def get(self, request, key: str):
        workflow = Workflow.objects.filter(pk=key).first()
        if workflow is None:
            raise exceptions.NotFound(f"No workflow with id {key!r}.")
        tasks = list(workflow.tasks.order_by("seq")) if query_bool(request, "includeTasks", True) else []
        return Response(workflow.to_conductor(tasks))

    @extend_schema(
        operation_id="terminate",
        parameters=[
            OpenApiParameter("key", OpenApiTypes.STR, OpenApiParameter.PATH, description="The workflow id."),
            OpenApiParameter("reason", OpenApiTypes.STR),
        ],
        responses={200: OpenApiResponse(description="Terminated; empty body."), 409: WorkflowErrorSerializer, **ERRORS},
    )
    def delete(self, request, key: str):
        runtime.terminate_workflow(key, request.query_params.get("reason") or None)
        return empty_ok()

    @extend_schema(
        operation_id="startWorkflowByName",
        request={"application/json": OpenApiTypes.OBJECT},
        parameters=[
            OpenApiParameter("key", OpenApiTypes.STR, OpenApiParameter.PATH, description="The workflow name."),
            int_parameter("version", "Omitted: the latest.", minimum=1),
            OpenApiParameter("correlationId", OpenApiTypes.STR),
            int_parameter("priority", "Accepted; Eventhub runs workflows in start order."),
        ],
        responses={**ID_TEXT, **ERRORS},
        description="Start a workflow; the body is its input. Answers the workflow id.",
    )
    def post(self, request, key: str):
        version = query_int(request, "version", minimum=1)
        query_int(request, "priority")  # Accepted and checked; Eventhub runs workflows in start order.
        return _start(request, key, {}, input=object_body(request, "input"), version=version,
                      correlationId=request.query_params.get("correlationId") or None)


class CorrelatedWorkflowsView(EngineAPIView):
    permission_model = Workflow

    @extend_schema(
        operation_id="getWorkflowsByCorrelationId",
        parameters=[
            OpenApiParameter("includeClosed", OpenApiTypes.BOOL, description="Default false."),
            OpenApiParameter("includeTasks", OpenApiTypes.BOOL, description="Default false."),
        ],
        responses={200: WorkflowSerializer(many=True), **ERRORS},
    )
    def get(self, request, name: str, correlation_id: str):
        workflows = Workflow.objects.filter(name=name, correlation_id=correlation_id).order_by("created_at")
        if not query_bool(request, "includeClosed", False):
            workflows = workflows.filter(status=WorkflowStatus.RUNNING)
        with_tasks = query_bool(request, "includeTasks", False)
        if with_tasks:
            workflows = workflows.prefetch_related("tasks")
        return Response([w.to_conductor(sorted(w.tasks.all(), key=lambda t: t.seq) if with_tasks else [])
                         for w in workflows])


class WorkflowVariablesView(EngineAPIView):
    permission_model = Workflow

    @extend_schema(
        operation_id="updateWorkflowState",
        request={"application/json": OpenApiTypes.OBJECT},
        responses={200: WorkflowSerializer, **ERRORS},
        description="Set workflow variables (the given keys replace those there); answers the workflow.",
    )
    def post(self, request, workflow_id: str):
        workflow = runtime.update_variables(workflow_id, object_body(request, "variables"))
        return Response(workflow.to_conductor(list(workflow.tasks.order_by("seq"))))


# Tasks ---------------------------------------------------------------------------------------------


class TaskResultView(EngineAPIView):
    permission_model = Task

    @extend_schema(
        operation_id="updateTask",
        request={"application/json": TaskResultSerializer},
        responses={**ID_TEXT, 409: WorkflowErrorSerializer, **ERRORS},
    )
    def post(self, request):
        body = object_body(request, allow_missing=False)
        task_id, status = body.get("taskId"), body.get("status")
        problems = {}
        if not isinstance(task_id, str) or not task_id:
            problems["taskId"] = ["is required"]
        if not isinstance(status, str):
            problems["status"] = ["is required: IN_PROGRESS, COMPLETED, FAILED or FAILED_WITH_TERMINAL_ERROR"]
        for key in ("reasonForIncompletion", "workerId", "workflowInstanceId"):
            if body.get(key) is not None and not isinstance(body[key], str):
                problems[key] = ["must be a string"]
        if body.get("outputData") is not None and not isinstance(body["outputData"], dict):
            problems["outputData"] = ["must be a JSON object"]
        if problems:
            raise exceptions.ValidationError(problems)
        task = runtime.update_task(
            status, task_id=task_id, output=body.get("outputData"), reason=body.get("reasonForIncompletion"),
            worker_id=body.get("workerId") or None,
        )
        return id_response(request, task.id)


class TaskByReferenceView(EngineAPIView):
    permission_model = Task

    @extend_schema(
        operation_id="updateTaskByRefName",
        request={"application/json": OpenApiTypes.OBJECT},
        parameters=[
            OpenApiParameter("workerid", OpenApiTypes.STR),
            OpenApiParameter("status", OpenApiTypes.STR, OpenApiParameter.PATH,
                             enum=["IN_PROGRESS", "COMPLETED", "FAILED", "FAILED_WITH_TERMINAL_ERROR"]),
        ],
        responses={**ID_TEXT, 409: WorkflowErrorSerializer, **ERRORS},
        description="Update the most recent task of a reference name; the body is merged over its output.",
    )
    def post(self, request, workflow_id: str, task_ref_name: str, status: str):
        task = runtime.update_task(
            status, workflow_id=workflow_id, task_ref_name=task_ref_name, output=object_body(request, "output"),
            worker_id=request.query_params.get("workerid") or None,
        )
        return id_response(request, task.id)


class TaskView(EngineAPIView):
    permission_model = Task

    @extend_schema(operation_id="getTask", responses={200: TaskSerializer, **ERRORS})
    def get(self, request, task_id: str):
        task = Task.objects.select_related("workflow").filter(pk=task_id).first()
        if task is None:
            raise exceptions.NotFound(f"No task with id {task_id!r}.")
        return Response(task.to_conductor())


POLL_PARAMETERS = [
    OpenApiParameter("workerid", OpenApiTypes.STR),
    OpenApiParameter("domain", OpenApiTypes.STR),
]


class PollView(EngineAPIView):
    permission_model = Task
    permission_classes = [ChangePermission]

    @extend_schema(
        operation_id="poll",
        parameters=POLL_PARAMETERS,
        responses={200: TaskSerializer, 204: OpenApiResponse(description="Nothing waits."), **ERRORS},
        description="Claim one scheduled task of a type for a worker.",
    )
    def get(self, request, task_type: str):
        tasks = runtime.poll_tasks(task_type, request.query_params.get("workerid"), request.query_params.get("domain"))
        if not tasks:
            return HttpResponse(status=204)
        return Response(tasks[0].to_conductor())


class BatchPollView(EngineAPIView):
    permission_model = Task
    permission_classes = [ChangePermission]

    @extend_schema(
        operation_id="batchPoll",
        parameters=[*POLL_PARAMETERS, int_parameter("count", "At most 100."),
                    int_parameter("timeout", "Accepted; Eventhub answers at once.")],
        responses={200: TaskSerializer(many=True), **ERRORS},
        description="Claim up to `count` scheduled tasks of a type (an empty list when none waits).",
    )
    def get(self, request, task_type: str):
        query_int(request, "timeout")
        count = min(query_int(request, "count") or 1, 100)
        tasks = runtime.poll_tasks(task_type, request.query_params.get("workerid"),
                                   request.query_params.get("domain"), max(count, 1))
        return Response([task.to_conductor() for task in tasks])
