import json
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db import models
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join

from eventhub.lib.display import ago, clipped, clock, event_label, short_id
from eventhub.lib.forms import StorableJSONField, form_json

from . import outbox, quarantine
from .kinds import provider_for
from .models import (
    InternalMessage,
    ListenerHeartbeat,
    OutboxMessage,
    QuarantinedMessage,
    QueueConfig,
    ReceivedMessage,
)


def _handlers_model():
    # The handlers listening on a queue are shown here; handlers sits above queues, so it is looked up.
    return apps.get_model("handlers", "EventHandler")


def change_url(obj) -> str:
    try:
        return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:  # that model is not in the admin (yet)
        return ""


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class AuditAdmin(ReadOnlyAdmin):
    """Records written by running Eventhub, never added, edited or deleted through the admin."""

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# Filters -----------------------------------------------------------------------------------------


class WindowFilter(admin.DateFieldListFilter):
    """Django's date filter, which also shows a time range given in the URL (the overview's links, such as
    `received_at__gte=…&received_at__lt=…`) as the chosen one."""

    def choices(self, changelist):
        choices = list(super().choices(changelist))
        if self.date_params and not any(choice["selected"] for choice in choices):
            choices.insert(1, {"selected": True, "query_string": changelist.get_query_string(),
                               "display": self.range_label()})
        return choices

    def range_label(self) -> str:
        since = parse_datetime(self.date_params.get(self.lookup_kwarg_since, ""))
        until = parse_datetime(self.date_params.get(self.lookup_kwarg_until, ""))
        zone = timezone.get_current_timezone()
        if since and until:
            since, until = since.astimezone(zone), until.astimezone(zone)
            end = until.strftime("%H:%M:%S") if until.date() == since.date() else until.strftime("%-d %b %H:%M:%S")
            return f"{since.strftime('%-d %b %H:%M:%S')} to {end} {since.strftime('%Z')}"
        if since:
            return f"From {since.astimezone(zone).strftime('%-d %b %H:%M:%S %Z')}"
        if until:
            return f"Before {until.astimezone(zone).strftime('%-d %b %H:%M:%S %Z')}"
        return "The range asked"


class QueueEventFilter(admin.SimpleListFilter):
    """By queue, offered from the queue configs (a few rows), never by reading the distinct events of a
    table of records (a million rows)."""

    title = "queue"
    parameter_name = "event"

    def lookups(self, request, model_admin):
        return [(event, event) for event in QueueConfig.objects.order_by("event").values_list("event", flat=True)]

    def queryset(self, request, queryset):
        return queryset.filter(event=self.value()) if self.value() is not None else queryset


