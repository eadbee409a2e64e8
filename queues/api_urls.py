from django.urls import re_path

from .api import PublishView

# Eventhub's own routes live under /api/eventhub/, apart from Conductor's; no redirect on a trailing slash.
urlpatterns = [
    re_path(r"^eventhub/queues/publish/?$", PublishView.as_view(), name="queues-publish"),
]
