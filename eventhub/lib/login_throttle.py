"""Failed sign-ins throttled per client address, with django-axes keeping the count in the database
(so every web process sees the same count, and tests roll it back).

Two doors are counted. The admin login goes through Django's `authenticate()`, where axes's backend
refuses a locked-out client and axes's `user_login_failed` receiver records each failure. The API key
exchange is not a user's login, so `eventhub.lib.api.auth` asks the same handler directly through the
functions below; its "username" is the key id, prefixed so that it never counts as an admin username.

Axes locks a client out by the groups its settings name: here the address alone, and the address with
the username or key id. Never the username alone: then anyone could lock an account's owner out.
A locked-out attempt is refused before its secret is checked and is not counted, so it does not push
the end of the lock further out and `Retry-After` is a promise.

A success forgives that client's failures on that account only. Axes's own reset on success deletes
every failure the address had, which would let a client holding one valid key or password guess at
other accounts without end, a success in between every few guesses.
"""

import ipaddress
import math

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off, get_failure_limit
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.signals import user_login_failed
from django.db.models import Max, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

API_KEY_PREFIX = "apikey:"
USERNAME_MAX_LENGTH = 255  # axes's column


def client_address(request: HttpRequest) -> str | None:
    """The address failures are counted against (axes's AXES_CLIENT_IP_CALLABLE).

    The peer, unless it is one of TRUSTED_PROXIES: then X-Forwarded-For is read from the right, since
    each proxy appends the address it got the request from, and the first address that is not a trusted
    proxy is the client. Entries left of it were written by the client and are never believed.
    (django-ipware, which axes uses when it is installed, picks an entry by its place in the header and
    never looks at the peer, so a client connecting directly could name any address.)
    """
    address = _address(request.META.get("REMOTE_ADDR", ""))
    hops = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    while address is not None and _is_trusted_proxy(address) and hops:
        forwarded = _address(hops.pop())
        if forwarded is None:
            break  # a trusted proxy forwarded no address: count against that proxy rather than guess
        address = forwarded
    return None if address is None else str(address)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d; count it as the IPv4 address.
    return getattr(address, "ipv4_mapped", None) or address


def _is_trusted_proxy(address) -> bool:
    return any(address in network for network in settings.TRUSTED_PROXIES)


def key_exchange_credentials(key_id) -> dict:
    """What a key exchange is counted under: the key id as the username, prefixed, cut to the column."""
    key_id = key_id if isinstance(key_id, str) else ""
    return {"username": (API_KEY_PREFIX + key_id)[:USERNAME_MAX_LENGTH]}


def is_locked_out(request, credentials: dict) -> bool:
    return not AxesProxyHandler.is_allowed(request, credentials)


def record_failure(request, credentials: dict) -> bool:
    """Count a failed sign-in as a failed `authenticate()` is counted; True if it reached the limit."""
    user_login_failed.send(sender=__name__, credentials=credentials, request=request)
    return bool(getattr(request, "axes_locked_out", False))  # (unset while AXES_ENABLED is off)


def forgive(request, username: str) -> None:
    """Clear this client's failures on this account, and no other's."""
    address = client_address(request)
    # (axes's reset drops a filter given no value: without both, it would clear far more than this pair.)
    if address and username:
        AxesProxyHandler.reset_attempts(ip_address=address, username=username)


def forgive_login(sender, request, user, **kwargs) -> None:
    """`user_logged_in` receiver: a user who logs in is forgiven their own failures from that address."""
    if request is not None:
        forgive(request, user.get_username())


def seconds_until_unlocked(request, credentials: dict) -> int:
    """When the lock lifts: the cool-off after the latest failure of each group over the limit.

    (Axes keeps one row per username and user agent, stamped with its latest failure, so a group of
    several rows may reopen earlier as its older rows age out; this is the latest it can be, which is
    what Retry-After must not undercut. `get_user_attempts` is the database handler's, axes's default.)
    """
    limit, cool_off = get_failure_limit(request, credentials), get_cool_off(request)
    ends = []
    for attempts in AxesProxyHandler.get_implementation().get_user_attempts(request, credentials):
        group = attempts.aggregate(failures=Sum("failures_since_start"), latest=Max("attempt_time"))
        if (group["failures"] or 0) >= limit:
            ends.append(group["latest"] + cool_off)
    remaining = (max(ends, default=timezone.now()) - timezone.now()).total_seconds()
    return max(1, math.ceil(remaining))


def lockout_message(seconds: int, what: str = "sign-ins") -> str:
    return f"Too many failed {what} from your address; try again in {seconds} seconds."


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """The admin login's answer while its client is locked out (axes's AXES_LOCKOUT_CALLABLE)."""
    seconds = seconds_until_unlocked(request, credentials or {})
    context = {**admin.site.each_context(request), "title": "Locked out", "message": lockout_message(seconds)}
    response = render(request, "admin/locked_out.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response
