"""The ops console for event handlers, their revisions and API keys.

Every write to a handler goes through `handlers.changes`, so each one is kept as a revision; the
forms only present the model's own validation.
"""

import json
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from eventhub.lib.display import clock, event_label, short_id
from eventhub.lib.forms import form_json
from queues.admin import AuditAdmin, QueueEventFilter, ReadOnlyAdmin, WindowFilter
from queues.kinds import KINDS

from . import alert_admin  # noqa: F401 - registers the alerts' admin
from .backtest_admin import backtest_view
from .changes import delete_handler, restore_revision, save_handler
from .conditions import IsolatesBusy
from .display import CODE_STYLE, diff_block, json_block, plural
from .dryrun import DRY_RUN_MESSAGE_ID, dry_run, recent_messages, stored_message
from .forms import EventHandlerForm, HandlerImportForm, error_lines, pretty_json
from .lint import NOT_LINTED, lint, lint_each
from .message_admin import workflow_link
from .models import HANDLER_LEVEL, ActionExecution, ApiKey, EventHandler, EventShape, HandlerRevision
from .overview import executions_of_decision
from .shadow import original_changed, original_of
from .shadow_admin import can_promote, compare_view, promote_view, shadow_copy_view

logger = logging.getLogger(__name__)

HISTORY_ROWS = 10
SAVE_WARNINGS = 10  # lint warnings shown after a save, then a count
def admin_url(obj, view: str = "change") -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=[obj.pk])


# Event handlers --------------------------------------------------------------------------------


class KindFilter(admin.SimpleListFilter):
    title = "queue kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [(kind.name, f"{kind.label} ({kind.name})") for kind in KINDS.values()]

    def queryset(self, request, queryset):
        if self.value() in KINDS:
            return queryset.filter(event__startswith=f"{self.value()}:")
        return queryset


class LintedChangeList(ChangeList):
    """The handlers of the page, each linted against its event's shape (one query for the page's shapes)."""

    def get_results(self, request) -> None:
        super().get_results(request)
        for handler, report in zip(self.result_list, lint_each(list(self.result_list)), strict=True):
            handler.lint_report = report


