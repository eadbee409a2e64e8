"""One shape for every API error, Conductor's:

`{"status": 400, "message": "...", "instance": "<host>", "retryable": false, "validationErrors": [...]}`.
Unexpected errors are logged with their traceback and answered with a reference, never the traceback.
"""

import logging
import uuid

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views.defaults import page_not_found, server_error
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)

VALIDATION_FAILED = "Validation failed, check below errors for detail."


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The resource already exists."


class NotFound(exceptions.NotFound):
    pass


class ConductorValidationError(exceptions.APIException):
    """A 400 carrying `(path, message)` problems, as Conductor lists them in `validationErrors`."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__(VALIDATION_FAILED)
        self.problems = problems


def problems_of(error: DjangoValidationError, conductor_names: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """Flatten a model ValidationError into `(path, message)` pairs, keeping the paths errors carry."""
    names = conductor_names or {}
    if not hasattr(error, "error_dict"):
        return [("$", message) for message in error.messages]
    problems = []
    for field, errors in error.error_dict.items():
        for item in errors:
            params = item.params or {}
            if "path" in params:
                problems.append((params["path"], params["detail"]))
            else:
                path = "$" if field == "__all__" else names.get(field, field)
                problems.append((path, next(iter(item))))
    return problems


def _drf_problems(detail, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            path = key if not prefix else f"{prefix}.{key}"
            out.extend(_drf_problems(value, "$" if key == "non_field_errors" and not prefix else path))
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return [(prefix or "$", str(item)) for item in detail]
        out = []
        for index, item in enumerate(detail):
            out.extend(_drf_problems(item, f"{prefix}[{index}]"))
        return out
    return [(prefix or "$", str(detail))]


def _instance(request) -> str:
    if request is None:
        return ""
    return request.META.get("HTTP_HOST") or request.META.get("SERVER_NAME", "")


def error_body(request, status_code: int, message: str, *, retryable: bool = False, **extra) -> dict:
    body = {"status": status_code, "message": message, "instance": _instance(request), "retryable": retryable}
    body.update({key: value for key, value in extra.items() if value is not None})
    return body


# The body above, described for the OpenAPI schema (each view lists it under its error codes).
class ErrorSerializer(serializers.Serializer):
    """Conductor's error body."""

    status = serializers.IntegerField()
    message = serializers.CharField()
    instance = serializers.CharField(required=False)
    retryable = serializers.BooleanField()
    error = serializers.CharField(required=False, help_text="EXPIRED_TOKEN or INVALID_TOKEN on a 401.")
    validationErrors = serializers.ListField(child=serializers.DictField(), required=False)


def conductor_exception_handler(exc, context):
    request = context.get("request")
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):
        exc = ConductorValidationError(problems_of(exc))
    if not isinstance(exc, exceptions.APIException):
        return server_error_response(request, exc)
    headers = {}
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    if isinstance(exc, ConductorValidationError):
        problems = exc.problems
        message = VALIDATION_FAILED
    elif isinstance(exc, exceptions.ValidationError):
        problems = _drf_problems(exc.detail)
        message = VALIDATION_FAILED
    else:
        problems = None
        message = str(exc.detail)
    body = error_body(
        request,
        exc.status_code,
        message,
        # An error may know better than its status code (a task not scheduled *yet* is a 404 worth retrying).
        retryable=getattr(exc, "retryable", exc.status_code in (429, 503)),
        validationErrors=[{"path": path, "message": msg} for path, msg in problems] if problems else None,
        error=getattr(exc, "error_code", None),
    )
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    return Response(body, status=exc.status_code, headers=headers)


def server_error_response(request, exc) -> Response:
    reference = uuid.uuid4().hex
    logger.error("Unhandled API error (reference %s)", reference, exc_info=exc)
    body = error_body(request, 500, f"Internal error; reference {reference} in the server log.", retryable=True)
    return Response(body, status=500)


def is_api(request) -> bool:
    return request.path.startswith("/api/")


def api_not_found(request, exception=None):
    if is_api(request):
        return JsonResponse(error_body(request, 404, f"No route for {request.path}."), status=404)
    return page_not_found(request, exception)


def api_server_error(request):
    if is_api(request):
        body = error_body(request, 500, "Internal error; see the server log.", retryable=True)
        return JsonResponse(body, status=500)
    return server_error(request)
