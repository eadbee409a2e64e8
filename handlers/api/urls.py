from django.urls import re_path

from . import alerts, backtests, records, views

# Every route matches with and without a trailing slash: nothing redirects (see APPEND_SLASH).
# The event in /event/{event} may hold slashes (an SQS URL), so the key takes the rest of the path.
urlpatterns = [
    re_path(r"^event/?$", views.EventHandlersView.as_view(), name="event-handlers"),
    re_path(r"^event/(?P<key>[\s\S]+?)/?$", views.EventHandlerView.as_view(), name="event-handler"),
    re_path(r"^token/?$", views.TokenView.as_view(), name="api-token"),
    # Eventhub's own (ours): records, replay, dry-run, backtests and alerts, under a prefix Conductor does not use.
    re_path(r"^eventhub/executions/?$", records.ExecutionListView.as_view(), name="eventhub-executions"),
    re_path(r"^eventhub/executions/(?P<id>[0-9]+)/?$", records.ExecutionView.as_view(), name="eventhub-execution"),
    re_path(r"^eventhub/messages/?$", records.MessageListView.as_view(), name="eventhub-messages"),
    re_path(r"^eventhub/messages/(?P<id>[0-9]+)/?$", records.MessageView.as_view(), name="eventhub-message"),
    re_path(r"^eventhub/messages/(?P<id>[0-9]+)/replay/?$", records.ReplayView.as_view(), name="eventhub-replay"),
    re_path(r"^eventhub/handlers/dry-run/?$", records.DryRunView.as_view(), name="eventhub-dry-run"),
    re_path(r"^eventhub/handlers/backtest/?$", backtests.BacktestView.as_view(), name="eventhub-backtest"),
    re_path(r"^eventhub/backtests/(?P<id>[0-9]+)/?$", backtests.BacktestResultView.as_view(),
            name="eventhub-backtest-result"),
    re_path(r"^eventhub/alerts/?$", alerts.AlertListView.as_view(), name="eventhub-alerts"),
    re_path(r"^eventhub/alerts/(?P<id>[0-9]+)/?$", alerts.AlertView.as_view(), name="eventhub-alert"),
    re_path(r"^eventhub/alerts/(?P<id>[0-9]+)/acknowledge/?$", alerts.AcknowledgeView.as_view(),
            name="eventhub-alert-acknowledge"),
    re_path(r"^eventhub/alerts/(?P<id>[0-9]+)/silence/?$", alerts.SilenceView.as_view(), name="eventhub-alert-silence"),
    re_path(r"^eventhub/alert-rules/?$", alerts.AlertRuleListView.as_view(), name="eventhub-alert-rules"),
    re_path(r"^eventhub/alert-rules/(?P<id>[0-9]+)/?$", alerts.AlertRuleView.as_view(), name="eventhub-alert-rule"),
]
