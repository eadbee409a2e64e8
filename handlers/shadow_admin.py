"""Shadow twins in the admin: *Shadow copy* on a live handler's page, and on a twin's page the comparison with its
original and *Promote* (a confirmation page showing what the original becomes). The work is `handlers.shadow`'s."""

import copy
import logging

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from .display import diff_block
from .forms import pretty_json
from .models import EventHandler
from .shadow import (
    DEFINITION,
    StalePromote,
    compare,
    original_changed,
    original_of,
    promote,
    shadow_copy,
    stamp,
    take_definition,
)

logger = logging.getLogger(__name__)


def _handler(model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str) -> EventHandler:
    handler = model_admin.get_object(request, unquote(object_id))
    if handler is None:
        raise Http404("No such event handler.")
    return handler


def _change_url(handler: EventHandler) -> str:
    return reverse("admin:handlers_eventhandler_change", args=[handler.pk])


def can_promote(model_admin: admin.ModelAdmin, request: HttpRequest, twin: EventHandler) -> bool:
    """What the promote view requires, so that no page offers Promote to who would get a 403: a twin whose original
    exists, *change* on the original and *delete* on the twin."""
    source = original_of(twin) if twin.is_twin else None
    return source is not None and model_admin.has_change_permission(request, source) \
        and model_admin.has_delete_permission(request, twin)


def shadow_copy_view(model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """POST: make the handler's shadow twin and open it."""
    original = _handler(model_admin, request, object_id)
    if not (model_admin.has_add_permission(request) and model_admin.has_change_permission(request, original)):
        raise PermissionDenied
    if request.method != "POST":
        return redirect(_change_url(original))
    try:
        twin = shadow_copy(original, user=request.user)
    except ValidationError as exc:
        return _refused(model_admin, request, "No shadow copy made", exc, original)
    logger.info("%s made the shadow twin %s of %s", request.user, twin.name, original.name)
    model_admin.message_user(request, f"Made “{twin.name}”, a shadow twin of “{original.name}”: it records what it "
                             "would do with every message and runs nothing. Edit it, compare it, then promote it.",
                             messages.SUCCESS)
    return redirect(_change_url(twin))


def _refused(model_admin: admin.ModelAdmin, request: HttpRequest, what: str, exc: ValidationError,
             back_to: EventHandler) -> HttpResponse:
    """Each reason a change was refused, as an error message, then back to the handler's page."""
    for line in exc.messages:
        model_admin.message_user(request, f"{what}: {line}", messages.ERROR)
    return redirect(_change_url(back_to))


def compare_view(model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    twin = _handler(model_admin, request, object_id)
    if not model_admin.has_view_permission(request, twin):
        raise PermissionDenied
    if not twin.is_twin:
        raise Http404("This handler is not a shadow twin: it has nothing to compare with.")
    comparison = compare(twin)
    context = {
        **model_admin.admin_site.each_context(request), "opts": model_admin.model._meta, "original": twin,
        "title": f"{twin.name} against {comparison.original_name}", "comparison": comparison,
        "source": original_of(twin), "changed": original_changed(twin),
        "can_promote": can_promote(model_admin, request, twin),
        "rows": [(d, pretty_json(d.twin.inputs_shown), pretty_json(d.original.inputs_shown))
                 for d in comparison.differences],
    }
    return TemplateResponse(request, "admin/handlers/eventhandler/shadow_compare.html", context)


def promote_view(model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """GET: what the original becomes; POST: promote."""
    twin = _handler(model_admin, request, object_id)
    source = original_of(twin) if twin.is_twin else None
    if source is None:
        raise Http404("This handler is not the shadow twin of a handler that exists: there is nothing to promote.")
    if not can_promote(model_admin, request, twin):
        raise PermissionDenied
    if request.method == "POST":
        # (what the confirmed page showed; a POST without it confirmed nothing, and gets the page)
        seen = (request.POST.get("twin_revision", ""), request.POST.get("original_revision", ""))
        try:
            revision = promote(twin, user=request.user, seen=seen)
        except StalePromote as exc:
            model_admin.message_user(request, f"Not promoted: {exc.message}", messages.ERROR)
            return redirect(request.path)  # the page again, as they are now
        except ValidationError as exc:
            return _refused(model_admin, request, "Not promoted", exc, twin)
        logger.info("%s promoted the shadow twin %s into %s", request.user, twin.name, source.name)
        model_admin.message_user(request, f"Promoted “{twin.name}” into “{source.name}”: saved as its revision "
                                 f"{revision.number}; the twin was deleted (its records stay).", messages.SUCCESS)
        return redirect(_change_url(source))
    return _promote_page(model_admin, request, twin, source)


def _promote_page(model_admin: admin.ModelAdmin, request: HttpRequest, twin: EventHandler,
                  source: EventHandler) -> HttpResponse:
    """What the original becomes; its form carries the revisions shown, so that a save meanwhile refuses it."""
    after = take_definition(copy.copy(source), twin).to_conductor()
    context = {
        **model_admin.admin_site.each_context(request), "opts": model_admin.model._meta, "original": twin,
        "title": f"Promote {twin.name} into {source.name}?", "source": source, "changed": original_changed(twin),
        "diff": diff_block(source.to_conductor(), after, f"{source.name} now (revision {source.revision})",
                           f"{source.name} promoted (from {twin.name} revision {twin.revision})"),
        "carried": ", ".join(DEFINITION), "twin_revision": stamp(twin), "original_revision": stamp(source),
    }
    return TemplateResponse(request, "admin/handlers/eventhandler/shadow_promote.html", context)