@admin.register(EventHandler)
class EventHandlerAdmin(admin.ModelAdmin):
    form = EventHandlerForm
    list_display = ("name_shown", "event_shown", "active", "action_kinds_display", "lint_shown", "last_change")
    list_filter = (KindFilter, "active", "mode")
    search_fields = ("name", "event")
    search_help_text = "Search by handler name or event (e.g. sqs:shipping_start)."
    date_hierarchy = "updated_at"
    readonly_fields = ("revision", "created_at", "updated_at", "history")
    actions = ["activate_selected", "deactivate_selected", "export_selected"]
    save_on_top = True

    @admin.display(description="name", ordering="name")
    def name_shown(self, obj: EventHandler) -> str:
        if not obj.is_shadow:
            return obj.name
        return format_html('{} <span class="eh-tag" title="{}">shadow</span>', obj.name,
                           "In shadow mode: it records what it would do (SHADOW executions) and runs nothing")

    @admin.display(description="actions")
    def action_kinds_display(self, obj: EventHandler) -> str:
        return ", ".join(obj.action_kinds) or "—"

    @admin.display(description="event", ordering="event")
    def event_shown(self, obj: EventHandler) -> str:
        return event_label(obj.event)

    @admin.display(description="last change", ordering="updated_at")
    def last_change(self, obj: EventHandler) -> str:
        return clock(obj.updated_at)

    @admin.display(description="actions")
    def actions_json(self, obj: EventHandler) -> SafeString:
        return json_block(obj.actions)

    @admin.display(description="history")
    def history(self, obj: EventHandler) -> SafeString:
        revisions = HandlerRevision.objects.filter(Q(handler=obj) | Q(handler_name=obj.name))
        context = {
            "revisions": revisions.order_by("-created_at", "-id")[:HISTORY_ROWS],
            "total": revisions.count(),
            "all_url": reverse("admin:handlers_handlerrevision_changelist")
            + "?" + urlencode({"handler_name": obj.name}),
        }
        return render_to_string("admin/handlers/eventhandler/history.html", context)

    def history_view(self, request, object_id, extra_context=None):
        # The revisions are the complete history (API, imports and bulk actions included); Django's own
        # log only knows about admin form saves, so the "History" button leads to the revisions.
        handler = self.get_object(request, unquote(object_id))
        if handler is None or not self.has_view_permission(request, handler):
            return super().history_view(request, object_id, extra_context)  # Its 404 / 403 answers.
        url = reverse("admin:handlers_handlerrevision_changelist") + "?" + urlencode({"handler_name": handler.name})
        return redirect(url)

    def get_fieldsets(self, request: HttpRequest, obj: EventHandler | None = None):
        editable = self.has_change_permission(request, obj) if obj else self.has_add_permission(request)
        rule_fields = ["condition", "evaluator_type", "actions" if editable else "actions_json"]
        first = ["name", "event", "active", "mode", "description"] + (["loaded_revision"] if obj and editable else [])
        fieldsets = [
            (None, {"fields": first}),
            ("Rule", {"fields": rule_fields, "description": "When a message arrives on the event's queue and the "
                      "condition holds, each action runs in order."}),
        ]
        if obj is not None:
            fieldsets.append(("Audit", {"fields": ["revision", "created_at", "updated_at", "history"]}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: EventHandler | None = None):
        return (*self.readonly_fields, "actions_json")

    # Every write is a revision --------------------------------------------------------------

    def save_model(self, request, obj, form, change) -> None:
        save_handler(obj, user=request.user, source="admin")
        report = lint(obj)
        if report.note == NOT_LINTED:
            self.message_user(request, f"Saved; {report.note}.", messages.WARNING)
        warnings = report.warnings
        for warning in warnings[:SAVE_WARNINGS]:
            self.message_user(request, warning.message, messages.WARNING)
        if len(warnings) > SAVE_WARNINGS:
            self.message_user(request, f"… and {len(warnings) - SAVE_WARNINGS} more paths never seen on {obj.event}.",
                              messages.WARNING)

    def get_changelist(self, request, **kwargs):
        return LintedChangeList

    @admin.display(description="paths")
    def lint_shown(self, obj: EventHandler) -> str:
        report = getattr(obj, "lint_report", None)
        if report is None or report.note:
            return format_html('<span class="lint-unchecked" title="{}">—</span>', report.note if report else "")
        if not report.warnings:
            return format_html('<span class="lint-ok" title="{}">seen</span>',
                               "Every path it reads was seen on its event.")
        return format_html('<span class="lint-warning" title="{}">⚠ {}</span>',
                           "\n".join(w.message for w in report.warnings),
                           plural(len(report.warnings), "unseen path"))

    def delete_model(self, request, obj) -> None:
        delete_handler(obj, user=request.user, source="admin")

    def delete_queryset(self, request, queryset) -> None:
        with transaction.atomic():
            for handler in queryset:
                delete_handler(handler, user=request.user, source="admin")

    # Bulk actions ----------------------------------------------------------------------------

    @admin.action(description="Activate selected event handlers", permissions=["change"])
    def activate_selected(self, request, queryset: QuerySet) -> None:
        self._set_active(request, queryset, True)

    @admin.action(description="Deactivate selected event handlers", permissions=["change"])
    def deactivate_selected(self, request, queryset: QuerySet) -> None:
        self._set_active(request, queryset, False)

    def _set_active(self, request, queryset: QuerySet, active: bool) -> None:
        changed = already = 0
        with transaction.atomic():
            for handler in queryset:
                if handler.active == active:
                    already += 1
                    continue
                handler.active = active
                save_handler(handler, user=request.user, source="admin")
                changed += 1
        logger.info("%s %s %d event handlers in the admin", request.user, "activated" if active else "deactivated",
                    changed)
        state = "active" if active else "inactive"
        verb = "Activated" if active else "Deactivated"
        message = f"{verb} {plural(changed, 'event handler')}"
        if already:
            message += f"; {already} {'was' if already == 1 else 'were'} already {state}"
        self.message_user(request, message + ".", messages.SUCCESS if changed else messages.INFO)

    @admin.action(description="Export selected as Conductor JSON", permissions=["view"])
    def export_selected(self, request, queryset: QuerySet) -> HttpResponse:
        body = json.dumps([h.to_conductor() for h in queryset.order_by("name")], indent=2, ensure_ascii=False)
        response = HttpResponse(body + "\n", content_type="application/json")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="eventhandlers-{stamp}.json"'
        return response

    # Import ----------------------------------------------------------------------------------

    def has_import_permission(self, request: HttpRequest) -> bool:
        return self.has_add_permission(request) and self.has_change_permission(request)

    def get_urls(self):
        import_view = self.admin_site.admin_view(self.import_view)
        dry_run = self.admin_site.admin_view(lambda request, object_id: dry_run_view(self, request, object_id))
        shadow = {name: self.admin_site.admin_view(lambda request, object_id, view=view: view(self, request, object_id))
                  for name, view in (("copy", shadow_copy_view), ("compare", compare_view), ("promote", promote_view))}
        backtest = self.admin_site.admin_view(lambda request, object_id=None: backtest_view(self, request, object_id))
        return [path("import/", import_view, name="handlers_eventhandler_import"),
                path("backtest/", backtest, name="handlers_eventhandler_backtest_new"),
                path("<path:object_id>/backtest/", backtest, name="handlers_eventhandler_backtest"),
                path("<path:object_id>/dry-run/", dry_run, name="handlers_eventhandler_dry_run"),
                path("<path:object_id>/shadow-copy/", shadow["copy"], name="handlers_eventhandler_shadow_copy"),
                path("<path:object_id>/shadow-compare/", shadow["compare"],
                     name="handlers_eventhandler_shadow_compare"),
                path("<path:object_id>/promote/", shadow["promote"], name="handlers_eventhandler_promote"),
                *super().get_urls()]

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "backtest_days": settings.BACKTEST_DEFAULT_DAYS}
        handler = self.get_object(request, unquote(object_id)) if object_id else None
        if handler is not None:
            extra_context.update(self._shadow_context(request, handler))
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _shadow_context(self, request: HttpRequest, handler: EventHandler) -> dict:
        """What the page says and offers about shadow twins: a twin's original and whether it changed since the
        copy, or a live handler's twin, or its Shadow copy button."""
        twin = EventHandler.objects.filter(shadow_of=handler).first()
        return {
            "shadow_source": original_of(handler) if handler.is_twin else None,
            "can_promote": can_promote(self, request, handler),
            "shadow_changed": original_changed(handler),
            "shadow_twin": twin,
            "can_shadow_copy": not handler.is_shadow and twin is None and self.has_add_permission(request)
            and self.has_change_permission(request, handler),
        }

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_import": self.has_import_permission(request)}
        return super().changelist_view(request, extra_context)

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_import_permission(request):
            raise PermissionDenied
        form = HandlerImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                counts = form.save(user=request.user)
            except IntegrityError:
                # Someone created one of these names between validation and writing; nothing was kept.
                form.add_error(None, "A handler of the same name was created meanwhile; nothing was imported. "
                               "Upload the file again.")
            else:
                logger.info("%s imported event handlers: %s", request.user, counts)
                self.message_user(request, "Imported event handlers: {created} created, {updated} updated, "
                                  "{unchanged} unchanged.".format(**counts), messages.SUCCESS)
                return redirect("admin:handlers_eventhandler_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import event handlers",
            "form": form,
        }
        return TemplateResponse(request, "admin/handlers/eventhandler/import.html", context)


