"""The received messages in the admin: each delivery with what the handlers did with it, why it did
nothing, and replay. The model is queues' (`queues.ReceivedMessage`); its screens live here, with the
behaviour they show (explain, replay, the executions)."""

import json
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from eventhub.lib.display import clock, event_label, short_id
from queues.admin import QueueEventFilter, ReadOnlyAdmin, WindowFilter, change_url, edited_json, same_json
from queues.models import QuarantinedMessage, ReceivedMessage

from .explain import explain
from .models import ActionExecution, EventHandler
from .overview import FAILED, failed_record, with_outcome
from .replay import ReplayError, replay

Outcome = ReceivedMessage.Outcome


def workflow_link(workflow_id: str) -> str:
    """A link to the workflow in the admin when the built-in runtime holds it; its id otherwise."""
    if not workflow_id:
        return "—"
    if settings.WORKFLOW_ENGINE != "builtin":
        return workflow_id
    url = reverse("admin:workflows_workflow_change", args=[workflow_id])
    return format_html('<a href="{}">{}</a>', url, short_id(workflow_id))


class ExecutionInline(admin.TabularInline):
    """What the handlers did with this delivery (read-only: the audit record)."""

    model = ActionExecution
    fk_name = "delivery"
    fields = ("execution_link", "handler_name", "index", "action", "status", "workflow", "reason_or_error",
              "finished_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("handler_name", "index", "id")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="execution")
    def execution_link(self, obj) -> str:
        return format_html('<a href="{}">{}</a>', change_url(obj), obj.execution_id)

    @admin.display(description="workflow")
    def workflow(self, obj) -> str:
        return workflow_link(obj.workflow_id)

    @admin.display(description="reason or error")
    def reason_or_error(self, obj) -> str:
        return (obj.error or obj.reason)[:300]


class ReplayForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "cols": 90}),
                             help_text="Why the message is replayed; kept on the replay's record.")
    edited_payload = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 14, "cols": 90, "style": "font-family: monospace"}), required=False,
        help_text="The JSON to replay instead of the stored payload; leave as it is (or empty) to replay it unchanged.",
    )

    def clean_edited_payload(self) -> Any:
        return edited_json(self.cleaned_data["edited_payload"])


class _ExecutionFilter(admin.SimpleListFilter):
    """Messages one of whose executions has this value of `field`. With both a handler and an execution status
    chosen, one execution must have both: "messages handler X failed on"."""

    field = ""

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        chosen = {f.field: request.GET[f.parameter_name] for f in (ExecutionHandlerFilter, ExecutionStatusFilter)
                  if request.GET.get(f.parameter_name)}
        executions = ActionExecution.objects.filter(**{self.field: self.value(), **chosen})
        return queryset.filter(pk__in=executions.values("delivery_id"))


class ExecutionHandlerFilter(_ExecutionFilter):
    """By the handler's name: the record keeps it past a rename."""

    title = "handler"
    parameter_name = "handler"
    field = "handler_name"

    def lookups(self, request, model_admin):
        return [(name, name) for name in EventHandler.objects.order_by("name").values_list("name", flat=True)]


class ExecutionStatusFilter(_ExecutionFilter):
    title = "execution status"
    parameter_name = "execution_status"
    field = "status"

    def lookups(self, request, model_admin):
        return ActionExecution._meta.get_field("status").choices


class OutcomeFilter(admin.SimpleListFilter):
    """The outcome as the list shows it: an acknowledged message whose actions failed is told apart."""

    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request, model_admin):
        return [(Outcome.RECEIVED, "Received (in flight)"), (Outcome.ACKNOWLEDGED, "Acknowledged, nothing failed"),
                (FAILED, "Acknowledged, actions failed"), (Outcome.RETURNED, "Returned for redelivery"),
                (Outcome.QUARANTINED, "Quarantined"), (Outcome.SUPERSEDED, "Settled by a later delivery")]

    def queryset(self, request, queryset):
        if self.value() in {value for value, _ in self.lookup_choices}:
            return with_outcome(queryset, self.value())
        return queryset


OUTCOME_SHOWN = {Outcome.RECEIVED: ("Received", "received"), Outcome.ACKNOWLEDGED: ("Acknowledged", "acknowledged"),
                 Outcome.RETURNED: ("Returned", "returned"), Outcome.QUARANTINED: ("Quarantined", "quarantined"),
                 Outcome.SUPERSEDED: ("Settled later", "superseded")}


