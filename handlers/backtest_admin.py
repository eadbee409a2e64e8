"""Backtests in the admin: the *Backtest* button of the handler form runs what the form holds, saved or not,
over the last BACKTEST_DEFAULT_DAYS of its event's messages (`handlers.backtests`), and leads to the result
page, a URL to share: a progress bar while a long one runs as a task, then the counts, the difference from
the saved version and sample messages, and a form to run it again over other messages."""

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html

from queues.admin import AuditAdmin
from queues.models import ReceivedMessage

from .backtests import KINDS, Criteria, describe, start
from .conditions import IsolatesBusy
from .forms import EventHandlerForm, pretty_json
from .models import Backtest, EventHandler

LOCAL_TIME = "%Y-%m-%dT%H:%M:%S"  # what an <input type="datetime-local"> reads
KIND_TITLES = {"matched": "Matched", "skipped": "Skipped", "failed": "Failed"}
DIFFERENCE_TITLES = {"newlyMatched": "Newly matched", "noLongerMatched": "No longer matched",
                     "changedInputs": "Changed action inputs"}


class DraftForm(EventHandlerForm):
    """The handler form's content as a draft: validated as a save would be, except that it may be stale or
    share its name with a saved handler (it is only tried, never saved)."""

    def clean(self) -> dict:
        return forms.ModelForm.clean(self)

    def validate_unique(self) -> None:
        pass


class CriteriaForm(forms.Form):
    """Which messages to run a backtest over again."""

    start = forms.DateTimeField(
        label="From", required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=LOCAL_TIME),
        help_text="Inclusive, UTC. Empty: the default days before To, or with a limit as far back as records are kept.")
    end = forms.DateTimeField(
        label="To", required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=LOCAL_TIME),
        help_text="Exclusive, UTC. Empty: now.")
    limit = forms.IntegerField(required=False, min_value=1, help_text="Only the newest this many messages.")
    outcomes = forms.MultipleChoiceField(required=False, choices=ReceivedMessage.Outcome.choices,
                                         widget=forms.CheckboxSelectMultiple, help_text="None ticked: all.")

    def criteria(self, event: str) -> Criteria:
        data = self.cleaned_data
        return Criteria.of(event, start=data["start"], end=data["end"], limit=data["limit"], outcomes=data["outcomes"])


def backtest_view(model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str | None = None) -> HttpResponse:
    """POST from the handler form (its add or change page): backtest what the form holds."""
    saved = model_admin.get_object(request, unquote(object_id)) if object_id else None
    if object_id and saved is None:
        raise Http404("No such event handler.")
    if not model_admin.has_view_permission(request, saved):
        raise PermissionDenied
    if request.method != "POST":
        return redirect(reverse("admin:handlers_eventhandler_change", args=[saved.pk]) if saved
                        else reverse("admin:handlers_eventhandler_add"))
    if saved is not None and "_backtest_saved" in request.POST:  # (a reader's read-only form holds no fields)
        return _run(model_admin, request, saved, Criteria.of(saved.event), draft=False, compared=None)
    form = DraftForm(request.POST, instance=EventHandler.objects.get(pk=saved.pk) if saved else None)
    if not form.is_valid():
        return _refused(model_admin, request, saved, form=form)
    return _run(model_admin, request, form.instance, Criteria.of(form.instance.event), draft=True, compared=saved)


def _run(model_admin: admin.ModelAdmin, request: HttpRequest, handler: EventHandler, criteria: Criteria, *,
         draft: bool, compared: EventHandler | None) -> HttpResponse:
    try:
        backtest, _ = start(handler, criteria, draft=draft, compared=compared, user=request.user)
    except IsolatesBusy as exc:
        return _refused(model_admin, request, compared, busy=f"Conditions are busy ({exc}); try again in a moment.")
    return redirect(reverse("admin:handlers_backtest_change", args=[backtest.pk]))


def _refused(model_admin: admin.ModelAdmin, request: HttpRequest, saved: EventHandler | None, *,
             form: forms.Form | None = None, busy: str = "") -> HttpResponse:
    context = {**model_admin.admin_site.each_context(request), "opts": model_admin.model._meta, "original": saved,
               "title": "Backtest not run", "form": form, "busy": busy}
    return TemplateResponse(request, "admin/handlers/eventhandler/backtest_refused.html", context,
                            status=503 if busy else 400)


