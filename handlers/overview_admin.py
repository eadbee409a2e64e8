"""The overview page of the admin (its numbers are `handlers.overview`'s, its alerts `handlers.alerts`')."""

from django.conf import settings
from django.http import HttpRequest
from django.template.response import TemplateResponse

from . import alerts, overview
from .models import Alert


def overview_view(site, request: HttpRequest) -> TemplateResponse:
    span = overview.SPANS.get(request.GET.get("range", ""), overview.SPANS["hour"])
    data = overview.build(span)
    shown, unresolved = alerts.unresolved_alerts() if request.user.has_perm("handlers.view_alert") else (None, 0)
    open_alerts = sum(alert.state == alert.State.OPEN for alert in shown or ())
    if shown and open_alerts == len(shown) < unresolved:  # open ones come first: more may lie beyond those shown
        open_alerts = Alert.objects.filter(state=Alert.State.OPEN).count()
    context = {
        **site.each_context(request),
        "title": "Operations overview",
        "overview": data,
        "spans": overview.SPANS.values(),
        "app_list": site.get_app_list(request),
        "retention_days": settings.RECORDS_RETENTION_DAYS,
        "alerts": shown,  # None: this user may not see alerts, and the page has no section for them
        "unresolved_alerts": unresolved,
        "open_alerts": open_alerts,  # the verdict is not "all flowing" while one is open
        "may_change_alerts": request.user.has_perm("handlers.change_alert"),
    }
    return TemplateResponse(request, "admin/overview.html", context)
