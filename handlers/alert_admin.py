"""The alerts in the admin: rules editable, alerts with their state changes and notification attempts
inline, and actions that acknowledge or silence them with a reason."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import Alert, AlertEvent, AlertRule, NotificationAttempt


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ("kind", "target", "enabled", "threshold", "window_minutes", "updated_at")
    list_filter = ("kind", "enabled")
    list_editable = ("enabled", "threshold", "window_minutes")
    list_select_related = ("handler", "queue")
    fields = ("kind", "handler", "queue", "enabled", "threshold", "window_minutes")

    @admin.display(description="applies to")
    def target(self, rule: AlertRule) -> str:
        return str(rule.handler or rule.queue or "every handler and queue (default)")


class AlertEventInline(admin.TabularInline):
    model = AlertEvent
    fields = ("at", "from_state", "to_state", "by_name", "reason")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class NotificationAttemptInline(admin.TabularInline):
    model = NotificationAttempt
    fields = ("channel", "target", "attempt", "status", "response", "next_attempt_at", "attempted_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class AlertActionForm(ActionForm):
    reason = forms.CharField(required=False, help_text="Why (required to acknowledge or silence).")
    minutes = forms.IntegerField(required=False, min_value=1, initial=60, help_text="How long a silence lasts.")


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("subject", "kind", "state", "detail", "opened_at", "resolved_at", "silenced_until")
    list_filter = ("state", "kind")
    search_fields = ("subject", "detail", "reason")
    date_hierarchy = "opened_at"
    fields = ("kind", "subject", "state", "detail", "reason", "opened_at", "resolved_at", "silenced_until", "rule")
    readonly_fields = fields
    inlines = (AlertEventInline, NotificationAttemptInline)
    action_form = AlertActionForm
    actions = ("acknowledge", "silence")

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Acknowledge selected alerts (with the reason)", permissions=["change"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._change(request, queryset, "acknowledged", lambda alert, reason, minutes:
                     alert.acknowledge(request.user, reason))

    @admin.action(description="Silence selected alerts (for the minutes, with the reason)", permissions=["change"])
    def silence(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._change(request, queryset, "silenced", lambda alert, reason, minutes:
                     alert.silence(request.user, reason, minutes))

    def _change(self, request: HttpRequest, queryset: QuerySet, done: str, change) -> None:
        reason = request.POST.get("reason", "").strip()
        try:
            minutes = int(request.POST.get("minutes") or 60)
        except ValueError:
            minutes = 0
        if not reason or minutes < 1:
            self.message_user(request, "Give a reason (and, to silence, minutes of at least 1).", messages.ERROR)
            return
        unresolved = [alert for alert in queryset if alert.state != Alert.State.RESOLVED]
        for alert in unresolved:
            change(alert, reason, minutes)
        skipped = len(queryset) - len(unresolved)
        message = f"{len(unresolved)} alert(s) {done}" + (f"; {skipped} resolved left as they are" if skipped else "")
        self.message_user(request, message + ".", messages.SUCCESS if unresolved else messages.INFO)
