from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from eventhub.lib.api.errors import api_not_found, api_server_error
from eventhub.observability import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    re_path(r"^api/schema/?$", SpectacularAPIView.as_view(), name="api-schema"),
    re_path(r"^api/docs/?$", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("handlers.api.urls")),
    path("api/", include("workflows.api_urls")),
    path("api/", include("queues.api_urls")),
    path("", include("handlers.urls")),
]

handler404 = api_not_found
handler500 = api_server_error
