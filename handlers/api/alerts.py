"""The alerts' routes, under /api/eventhub/:

- `GET alerts` (filter by state, kind, subject), `GET alerts/{id}`: alerts with their state changes and
  notification attempts;
- `POST alerts/{id}/acknowledge`, `POST alerts/{id}/silence`: with a reason (and minutes), recorded with
  who and when; they need the change permission on alerts;
- `GET/POST alert-rules`, `GET/PUT/PATCH/DELETE alert-rules/{id}`: the rules, validated by the model.
"""

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics
from rest_framework.response import Response
from rest_framework.views import APIView

from eventhub.lib.api.errors import ConductorValidationError, ErrorSerializer, NotFound, problems_of

from ..models import Alert, AlertRule
from .alert_serializers import (
    AcknowledgeSerializer,
    AlertFilter,
    AlertRuleSerializer,
    AlertSerializer,
    SilenceSerializer,
)
from .records import ERRORS, ID, MAX_ID, FilteredListView, ObjectView, RecordPagination, _given

MISSING = {404: ErrorSerializer, **ERRORS}


def alerts() -> QuerySet:
    return Alert.objects.prefetch_related("events", "notifications__event").order_by("-opened_at", "-id")


def filter_alerts(queryset: QuerySet, params: dict) -> QuerySet:
    return queryset.filter(**_given(params, {"state": "state", "kind": "kind", "subject": "subject"}))


@extend_schema_view(get=extend_schema(operation_id="listAlerts", parameters=[AlertFilter], responses={
    200: AlertSerializer(many=True), **ERRORS}))
class AlertListView(FilteredListView):
    """Alerts, newest first."""

    queryset = alerts()
    serializer_class = AlertSerializer
    filter_serializer = AlertFilter
    apply_filters = staticmethod(filter_alerts)


@extend_schema_view(get=extend_schema(operation_id="getAlert", parameters=[ID], responses={
    200: AlertSerializer, 404: ErrorSerializer, **ERRORS}))
class AlertView(ObjectView):
    queryset = alerts()
    serializer_class = AlertSerializer


class AlertChangeView(APIView):
    permission_model = Alert  # POST: the change permission
    body_serializer = AcknowledgeSerializer

    def post(self, request, id: str):
        body = self.body_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        pk = int(id)
        alert = Alert.objects.filter(pk=pk).first() if pk <= MAX_ID else None
        if alert is None:
            raise NotFound(f"No alert with id {pk}.")
        try:
            self.change(alert, request.user, body.validated_data)
        except ValidationError as exc:
            raise ConductorValidationError(problems_of(exc)) from None
        return Response(AlertSerializer(alerts().get(pk=pk)).data)


class AcknowledgeView(AlertChangeView):
    @extend_schema(operation_id="acknowledgeAlert", parameters=[ID], request=AcknowledgeSerializer,
                   responses={200: AlertSerializer, 404: ErrorSerializer, **ERRORS})
    def post(self, request, id: str):
        return super().post(request, id)

    def change(self, alert: Alert, user, data: dict) -> None:
        alert.acknowledge(user, data["reason"])


class SilenceView(AlertChangeView):
    body_serializer = SilenceSerializer

    @extend_schema(operation_id="silenceAlert", parameters=[ID], request=SilenceSerializer,
                   responses={200: AlertSerializer, 404: ErrorSerializer, **ERRORS})
    def post(self, request, id: str):
        return super().post(request, id)

    def change(self, alert: Alert, user, data: dict) -> None:
        alert.silence(user, data["reason"], data["minutes"])


@extend_schema_view(
    get=extend_schema(operation_id="listAlertRules", responses={200: AlertRuleSerializer(many=True), **ERRORS}),
    post=extend_schema(operation_id="createAlertRule", responses={201: AlertRuleSerializer, **ERRORS}),
)
class AlertRuleListView(generics.ListCreateAPIView):
    """The rules: one default of each kind, and those of single handlers or queues."""

    queryset = AlertRule.objects.select_related("handler", "queue").order_by("kind", "id")
    serializer_class = AlertRuleSerializer
    pagination_class = RecordPagination


@extend_schema_view(
    get=extend_schema(operation_id="getAlertRule", parameters=[ID], responses={200: AlertRuleSerializer, **MISSING}),
    put=extend_schema(operation_id="updateAlertRule", parameters=[ID], responses={200: AlertRuleSerializer,
                                                                                  **MISSING}),
    patch=extend_schema(operation_id="patchAlertRule", parameters=[ID], responses={200: AlertRuleSerializer,
                                                                                   **MISSING}),
    delete=extend_schema(operation_id="deleteAlertRule", parameters=[ID], responses={204: None, **MISSING}),
)
class AlertRuleView(ObjectView, generics.RetrieveUpdateDestroyAPIView):
    queryset = AlertRule.objects.select_related("handler", "queue")
    serializer_class = AlertRuleSerializer