@admin.register(Backtest)
class BacktestAdmin(AuditAdmin):
    """Backtests run lately (kept BACKTEST_KEEP_HOURS); each one's page is its result."""

    list_display = ("id", "handler_name", "draft", "status", "progress", "counts", "created_by", "created_at")
    list_display_links = ("id", "handler_name")
    list_filter = ("status", "draft")
    list_select_related = ("created_by",)
    search_fields = ("handler_name",)
    search_help_text = "Search by handler name."
    date_hierarchy = "created_at"

    @admin.display(description="progress")
    def progress(self, obj: Backtest) -> str:
        return f"{obj.done} / {obj.expected}"

    @admin.display(description="matched / skipped / failed")
    def counts(self, obj: Backtest) -> str:
        return " / ".join(str((obj.result or {}).get(kind, 0)) for kind in KINDS)

    # A backtest's record is written by running one, never edited; whoever may read handlers may read them.
    def has_view_permission(self, request, obj=None) -> bool:
        return super().has_view_permission(request, obj) or request.user.has_perm("handlers.view_eventhandler")

    def get_urls(self):
        again = self.admin_site.admin_view(self.again_view)
        return [path("<path:object_id>/again/", again, name="handlers_backtest_again"), *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        backtest = self._backtest(request, object_id)
        return self._result(request, backtest, CriteriaForm(initial=_initial(backtest)))

    def again_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Run the same handler again over other messages (compared with the saved version as it is now)."""
        backtest = self._backtest(request, object_id)
        if request.method != "POST":
            return redirect(reverse("admin:handlers_backtest_change", args=[backtest.pk]))
        form = CriteriaForm(request.POST)
        if not form.is_valid():
            return self._result(request, backtest, form)
        handler = EventHandler()
        handler.apply_conductor(backtest.handler)
        name = (backtest.compared_to or {}).get("name")
        compared = EventHandler.objects.filter(name=name).first() if name else None
        return _run(self, request, handler, form.criteria(handler.event), draft=backtest.draft, compared=compared)

    def _backtest(self, request: HttpRequest, object_id: str) -> Backtest:
        backtest = self.get_object(request, unquote(object_id))
        if backtest is None:
            raise Http404("No such backtest (results are kept for a limited time).")
        if not self.has_view_permission(request, backtest):
            raise PermissionDenied
        return backtest

    def _result(self, request: HttpRequest, backtest: Backtest, form: CriteriaForm) -> HttpResponse:
        shown = describe(backtest)
        saved = EventHandler.objects.filter(name=backtest.handler_name).first()
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "original": backtest,
            "title": f"Backtest of {backtest.handler_name}", "backtest": shown, "form": form,
            "saved": saved, "running": not backtest.is_final,
            "window": Criteria.from_json(backtest.criteria),
            "percent": round(100 * backtest.done / backtest.expected) if backtest.expected else 100,
            "api_url": reverse("eventhub-backtest-result", kwargs={"id": backtest.pk}),
            "handler_json": pretty_json(backtest.handler),
            "kinds": [(KIND_TITLES[kind], shown[kind], _samples(shown["samples"].get(kind, []))) for kind in KINDS],
            "differences": _differences(shown["difference"]),
        }
        return TemplateResponse(request, "admin/handlers/backtest/result.html", context)


def _initial(backtest: Backtest) -> dict:
    criteria = Criteria.from_json(backtest.criteria)
    return {"start": criteria.start, "end": criteria.end, "limit": criteria.limit, "outcomes": list(criteria.outcomes)}


def _samples(samples: list[dict]) -> list[dict]:
    return [{**_message(sample), "actions_json": pretty_json(_actions(sample["actions"]))} for sample in samples]


def _differences(difference: dict | None) -> list[tuple[str, str, int, list[dict]]] | None:
    if difference is None:
        return None
    shown = []
    for key, title in DIFFERENCE_TITLES.items():
        samples = [{**_message(sample),
                    "saved_json": pretty_json(_actions(sample["saved"]["actions"])),
                    "draft_json": pretty_json(_actions(sample["draft"]["actions"]))}
                   for sample in difference["samples"][key]]
        shown.append((key, title, difference[key], samples))
    return shown


def _actions(actions: list[dict]) -> list[Any]:
    """What a person reads of each action: its input, or why it cannot be built."""
    return [action["input"] if action["error"] is None else {"error": action["error"]} for action in actions]


def _message(sample: dict) -> dict:
    """A sample with a link to its message and its time as a time."""
    url = reverse("admin:queues_receivedmessage_change", args=[sample["id"]])
    return {**sample, "link": format_html('<a href="{}">{}</a>', url, sample["messageId"]),
            "received": parse_datetime(sample["receivedAt"])}