@admin.register(QueueConfig)
class QueueConfigAdmin(admin.ModelAdmin):
    list_display = ("event_shown", "enabled", "handler_count", "depth", "dead", "last_poll", "short_error")
    list_display_links = ("event_shown",)
    list_filter = ("kind", "enabled", "unmatched")
    search_fields = ("event",)
    actions = ("enable", "disable", "refresh_depth", "publish_test_message")
    formfield_overrides = {models.JSONField: {"form_class": StorableJSONField}}
    readonly_fields = ("event", "listening_handlers", "depth", "dead_letter_depth", "last_poll_at", "last_error",
                       "last_error_at", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("kind", "name", "event", "enabled", "unmatched", "listening_handlers")}),
        ("Connection", {"fields": ("url", "url_ref", "region", "endpoint_url", "provision", "authorized_accounts")}),
        ("Consuming", {"fields": ("batch_size", "concurrency", "wait_seconds", "visibility_timeout",
                                  "max_deliveries", "poll_interval_minutes")}),
        ("Health", {"fields": ("depth", "dead_letter_depth", "last_poll_at", "last_error", "last_error_at",
                               "created_at", "updated_at")}),
    )

    def get_queryset(self, request):
        handlers = (_handlers_model().objects.filter(event=OuterRef("event")).order_by()
                    .values("event").annotate(n=Count("id")).values("n"))
        return super().get_queryset(request).annotate(
            _handlers=Subquery(handlers, output_field=IntegerField())
        )

    @admin.display(description="event", ordering="event")
    def event_shown(self, obj: QueueConfig) -> str:
        return event_label(obj.event)

    @admin.display(description="handlers", ordering="_handlers")
    def handler_count(self, obj: QueueConfig) -> int:
        return obj._handlers or 0

    @admin.display(description="dead", ordering="dead_letter_depth")
    def dead(self, obj: QueueConfig) -> int | None:
        return obj.dead_letter_depth

    @admin.display(description="last poll", ordering="last_poll_at")
    def last_poll(self, obj: QueueConfig) -> str:
        return clock(obj.last_poll_at)

    @admin.display(description="last error")
    def short_error(self, obj: QueueConfig) -> str:
        if not obj.last_error:
            if obj.last_error_at:  # cleared by a good poll since: the queue works now
                return format_html('<span class="eh-muted">none now; last {}</span>', ago(obj.last_error_at))
            return "—"
        return format_html('<span class="eh-nowrap">{}</span><br>{}', ago(obj.last_error_at),
                           clipped(obj.last_error, "12em"))

    @admin.display(description="handlers listening")
    def listening_handlers(self, obj: QueueConfig) -> str:
        handlers = _handlers_model().objects.filter(event=obj.event).only("pk", "name", "active")
        rows = [(change_url(h), h.name, "" if h.active else " (inactive)") for h in handlers]
        return format_html_join(", ", '<a href="{}">{}</a>{}', rows) if rows else "none"

    @admin.action(description="Enable the selected queues")
    def enable(self, request, queryset) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable the selected queues")
    def disable(self, request, queryset) -> None:
        self._set_enabled(request, queryset, False)

    def _set_enabled(self, request, queryset, enabled: bool) -> None:
        changed = 0
        for config in queryset.exclude(enabled=enabled):
            config.enabled = enabled
            config.save()  # through save(): the schedule and the listeners' change stamp follow
            changed += 1
        self.message_user(request, f"{'Enabled' if enabled else 'Disabled'} {changed} queue(s).")

    @admin.action(description="Ask the broker for the depth now")
    def refresh_depth(self, request, queryset) -> None:
        for config in queryset:
            try:
                depth = _depth_of(config)
            except Exception as exc:  # noqa: BLE001 - shown to the user, not raised
                self.message_user(request, f"{config.event}: {exc}", messages.ERROR)
                continue
            QueueConfig.objects.filter(pk=config.pk).update(depth=depth.ready, dead_letter_depth=depth.dead,
                                                             oldest_message_at=depth.oldest_at)
            self.message_user(request, f"{config.event}: {depth.ready} ready, {depth.dead} dead-lettered.")


    def has_publish_permission(self, request) -> bool:
        return request.user.has_perm("queues.add_outboxmessage")

    @admin.action(description="Publish a test message to the selected queues", permissions=["publish"])
    def publish_test_message(self, request, queryset):
        """Intermediate page: a JSON payload (and an optional message id), then one message per queue."""
        form = PublishForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return TemplateResponse(request, "admin/queues/queueconfig/publish.html", {
                **self.admin_site.each_context(request), "opts": self.model._meta, "form": form,
                "configs": queryset, "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "title": "Publish a test message",
            })
        for config in queryset:
            try:
                sent = outbox.send(config.event, form.cleaned_data["payload"],
                                   message_id=form.cleaned_data["message_id"] or None,
                                   source=f"admin: {request.user.get_username()}")
            except Exception as exc:  # noqa: BLE001 - shown to the user, per queue
                self.message_user(request, f"{config.event}: {exc}", messages.ERROR)
                continue
            level = messages.SUCCESS if sent.status == OutboxMessage.Status.SENT else messages.WARNING
            self.message_user(request, f"{config.event}: message {sent.message_id} {sent.status.lower()}.", level)
        return None


class PublishForm(forms.Form):
    payload = StorableJSONField(initial=dict, widget=forms.Textarea(attrs={"rows": 10, "cols": 80}),
                              help_text='The JSON body, e.g. {"orderId": 7, "status": "signed"}.')
    message_id = forms.CharField(max_length=255, required=False,
                                 help_text="Optional; a fresh id when empty. Repeating one tests deduplication.")


def _depth_of(config: QueueConfig):
    provider = provider_for(config.spec())
    try:
        return provider.depth()
    finally:
        provider.close()


def edited_json(raw: str) -> Any:
    """The JSON typed in place of a stored payload, or None when the field is left empty (send it as is)."""
    raw = raw.strip()
    if not raw:
        return None
    value = form_json(raw)
    if value is None:
        # Replay and retry take None for "the stored payload": a typed null would send that one instead.
        raise forms.ValidationError("null cannot be sent in place of the payload; "
                                    "leave the field empty to send the stored payload as it is.")
    return value


def same_json(edited: Any, stored: Any) -> bool:
    """Equal as JSON, not as Python: in Python True == 1 == 1.0, but a handler's condition tells them apart."""
    return json.dumps(edited, sort_keys=True) == json.dumps(stored, sort_keys=True)