# Observed shapes: read-only ---------------------------------------------------------------------


@admin.register(EventShape)
class EventShapeAdmin(ReadOnlyAdmin):
    """What the listeners saw on each event (`handlers.shapes`); kept by them, never edited here."""

    list_display = ("event", "path_count", "full", "sampled", "updated")
    list_filter = ("full",)
    search_fields = ("event",)
    search_help_text = "Search by event (e.g. sqs:shipping_start)."
    fields = ("event", "full", "sampled", "updated_at", "paths_shown")
    readonly_fields = fields

    @admin.display(description="paths")
    def path_count(self, obj: EventShape) -> int:
        return len(obj.paths)

    @admin.display(description="updated", ordering="updated_at")
    def updated(self, obj: EventShape) -> str:
        return clock(obj.updated_at)

    @admin.display(description="paths seen (last seen)")
    def paths_shown(self, obj: EventShape) -> SafeString:
        seen = sorted(obj.paths.items())
        rows = format_html_join("", "<tr><td><code>{}</code></td><td>{}</td></tr>",
                                ((path, clock(datetime.fromtimestamp(at, UTC))) for path, at in seen))
        return format_html("<table>{}</table>", rows)

    def has_view_permission(self, request, obj=None) -> bool:
        # Part of linting handlers: whoever may see handlers may see what their events carry.
        return super().has_view_permission(request, obj) or request.user.has_perm("handlers.view_eventhandler")


# Revisions -------------------------------------------------------------------------------------


