"""The alerts in the admin: rules editable, alerts with their state changes and notification attempts
inline, and actions that acknowledge or silence them with a reason: on the list (the selected alerts), and
one alert at a time from its own page and the overview's alerts (`<id>/state/`, which goes back where it
was asked from)."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.defaultfilters import date
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from .alert_models import MAX_SILENCE_MINUTES
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


class AlertStateForm(forms.Form):
    """One alert acknowledged or silenced, from its page or the overview (the select there offers a few
    lengths; any whole number of minutes up to MAX_SILENCE_MINUTES is taken)."""

    do = forms.ChoiceField(choices=[("acknowledge", "Acknowledge"), ("silence", "Silence")])
    reason = forms.CharField(max_length=10_000, error_messages={"required": "Give a reason."})
    minutes = forms.IntegerField(required=False, min_value=1, max_value=MAX_SILENCE_MINUTES)

    def clean(self) -> dict:
        data = super().clean()
        if data.get("do") == "silence" and not data.get("minutes") and "minutes" not in self.errors:
            self.add_error("minutes", "Say for how many minutes.")
        return data


class AlertActionForm(ActionForm):
    reason = forms.CharField(required=False, help_text="Why (required to acknowledge or silence).")
    minutes = forms.IntegerField(required=False, min_value=1, initial=60, help_text="How long a silence lasts.")


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("subject", "kind", "state", "detail", "opened_at", "resolved_at", "silenced_until")
    list_filter = ("state", "kind")
    search_fields = ("subject", "detail", "reason")
    date_hierarchy = "opened_at"
    fields = ("kind", "subject", "state", "detail", "current", "checked_at", "reason", "opened_at", "resolved_at",
              "silenced_until", "rule")
    readonly_fields = fields
    inlines = (AlertEventInline, NotificationAttemptInline)
    action_form = AlertActionForm
    actions = ("acknowledge", "silence")

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # an alert is its own audit trail: it resolves, it is not deleted

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # Nothing on the page is edited: its state changes through the form of state_view, not Save.
        extra_context = {**(extra_context or {}), "show_save": False, "show_save_and_continue": False,
                         "show_save_and_add_another": False, "show_delete": False}
        return super().changeform_view(request, object_id, form_url, extra_context)

    def get_urls(self) -> list:
        state = path("<path:object_id>/state/", self.admin_site.admin_view(self.state_view),
                     name="handlers_alert_state")
        return [state, *super().get_urls()]

    def state_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Acknowledge or silence one alert with a reason, then go back to the page that asked (the overview
        or the alert's page), saying what was done or why nothing was."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        alert = self.get_object(request, object_id)
        if alert is None:
            raise Http404(f"No alert with id {object_id}.")
        if not self.has_change_permission(request, alert):
            raise PermissionDenied
        form = AlertStateForm(request.POST)
        if form.is_valid():
            self._change_one(request, alert, form.cleaned_data)
        else:
            problems = "; ".join(str(error) for errors in form.errors.values() for error in errors)
            self.message_user(request, f"{alert}: nothing changed. {problems}", messages.ERROR)
        back = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
            back = reverse("admin:handlers_alert_change", args=[alert.pk])
        return HttpResponseRedirect(back)

    def _change_one(self, request: HttpRequest, alert: Alert, data: dict) -> None:
        try:
            if data["do"] == "silence":
                alert.silence(request.user, data["reason"], data["minutes"])
            else:
                alert.acknowledge(request.user, data["reason"])
        except ValidationError as exc:
            self.message_user(request, f"{alert}: nothing changed. {' '.join(exc.messages)}", messages.ERROR)
            return
        done = "silenced until " + date(timezone.localtime(alert.silenced_until), "j M H:i") \
            if data["do"] == "silence" else "acknowledged"
        self.message_user(request, f"{alert}: {done}.", messages.SUCCESS)

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
        if not reason or not 1 <= minutes <= MAX_SILENCE_MINUTES:
            self.message_user(request, f"Give a reason (and, to silence, minutes from 1 to {MAX_SILENCE_MINUTES}).",
                              messages.ERROR)
            return
        unresolved = [alert for alert in queryset if alert.state != Alert.State.RESOLVED]
        for alert in unresolved:
            change(alert, reason, minutes)
        skipped = len(queryset) - len(unresolved)
        message = f"{len(unresolved)} alert(s) {done}" + (f"; {skipped} resolved left as they are" if skipped else "")
        self.message_user(request, message + ".", messages.SUCCESS if unresolved else messages.INFO)