class QuarantineForm(forms.ModelForm):
    operation = forms.ChoiceField(
        choices=[("", "Keep in quarantine"),
                 ("retry", "Retry: publish to its queue again (actions that completed are not run again)"),
                 ("discard", "Discard")],
        required=False,
    )
    edited_payload = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 12, "cols": 90, "style": "font-family: monospace"}), required=False,
        help_text="For a retry: the JSON to send instead of the quarantined payload; leave empty to send it as is.",
    )
    note = forms.CharField(required=False, help_text="For a discard: the reason (required).")

    class Meta:
        model = QuarantinedMessage
        fields = ()

    def clean_edited_payload(self) -> Any:
        return edited_json(self.cleaned_data["edited_payload"])

    def clean(self):
        data = super().clean()
        if data.get("operation") == "discard" and not data.get("note", "").strip():
            self.add_error("note", "Say why the message is discarded.")
        data["payload"] = data.get("edited_payload")
        if self.instance.status != QuarantinedMessage.Status.QUARANTINED and data.get("operation"):
            raise forms.ValidationError(f"This message is {self.instance.get_status_display().lower()} already.")
        return data


class QuarantineStatusFilter(admin.SimpleListFilter):
    """Open entries (still in quarantine) unless asked otherwise: retried and discarded ones are history."""

    title = "status"
    parameter_name = "status"
    ALL = "all"

    def lookups(self, request, model_admin):
        Status = QuarantinedMessage.Status
        return [(Status.QUARANTINED, "Open (in quarantine)"), (Status.RETRIED, "Retried"),
                (Status.DISCARDED, "Discarded"), (self.ALL, "All")]

    def value(self):
        return super().value() or QuarantinedMessage.Status.QUARANTINED

    def choices(self, changelist):
        for value, title in self.lookup_choices:
            yield {"selected": self.value() == value, "display": title,
                   "query_string": changelist.get_query_string({self.parameter_name: value})}

    def queryset(self, request, queryset):
        return queryset if self.value() == self.ALL else queryset.filter(status=self.value())


@admin.register(QuarantinedMessage)
class QuarantinedMessageAdmin(admin.ModelAdmin):
    form = QuarantineForm
    list_display = ("message_shown", "event_shown", "why", "deliveries_count", "quarantined")
    list_display_links = ("message_shown",)
    list_filter = (QuarantineStatusFilter, "reason", "event", ("quarantined_at", WindowFilter))
    search_fields = ("message_id", "event")
    date_hierarchy = "quarantined_at"
    list_select_related = ("resolved_by",)
    actions = ("retry_as_received",)
    readonly_fields = ("event", "message_id", "status", "reason", "last_error", "delivery_count", "pretty_payload",
                       "raw_body", "pretty_history", "quarantined_at", "resolved_at", "resolved_by", "resolution",
                       "deliveries")
    fieldsets = (
        (None, {"fields": ("event", "message_id", "status", "reason", "last_error", "delivery_count",
                           "quarantined_at", "deliveries")}),
        ("Message", {"fields": ("pretty_payload", "raw_body", "pretty_history")}),
        ("Resolution", {"fields": ("operation", "edited_payload", "note", "resolved_at", "resolved_by",
                                   "resolution")}),
    )

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="message id", ordering="message_id")
    def message_shown(self, obj) -> str:
        return short_id(obj.message_id)

    @admin.display(description="queue", ordering="event")
    def event_shown(self, obj) -> str:
        return event_label(obj.event)

    @admin.display(description="when", ordering="quarantined_at")
    def quarantined(self, obj) -> str:
        return clock(obj.quarantined_at)

    def get_list_display(self, request):
        # Open entries are the default list, where every status is the same: the column shows in the others.
        if request.GET.get(QuarantineStatusFilter.parameter_name, QuarantinedMessage.Status.QUARANTINED) \
                == QuarantinedMessage.Status.QUARANTINED:
            return self.list_display
        return (*self.list_display[:-1], "status", self.list_display[-1])

    @admin.display(description="why", ordering="reason")
    def why(self, obj) -> str:
        text = f"{obj.get_reason_display()}: {obj.last_error}" if obj.last_error else obj.get_reason_display()
        return clipped(text, "13em")

    @admin.display(description="deliveries", ordering="delivery_count")
    def deliveries_count(self, obj) -> int:
        return obj.delivery_count

    @admin.display(description="deliveries")
    def deliveries(self, obj) -> str:
        """The records of this message's deliveries: the one quarantined, and the list of them all."""
        records = ReceivedMessage.objects.filter(event=obj.event, message_id=obj.message_id)
        last = records.filter(outcome=ReceivedMessage.Outcome.QUARANTINED).order_by("-received_at", "-id").first()
        every = reverse("admin:queues_receivedmessage_changelist") + "?" + urlencode(
            {"event": obj.event, "q": obj.message_id})
        count = records.count()
        link = format_html('<a href="{}">all {} deliveries of this message</a>', every, count) if count > 1 else ""
        if last is None:
            return link or "no delivery recorded (kept for the retention period only)"
        quarantined = format_html('<a href="{}">the delivery quarantined</a> (delivery {}, received {})',
                                  change_url(last), last.delivery_count, clock(last.received_at))
        return format_html("{} · {}", quarantined, link) if link else quarantined

    @admin.display(description="payload")
    def pretty_payload(self, obj) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2)) if obj.payload is not None else "-"

    @admin.display(description="delivery history")
    def pretty_history(self, obj) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.history, indent=2))

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is not None and obj.payload is not None:
            form.base_fields["edited_payload"].initial = json.dumps(obj.payload, indent=2)
        return form

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        operation = data.get("operation")
        if operation == "retry":
            payload = None if same_json(data["payload"], obj.payload) else data["payload"]
            quarantine.retry(obj, user=request.user, payload=payload)
            self.message_user(request, f"Republished {obj.message_id} to {obj.event}.")
        elif operation == "discard":
            quarantine.discard(obj, reason=data["note"], user=request.user)
            self.message_user(request, f"Discarded {obj.message_id}.")

    @admin.action(description="Retry the selected messages as received")
    def retry_as_received(self, request, queryset) -> None:
        done, failed = 0, []
        for item in queryset.filter(status=QuarantinedMessage.Status.QUARANTINED):
            try:
                quarantine.retry(item, user=request.user)
                done += 1
            except Exception as exc:  # noqa: BLE001 - reported to the user per message
                failed.append(f"{item.message_id}: {exc}")
        self.message_user(request, f"Republished {done} message(s).")
        for problem in failed:
            self.message_user(request, problem, messages.ERROR)


