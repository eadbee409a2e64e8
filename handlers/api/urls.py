from django.urls import re_path

from . import views

# Every route matches with and without a trailing slash: nothing redirects (see APPEND_SLASH).
# The event in /event/{event} may hold slashes (an SQS URL), so the key takes the rest of the path.
urlpatterns = [
    re_path(r"^event/?$", views.EventHandlersView.as_view(), name="event-handlers"),
    re_path(r"^event/(?P<key>[\s\S]+?)/?$", views.EventHandlerView.as_view(), name="event-handler"),
    re_path(r"^token/?$", views.TokenView.as_view(), name="api-token"),
]
