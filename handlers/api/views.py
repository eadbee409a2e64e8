"""Conductor's event handler API (`/api/event`) and the API key exchange (`/api/token`)."""

from django.db import IntegrityError, transaction
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from eventhub.lib.api.auth import exchange_key, issue_token
from eventhub.lib.api.errors import ConductorValidationError, Conflict, ErrorSerializer, NotFound
from eventhub.lib.api.params import query_bool

from ..changes import delete_handler, save_handler
from ..lint import HEADER, HEADER_MAX, header_value, lint
from ..models import EventHandler
from .serializers import EventHandlerSerializer, TokenRequestSerializer, TokenSerializer

ERRORS = {code: ErrorSerializer for code in (400, 401, 403)}


def empty_ok() -> HttpResponse:
    # Conductor answers writes with 200 and no body; its clients expect exactly that.
    return HttpResponse(status=200)


def saved_ok(handler: EventHandler) -> HttpResponse:
    """Conductor's empty 200, with the handler's lint warnings (paths never seen on its event) in a header of
    ours: JSON, ASCII, one line (`handlers.lint.header_value`); absent when there are none."""
    response = empty_ok()
    warnings = lint(handler).warnings
    if warnings:
        response[HEADER] = header_value(warnings)
    return response


WARNINGS_HEADER = OpenApiParameter(
    HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, response=[200],
    description="Paths the handler reads that no message sampled on its event had, as a JSON array of messages "
    f"(ASCII, one line, at most {HEADER_MAX} characters, the last saying how many more there are when they do "
    "not all fit: a dry-run lists them all; absent when there are none).",
)


class EventHandlersView(APIView):
    permission_model = EventHandler

    @extend_schema(operation_id="getEventHandlers", responses={200: EventHandlerSerializer(many=True), **ERRORS})
    def get(self, request):
        return Response([h.to_conductor() for h in EventHandler.objects.order_by("name")])

    @extend_schema(
        operation_id="addEventHandler",
        request=EventHandlerSerializer,
        responses={200: None, 409: ErrorSerializer, **ERRORS},
        parameters=[WARNINGS_HEADER],
    )
    def post(self, request):
        handler = EventHandlerSerializer().to_internal_value(request.data)
        if EventHandler.objects.filter(name=handler.name).exists():
            raise Conflict(f"Event handler with name {handler.name} already exists!")
        try:
            with transaction.atomic():
                save_handler(handler, user=request.user, source="api")
        except IntegrityError:
            raise Conflict(f"Event handler with name {handler.name} already exists!") from None
        return saved_ok(handler)

    @extend_schema(
        operation_id="updateEventHandler",
        request=EventHandlerSerializer,
        responses={200: None, 404: ErrorSerializer, **ERRORS},
        parameters=[WARNINGS_HEADER],
    )
    def put(self, request):
        name = request.data.get("name") if isinstance(request.data, dict) else None
        existing = EventHandler.objects.filter(name=name).first() if isinstance(name, str) else None
        handler = EventHandlerSerializer(existing).to_internal_value(request.data)
        if existing is None:
            raise NotFound(f"EventHandler with name {handler.name} not found!")
        save_handler(handler, user=request.user, source="api")
        return saved_ok(handler)


class EventHandlerView(APIView):
    """`GET /api/event/{event}` lists the handlers of an event; `DELETE /api/event/{name}` removes one."""

    permission_model = EventHandler

    @extend_schema(
        operation_id="getEventHandlersForEvent",
        parameters=[
            OpenApiParameter("key", OpenApiTypes.STR, OpenApiParameter.PATH, description="The event, e.g. sqs:orders"),
            OpenApiParameter("activeOnly", OpenApiTypes.BOOL, description="Default true."),
        ],
        responses={200: EventHandlerSerializer(many=True), **ERRORS},
    )
    def get(self, request, key: str):
        handlers = EventHandler.objects.filter(event=key).order_by("name")
        if query_bool(request, "activeOnly", default=True):
            handlers = handlers.filter(active=True)
        return Response([h.to_conductor() for h in handlers])

    @extend_schema(
        operation_id="removeEventHandlerStatus",
        parameters=[OpenApiParameter("key", OpenApiTypes.STR, OpenApiParameter.PATH, description="Handler name")],
        responses={200: None, 404: ErrorSerializer, **ERRORS},
    )
    def delete(self, request, key: str):
        handler = EventHandler.objects.filter(name=key).first()
        if handler is None:
            raise NotFound(f"EventHandler with name {key} not found!")
        delete_handler(handler, user=request.user, source="api")
        return empty_ok()


class TokenView(APIView):
    """Exchange an API key id and secret for a token to send in `X-Authorization`."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request) -> str:
        return 'Token realm="api"'  # so that wrong credentials answer 401, as the SDKs expect

    @extend_schema(
        operation_id="generateToken",
        request=TokenRequestSerializer,
        responses={200: TokenSerializer, 400: ErrorSerializer, 401: ErrorSerializer, 429: ErrorSerializer},
        parameters=[OpenApiParameter(
            "Retry-After", OpenApiTypes.INT, OpenApiParameter.HEADER, response=[429],
            description="Seconds until this client's address may exchange keys again (after too many failures).",
        )],
        auth=[],
    )
    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        missing = [(name, "is required") for name in ("keyId", "keySecret") if not data.get(name)]
        if missing:
            raise ConductorValidationError(missing)
        return Response({"token": issue_token(exchange_key(request, data["keyId"], data["keySecret"]))})