class AliveFilter(admin.SimpleListFilter):
    title = "alive"
    parameter_name = "alive"

    def lookups(self, request, model_admin):
        return [("yes", "Alive"), ("no", "Stopped or silent")]

    def queryset(self, request, queryset):
        alive = ListenerHeartbeat.alive().values("pk")
        if self.value() == "yes":
            return queryset.filter(pk__in=alive)
        if self.value() == "no":
            return queryset.exclude(pk__in=alive)
        return queryset


@admin.register(ListenerHeartbeat)
class ListenerHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ("consumer", "event_shown", "alive", "last_beat", "messages", "short_error", "stopped")
    list_filter = (AliveFilter, "hostname", "event")

    @admin.display(boolean=True, description="alive")
    def alive(self, obj) -> bool:
        return obj.is_alive

    @admin.display(description="queue", ordering="event")
    def event_shown(self, obj) -> str:
        return event_label(obj.event)

    @admin.display(description="last beat", ordering="last_beat_at")
    def last_beat(self, obj) -> str:
        return clock(obj.last_beat_at)

    @admin.display(description="stopped", ordering="stopped_at")
    def stopped(self, obj) -> str:
        return clock(obj.stopped_at)

    @admin.display(description="last error")
    def short_error(self, obj) -> str:
        return clipped(obj.last_error, "20em")


@admin.register(InternalMessage)
class InternalMessageAdmin(ReadOnlyAdmin):
    list_display = ("message_id", "queue", "delivery_count", "visible_at", "dead_lettered_at", "created_at")
    list_filter = ("queue",)
    search_fields = ("message_id",)


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    list_display = ("message_id", "event", "status", "attempts", "next_attempt_at", "short_error", "created_at",
                    "sent_at")
    list_filter = ("status", "event")
    search_fields = ("message_id", "event", "source")
    date_hierarchy = "created_at"
    actions = ("retry",)

    @admin.display(description="last error")
    def short_error(self, obj) -> str:
        return obj.last_error[:80]

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("queues.change_outboxmessage")

    @admin.action(description="Retry the selected failed messages", permissions=["retry"])
    def retry(self, request, queryset) -> None:
        selected = queryset.count()
        retried = outbox.retry_failed(queryset)
        self.message_user(request, f"Queued {retried} failed message(s) for another attempt; "
                                   f"{selected - retried} were not failed and were left alone.")