@admin.register(HandlerRevision)
class HandlerRevisionAdmin(AuditAdmin):
    list_display = ("handler_name", "number", "change", "source", "who", "created_at")
    list_display_links = ("handler_name", "number")
    list_filter = ("change", "source")
    search_fields = ("handler_name", "changed_by_name")
    search_help_text = "Search by handler name or by who made the change."
    date_hierarchy = "created_at"
    fields = ("handler_link", "number", "change", "source", "who", "created_at", "snapshot_json", "diff")
    readonly_fields = fields

    @admin.display(description="who", ordering="changed_by_name")
    def who(self, obj: HandlerRevision) -> str:
        return obj.changed_by_name or "—"

    @admin.display(description="handler")
    def handler_link(self, obj: HandlerRevision) -> str:
        if obj.handler_id is None:
            return format_html("{} <em>(deleted)</em>", obj.handler_name)
        return format_html('<a href="{}">{}</a>', admin_url(obj.handler), obj.handler_name)

    @admin.display(description="handler as of this revision")
    def snapshot_json(self, obj: HandlerRevision) -> SafeString:
        return json_block(obj.snapshot)

    @admin.display(description="changes from the previous revision")
    def diff(self, obj: HandlerRevision) -> SafeString:
        previous = obj.previous()
        if previous is None:
            return mark_safe("<p>First revision: the handler was created as shown above.</p>")
        return diff_block(previous.snapshot, obj.snapshot, f"revision {previous.number}", f"revision {obj.number}")

    def has_view_permission(self, request, obj=None) -> bool:
        # A handler's history is part of the handler: whoever may see handlers may see their revisions.
        return super().has_view_permission(request, obj) or request.user.has_perm("handlers.view_eventhandler")

    # Restore ---------------------------------------------------------------------------------

    def can_restore(self, request: HttpRequest, revision: HandlerRevision) -> bool:
        user = request.user
        if not user.has_perm("handlers.change_eventhandler"):
            return False
        return EventHandler.objects.filter(name=revision.handler_name).exists() or user.has_perm(
            "handlers.add_eventhandler"
        )

    def get_urls(self):
        restore_view = self.admin_site.admin_view(self.restore_view)
        return [
            path("<path:object_id>/restore/", restore_view, name="handlers_handlerrevision_restore"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        revision = self.get_object(request, unquote(object_id))
        can_restore = revision is not None and self.can_restore(request, revision)
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "can_restore": can_restore})

    def restore_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        revision = self.get_object(request, unquote(object_id))
        if revision is None:
            raise Http404("No such revision.")
        if not self.can_restore(request, revision):
            raise PermissionDenied
        if request.method == "POST":
            return self._restore(request, revision)
        current = EventHandler.objects.filter(name=revision.handler_name).first()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Restore {revision.handler_name} to revision {revision.number}?",
            "revision": revision,
            "current": current,
            "diff": diff_block(current.to_conductor() if current else None, revision.snapshot,
                               "current handler" if current else "(deleted)", f"revision {revision.number}"),
        }
        return TemplateResponse(request, "admin/handlers/handlerrevision/restore.html", context)

    def _restore(self, request: HttpRequest, revision: HandlerRevision) -> HttpResponseRedirect:
        existed = EventHandler.objects.filter(name=revision.handler_name).exists()
        try:
            handler = restore_revision(revision, user=request.user)
        except ValidationError as exc:
            # Validation rules may have tightened since the revision was written: say why, change nothing.
            for line in error_lines(exc):
                self.message_user(request, f"Revision {revision.number} cannot be restored: {line}", messages.ERROR)
            return redirect(admin_url(revision))
        verb = "Restored" if existed else "Recreated deleted handler"
        self.message_user(
            request,
            f"{verb} “{handler.name}” as of revision {revision.number}; saved as revision {handler.revision}.",
            messages.SUCCESS,
        )
        logger.info("%s restored handler %s to revision %s", request.user, handler.name, revision.number)
        return redirect(admin_url(handler))


# API keys --------------------------------------------------------------------------------------


class RevokedFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at=None)
        if self.value() == "revoked":
            return queryset.exclude(revoked_at=None)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "key_id", "user", "created_at", "last_used_at", "revoked")
    list_filter = (RevokedFilter,)
    list_select_related = ("user",)
    search_fields = ("name", "key_id", "user__username")
    search_help_text = "Search by name, key id or username."
    date_hierarchy = "created_at"
    actions = ["revoke_selected"]

    @admin.display(description="revoked", boolean=True, ordering="revoked_at")
    def revoked(self, obj: ApiKey) -> bool:
        return obj.revoked_at is not None

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "user"]
        return ["name", "key_id", "user", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        # Only the name may change: the secret is gone and the user is what the key acts as.
        return [] if obj is None else ["key_id", "user", "created_at", "last_used_at", "revoked_at"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":
            users = get_user_model().objects.filter(is_active=True)
            if not request.user.is_superuser:
                # A key acts with its user's permissions: without this, a staff member allowed to add keys
                # could mint one for a superuser.
                users = users.filter(pk=request.user.pk)
                kwargs["help_text"] = "The key acts as you, with your permissions. Superusers may issue keys for " \
                    "others."
            kwargs["queryset"] = users
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj: ApiKey, form, change: bool) -> None:
        if change:
            obj.save(update_fields=["name"])
            return
        key, secret = ApiKey.issue(form.cleaned_data["user"], form.cleaned_data["name"])
        # The admin goes on with `obj` (log entry, redirect): make it the issued key.
        for field in ApiKey._meta.concrete_fields:
            setattr(obj, field.attname, getattr(key, field.attname))
        obj._state.adding = False
        self.message_user(
            request,
            format_html(
                "API key issued. Key id: <code>{}</code> Secret: <code>{}</code> — copy the secret now: "
                "only its hash is stored and it will not be shown again.",
                key.key_id,
                secret,
            ),
            messages.WARNING,
        )

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_selected(self, request, queryset: QuerySet) -> None:
        keys = list(queryset)  # Once: a "status: active" filter would shrink the queryset as keys are revoked.
        revoked = sum(key.revoke() for key in keys)
        already = len(keys) - revoked
        message = f"Revoked {plural(revoked, 'API key')}"
        if already:
            message += f"; {already} {'was' if already == 1 else 'were'} already revoked"
        self.message_user(request, message + ".", messages.SUCCESS if revoked else messages.INFO)


# Executions: the audit record, read-only ------------------------------------------------------


class DecisionFilter(admin.SimpleListFilter):
    """The records the overview counts per handler (each leaves duplicates of earlier records out)."""

    title = "what the handler did"
    parameter_name = "decision"

    def lookups(self, request, model_admin):
        return [("matched", "Matched (a message's first action)"), ("skipped", "Condition false"),
                ("failed", "Failed")]

    def queryset(self, request, queryset):
        if self.value() in {value for value, _ in self.lookup_choices}:
            return executions_of_decision(queryset, self.value())
        return queryset


class HandlerNameFilter(admin.SimpleListFilter):
    """By the handler's name (the record keeps it past a rename or a deletion), offered from the handlers."""

    title = "handler"
    parameter_name = "handler_name"

    def lookups(self, request, model_admin):
        return [(name, name) for name in EventHandler.objects.order_by("name").values_list("name", flat=True)]

    def queryset(self, request, queryset):
        return queryset.filter(handler_name=self.value()) if self.value() is not None else queryset


@admin.register(ActionExecution)
class ActionExecutionAdmin(AuditAdmin):
    # No queue column: the handler names it, and a 1366 px screen has no room for it (the queue filter stays).
    list_display = ("execution_shown", "handler_link", "action_shown", "status", "workflow", "created")
    list_display_links = ("execution_shown",)
    list_filter = ("status", DecisionFilter, HandlerNameFilter, QueueEventFilter, ("created_at", WindowFilter))
    search_fields = ("=message_id", "=workflow_id", "=execution_id")
    search_help_text = "Search by message id, workflow id or execution id (exact)."
    date_hierarchy = "created_at"
    show_full_result_count = False  # a COUNT(*) over the whole audit table on every page is not worth it
    fields = ("execution_id", "message", "event", "handler_link", "revision_link", "index", "action", "status",
              "condition_value", "reason", "error", "retryable", "attempts", "workflow", "duplicate_link",
              "input_json", "output_json", "started_at", "finished_at", "duration", "created_at")
    readonly_fields = fields

    @admin.display(description="execution id", ordering="execution_id")
    def execution_shown(self, obj: ActionExecution) -> str:
        return short_id(obj.execution_id, keep=30)

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: ActionExecution) -> str:
        return clock(obj.created_at)

    @admin.display(description="handler", ordering="handler_name")
    def handler_link(self, obj: ActionExecution) -> str:
        if obj.handler_id is None:
            return format_html("{} <em>(deleted)</em>", obj.handler_name)
        url = reverse("admin:handlers_eventhandler_change", args=[obj.handler_id])
        return format_html('<a href="{}">{}</a>', url, obj.handler_name)

    @admin.display(description="action", ordering="index")
    def action_shown(self, obj: ActionExecution) -> str:
        return "condition" if obj.index == HANDLER_LEVEL else f"{obj.index}: {obj.action}"

    @admin.display(description="workflow", ordering="workflow_id")
    def workflow(self, obj: ActionExecution) -> str:
        return workflow_link(obj.workflow_id)

    @admin.display(description="message")
    def message(self, obj: ActionExecution) -> str:
        if obj.delivery_id is None:
            return obj.message_id
        url = reverse("admin:queues_receivedmessage_change", args=[obj.delivery_id])
        return format_html('<a href="{}">{}</a>', url, obj.message_id)

    @admin.display(description="handler revision")
    def revision_link(self, obj: ActionExecution) -> str:
        if obj.revision_id is None:
            return "—"
        return format_html('<a href="{}">revision {}</a>', admin_url(obj.revision), obj.revision.number)

    @admin.display(description="duplicate of")
    def duplicate_link(self, obj: ActionExecution) -> str:
        if obj.duplicate_of_id is None:
            return "—"
        return format_html('<a href="{}">{}</a>', admin_url(obj.duplicate_of), obj.duplicate_of.execution_id)

    @admin.display(description="resolved input")
    def input_json(self, obj: ActionExecution) -> SafeString:
        return json_block(obj.input)

    @admin.display(description="output")
    def output_json(self, obj: ActionExecution) -> SafeString:
        return json_block(obj.output)

    @admin.display(description="duration")
    def duration(self, obj: ActionExecution) -> str:
        return f"{obj.duration_ms:.1f} ms" if obj.duration_ms is not None else "—"



