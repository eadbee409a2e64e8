from django.urls import re_path

from .api import views

# Every route matches with and without a trailing slash: nothing redirects (see APPEND_SLASH).
# Specific routes come before the ones whose segments would also match them.
urlpatterns = [
    re_path(r"^metadata/workflow/?$", views.WorkflowDefinitionsView.as_view(), name="workflow-definitions"),
    re_path(r"^metadata/workflow/(?P<name>[^/]+)/?$", views.WorkflowDefinitionView.as_view(),
            name="workflow-definition"),
    re_path(r"^workflow/?$", views.StartWorkflowView.as_view(), name="workflow-start"),
    re_path(r"^workflow/(?P<name>[^/]+)/correlated/(?P<correlation_id>[^/]+)/?$",
            views.CorrelatedWorkflowsView.as_view(), name="workflow-correlated"),
    re_path(r"^workflow/(?P<workflow_id>[^/]+)/variables/?$", views.WorkflowVariablesView.as_view(),
            name="workflow-variables"),
    re_path(r"^workflow/(?P<key>[^/]+)/?$", views.WorkflowView.as_view(), name="workflow"),
    re_path(r"^tasks/?$", views.TaskResultView.as_view(), name="task-result"),
    re_path(r"^tasks/poll/batch/(?P<task_type>[^/]+)/?$", views.BatchPollView.as_view(), name="task-batch-poll"),
    re_path(r"^tasks/poll/(?P<task_type>[^/]+)/?$", views.PollView.as_view(), name="task-poll"),
    re_path(r"^tasks/(?P<workflow_id>[^/]+)/(?P<task_ref_name>[^/]+)/(?P<status>[^/]+)/?$",
            views.TaskByReferenceView.as_view(), name="task-by-reference"),
    re_path(r"^tasks/(?P<task_id>[^/]+)/?$", views.TaskView.as_view(), name="task"),
]
