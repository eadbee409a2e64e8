"""Times and durations in Eventhub's admin templates (`eventhub.lib.display` says how they look)."""

from datetime import datetime, timedelta

from django import template
from django.template.defaultfilters import date
from django.utils import timezone

from eventhub.lib import display

register = template.Library()
register.filter("ago", display.ago)
register.filter("clock", display.clock)


@register.filter
def age(delta: timedelta | None) -> str:
    return "—" if delta is None else display.short_duration(delta)


@register.filter
def ms(delta: timedelta | None) -> str:
    """A receipt-to-record time: 4.2 ms, 12 ms, 1.4 s."""
    if delta is None:
        return "—"
    millis = delta.total_seconds() * 1000
    if millis < 10:
        return f"{millis:.1f} ms"
    if millis < 1000:
        return f"{millis:.0f} ms"
    return f"{millis / 1000:.1f} s" if millis < 60_000 else display.short_duration(delta)


@register.filter
def axis(moment: datetime, span: str) -> str:
    """A chart's ends: 14:02 over an hour, 3 Dec 14:00 over a day or a week."""
    return date(timezone.localtime(moment), "H:i" if span == "hour" else "j M H:i")