# Dry-run page of a handler ---------------------------------------------------------------------


class DryRunForm(forms.Form):
    payload = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 14, "cols": 90, "style": CODE_STYLE}),
        help_text='The sample message as JSON, e.g. <code>{"workflowInstanceId": "…"}</code>; filled in from the '
        "message picked above.",
    )
    message_id = forms.CharField(required=False, max_length=255, initial=DRY_RUN_MESSAGE_ID,
                                 help_text="Put in conductor.event.messageId.")
    sample = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def clean_payload(self):
        return form_json(self.cleaned_data["payload"])


def dry_run_view(model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    handler = model_admin.get_object(request, unquote(object_id))
    if handler is None:
        raise Http404("No such event handler.")
    if not model_admin.has_view_permission(request, handler):
        raise PermissionDenied
    recent = list(recent_messages(handler.event))
    picked = _picked(handler, request.POST.get("sample") if request.method == "POST" else request.GET.get("message"))
    initial = {"sample": picked.pk, "payload": pretty_json(picked.payload), "message_id": picked.message_id} \
        if picked is not None else {}
    form = DryRunForm(request.POST or None, initial=initial)
    result = None
    if request.method == "POST" and form.is_valid():
        try:
            result = dry_run(handler, form.cleaned_data["payload"],
                             message_id=form.cleaned_data["message_id"] or DRY_RUN_MESSAGE_ID,
                             sample=picked if _unedited(picked, form.cleaned_data["payload"]) else None)
        except IsolatesBusy as exc:
            form.add_error(None, f"Conditions are busy ({exc}); try again in a moment.")
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "original": handler,
        "title": f"Dry-run {handler.name}",
        "form": form,
        "recent": recent if picked is None or picked.pk in {m.pk for m in recent} else [picked, *recent],
        "picked": picked,
        "not_found": request.GET.get("message") if request.method == "GET" and picked is None else None,
        "result": result,
        "actions_shown": [(a, json_block(a.input)) for a in result.actions] if result else [],
    }
    return TemplateResponse(request, "admin/handlers/eventhandler/dry_run.html", context)


def _picked(handler: EventHandler, asked: str | None):
    """The stored message whose payload the form starts from: the one asked for (by id), else the latest."""
    if asked:
        try:
            return stored_message(handler.event, int(asked))
        except ValueError:
            return None
    return stored_message(handler.event)


def _unedited(picked, payload: Any) -> bool:
    return picked is not None and picked.payload == payload
