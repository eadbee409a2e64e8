"""How the admin shows times, durations, ids and long text: short enough for a list at a 1366 px laptop
width, on one line, and the whole value on hover (a `title`). Times are shown in the current time zone
(UTC unless TIME_ZONE says otherwise) and named on hover."""

from datetime import datetime, timedelta

from django.template.defaultfilters import date
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString


def short_duration(delta: timedelta) -> str:
    """5 s, 12 min, 3 h 5 min, 2 d 4 h: two units at most."""
    seconds = int(max(delta.total_seconds(), 0))
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if minutes < 60:
        return f"{minutes} min"
    if hours < 24:
        rest = minutes % 60
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    rest = hours % 24
    return f"{days} d {rest} h" if rest else f"{days} d"


def _time(moment: datetime, text: str) -> SafeString:
    return format_html('<time datetime="{}" title="{}">{}</time>', moment.isoformat(),
                       date(moment, "Y-m-d H:i:s T"), text)


def clock(moment: datetime | None) -> SafeString | str:
    """A time in a list: 14:02:07 today, 3 Dec 14:02 before, 3 Dec 2025 14:02 in another year."""
    if moment is None:
        return "—"
    now = timezone.localtime()
    local = timezone.localtime(moment)
    if local.date() == now.date():
        return _time(moment, date(local, "H:i:s"))
    return _time(moment, date(local, "j M H:i" if local.year == now.year else "j M Y H:i"))


def ago(moment: datetime | None, now: datetime | None = None) -> SafeString | str:
    """12 min ago."""
    if moment is None:
        return "never"
    delta = (now or timezone.now()) - moment
    return _time(moment, "just now" if delta < timedelta(seconds=1) else f"{short_duration(delta)} ago")


def short_id(value: str, *, keep: int = 24) -> SafeString | str:
    """An id on one line: a long one (a UUID, an SQS id) as its start and end."""
    if not value:
        return "—"
    shown = value if len(value) <= keep else f"{value[:8]}…{value[-6:]}"
    return format_html('<span class="eh-id" title="{}">{}</span>', value, shown)


def clipped(text: str, width: str = "26em") -> SafeString | str:
    """Long text on one line, cut with an ellipsis."""
    if not text:
        return "—"
    return format_html('<span class="eh-clip" style="max-width: {}" title="{}">{}</span>', width, text, text)


def event_label(event: str) -> SafeString:
    """A queue's event string on one line (an SQS URL is long), cut with an ellipsis."""
    return format_html('<span class="eh-event" title="{}">{}</span>', event, event)
