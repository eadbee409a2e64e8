"""Backtests over the API (ours), under /api/eventhub/ with the other records:

- `POST handlers/backtest`: a saved handler (`name`) or a draft (`handler`), and which stored messages
  (`from`, `to`, `limit`, `outcomes`). Up to BACKTEST_INLINE_MAX messages the answer is the finished
  backtest (200); beyond, 202 with its `id`, run as a django-q2 task;
- `GET backtests/{id}`: its progress and result, in the same keys as the 200.

Like a dry-run, a backtest writes nothing but its own record: the view permission on handlers suffices.
"""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from eventhub.lib.api.errors import ErrorSerializer

from ..backtests import Criteria, describe, start
from ..conditions import IsolatesBusy
from ..models import Backtest, EventHandler
from .record_serializers import BacktestRequestSerializer, BacktestSerializer
from .records import ERRORS, ID, ConditionsBusy, DryRunPermission, ObjectView, _saved_handler, _unsaved_handler


class BacktestView(APIView):
    permission_classes = [DryRunPermission]

    @extend_schema(operation_id="backtestEventHandler", request=BacktestRequestSerializer,
                   responses={200: BacktestSerializer, 202: BacktestSerializer, 404: ErrorSerializer,
                              503: ErrorSerializer, **ERRORS})
    def post(self, request):
        body = BacktestRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if "name" in data:
            handler, compared = _saved_handler(data["name"]), None
        else:
            handler = _unsaved_handler(data["handler"])
            compared = EventHandler.objects.filter(name=handler.name).first()
        criteria = Criteria.of(handler.event, start=data.get("from"), end=data.get("to"), limit=data.get("limit"),
                               outcomes=data.get("outcomes", ()))
        try:
            backtest, queued = start(handler, criteria, draft="handler" in data, compared=compared, user=request.user)
        except IsolatesBusy as exc:
            raise ConditionsBusy(f"{exc}; try again shortly") from None
        return Response(describe(backtest), status=status.HTTP_202_ACCEPTED if queued else status.HTTP_200_OK)


@extend_schema_view(get=extend_schema(operation_id="getBacktest", parameters=[ID], responses={
    200: BacktestSerializer, 404: ErrorSerializer, **ERRORS}))
class BacktestResultView(ObjectView):
    permission_classes = [DryRunPermission]
    queryset = Backtest.objects.all()

    def retrieve(self, request, *args, **kwargs):
        return Response(describe(self.get_object()))
