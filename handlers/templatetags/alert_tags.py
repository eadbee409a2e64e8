"""`{% open_alerts %}`: the count of open alerts (not yet acknowledged, silenced or resolved), for the admin header."""

from django import template

from ..models import Alert

register = template.Library()


@register.inclusion_tag("admin/handlers/alert/header_count.html", takes_context=True)
def open_alerts(context) -> dict:
    user = getattr(context.get("request"), "user", None)
    if user is None or not user.has_perm("handlers.view_alert"):
        return {"count": 0}
    count = context.get("open_alerts")  # (the overview counted them already)
    if not isinstance(count, int):
        count = Alert.objects.filter(state=Alert.State.OPEN).count()
    return {"count": count}
