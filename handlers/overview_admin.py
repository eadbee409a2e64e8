"""The overview page of the admin (its data is `handlers.overview`'s)."""

from django.conf import settings
from django.http import HttpRequest
from django.template.response import TemplateResponse

from . import overview


def overview_view(site, request: HttpRequest) -> TemplateResponse:
    span = overview.SPANS.get(request.GET.get("range", ""), overview.SPANS["hour"])
    data = overview.build(span)
    context = {
        **site.each_context(request),
        "title": "Operations overview",
        "overview": data,
        "spans": overview.SPANS.values(),
        "app_list": site.get_app_list(request),
        "retention_days": settings.RECORDS_RETENTION_DAYS,
    }
    return TemplateResponse(request, "admin/overview.html", context)