@admin.register(ReceivedMessage)
class ReceivedMessageAdmin(ReadOnlyAdmin):
    list_display = ("message_shown", "event_shown", "delivery", "outcome_shown", "received")
    list_display_links = ("message_shown",)
    list_filter = (OutcomeFilter, ExecutionStatusFilter, ExecutionHandlerFilter, QueueEventFilter,
                   ("received_at", WindowFilter))
    search_fields = ("=message_id", "=executions__workflow_id")
    search_help_text = "Search by message id or by the id of a workflow it started or moved (exact)."
    date_hierarchy = "received_at"
    show_full_result_count = False
    inlines = (ExecutionInline,)
    actions = ("replay_selected",)
    fieldsets = (
        ("Why did this message do nothing?", {"fields": ("why",)}),
        (None, {"fields": ("message_id", "event", "config", "outcome", "detail", "quarantine", "delivery_count",
                           "received_at", "pretty_payload", "raw_body")}),
        ("Replay", {"fields": ("replay_of_link", "replayed_by", "replay_reason", "replays_list")}),
    )
    readonly_fields = ("why", "message_id", "event", "config", "outcome", "detail", "quarantine", "delivery_count",
                       "received_at", "pretty_payload", "raw_body", "replay_of_link", "replayed_by", "replay_reason",
                       "replays_list")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the audit record goes only through retention

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_replay": self.has_replay_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    def get_queryset(self, request):
        return (super().get_queryset(request).select_related("replay_of", "replayed_by", "config")
                .annotate(has_failed=failed_record()))

    def has_replay_permission(self, request) -> bool:
        # A replay runs the handlers again: as much as changing the record, not merely seeing it.
        return request.user.has_perm("queues.change_receivedmessage")

    @admin.display(description="message id", ordering="message_id")
    def message_shown(self, obj: ReceivedMessage) -> str:
        return short_id(obj.message_id)

    @admin.display(description="queue", ordering="event")
    def event_shown(self, obj: ReceivedMessage) -> str:
        return event_label(obj.event)

    @admin.display(description="delivery", ordering="delivery_count")
    def delivery(self, obj: ReceivedMessage) -> str:
        """Which delivery of the message: a broker's count, or a replay (made by a person)."""
        if obj.replay_of_id is None:
            return str(obj.delivery_count)
        who = obj.replayed_by.get_username() if obj.replayed_by_id else "someone"
        return format_html('<span class="eh-tag" title="{}">replay</span>', f"a replay of {obj.replay_of.message_id} "
                           f"by {who}")

    @admin.display(description="outcome", ordering="outcome")
    def outcome_shown(self, obj: ReceivedMessage) -> str:
        if obj.outcome == Outcome.ACKNOWLEDGED and getattr(obj, "has_failed", False):
            return format_html('<span class="eh-outcome failed" title="{}">Actions failed</span> '
                               '<span class="eh-muted">acknowledged</span>', "Acknowledged: a condition or an action "
                               "failed for good, and the message was not delivered again")
        label, css = OUTCOME_SHOWN.get(obj.outcome, (obj.get_outcome_display(), ""))
        return format_html('<span class="eh-outcome {}" title="{}">{}</span>', css, obj.get_outcome_display(), label)

    @admin.display(description="received", ordering="received_at")
    def received(self, obj: ReceivedMessage) -> str:
        return clock(obj.received_at)

    @admin.display(description="quarantine")
    def quarantine(self, obj: ReceivedMessage) -> str:
        """The message's quarantine entries, whichever delivery this is."""
        entries = QuarantinedMessage.objects.filter(event=obj.event, message_id=obj.message_id).order_by("-id")
        state = {QuarantinedMessage.Status.QUARANTINED: "open"}
        rows = [(change_url(e), state.get(e.status, e.get_status_display().lower()), clock(e.quarantined_at))
                for e in entries[:5]]
        if not rows:
            return "never quarantined"
        return format_html_join("; ", '<a href="{}">its quarantine entry</a>: {}, quarantined {}', rows)

    @admin.display(description="payload")
    def pretty_payload(self, obj: ReceivedMessage) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2)) if obj.payload is not None else "-"

    @admin.display(description="replay of")
    def replay_of_link(self, obj: ReceivedMessage) -> str:
        if obj.replay_of_id is None:
            return "-"
        return format_html('<a href="{}">{}</a>', change_url(obj.replay_of), obj.replay_of.message_id)

    @admin.display(description="replays")
    def replays_list(self, obj: ReceivedMessage) -> str:
        rows = [(change_url(r), r.message_id) for r in obj.replays.only("pk", "message_id").order_by("id")]
        return format_html_join(", ", '<a href="{}">{}</a>', rows) if rows else "none"

    @admin.display(description="what happened")
    def why(self, obj: ReceivedMessage) -> str:
        explanation = explain(obj)
        items = format_html_join("", "<li>{}</li>", ((line,) for line in explanation.lines))
        return format_html('<div class="why"><strong>{}</strong><ul style="margin: 0.5em 0 0; padding-left: 1.2em">{}'
                           "</ul></div>", explanation.headline, items)

    @admin.action(description="Replay the selected messages through the current handlers", permissions=["replay"])
    def replay_selected(self, request, queryset):
        records = list(queryset.order_by("id"))
        single = records[0] if len(records) == 1 else None
        if "apply" in request.POST:
            form = ReplayForm(request.POST)
            if form.is_valid():
                return self._replay(request, records, form.cleaned_data)
        else:
            initial = {"edited_payload": json.dumps(single.payload, indent=2)} if single and single.payload else {}
            form = ReplayForm(initial=initial)
        if not single:
            form.fields.pop("edited_payload")  # one payload cannot stand for several messages
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "title": "Replay messages",
            "records": records, "form": form, "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/queues/receivedmessage/replay.html", context)

    def _replay(self, request, records: list[ReceivedMessage], data: dict) -> None:
        for record in records:
            payload = data.get("edited_payload")
            if same_json(payload, record.payload):
                payload = None  # unchanged
            try:
                result = replay(record, user=request.user, reason=data["reason"], payload=payload)
            except ReplayError as exc:
                self.message_user(request, f"{record.message_id}: {exc}", messages.ERROR)
                continue
            level = messages.SUCCESS if result.decision.action == "ack" else messages.WARNING
            link = format_html('<a href="{}">{}</a>', change_url(result.record), result.summary)
            self.message_user(request, link, level)
