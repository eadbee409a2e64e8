"""Admin forms for event handlers: JSON edited as pretty text, and the import of Conductor JSON files.

Neither form has validation rules of its own: both hand the handler to the model (`clean()` and
`apply_conductor()`), the single source, and only present its errors.
"""

import json
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction

from eventhub.lib.forms import StorableJSONField, form_json

from .actions import NO_ACTIONS
from .changes import save_handler
from .conditions import EVALUATOR_TYPES
from .models import CONDUCTOR_NAMES, MISSING_EVENT, MISSING_NAME, EventHandler, normalize_actions

# The order people read a handler in; keys not named here follow in their stored order.
READING_ORDER = list(CONDUCTOR_NAMES.values())
CODE_ATTRS = {"spellcheck": "false", "style": "font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace"}


def pretty_json(value: Any) -> str:
    """Indented JSON with a handler's own keys in reading order (PostgreSQL's jsonb sorts them by length)."""
    if isinstance(value, dict):
        rank = {key: position for position, key in enumerate(READING_ORDER)}
        value = {key: value[key] for key in sorted(value, key=lambda key: rank.get(key, len(rank)))}
    return json.dumps(value, indent=2, ensure_ascii=False)


def without_redundant(error_dict: dict[str, list]) -> dict[str, list]:
    """Drop Django's generic "cannot be blank/null" for a field the model's own rules explain more precisely."""
    kept = {}
    for field, errors in error_dict.items():
        precise = any("path" in (error.params or {}) for error in errors)
        kept[field] = [error for error in errors if not (precise and error.code in ("blank", "null"))]
    return kept


def error_lines(error: ValidationError) -> list[str]:
    """Each message of a model ValidationError, prefixed with its Conductor path when it has none yet."""
    if hasattr(error, "error_dict"):
        groups = without_redundant(error.error_dict)
    else:
        groups = {NON_FIELD_ERRORS: error.error_list}
    lines = []
    for field, errors in groups.items():
        for item in errors:
            # Model rules (`problem()`) carry their path; Django's field rules ("cannot be blank") do not.
            has_path = field == NON_FIELD_ERRORS or "path" in (item.params or {})
            lines.extend(message if has_path else f"{CONDUCTOR_NAMES.get(field, field)}: {message}" for message in item)
    return lines


class PrettyJSONField(StorableJSONField):
    """A JSON textarea that shows its value indented and explains where invalid input broke."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value  # Give people back exactly what they typed, so they can fix it.
        return json.dumps(value, indent=2, ensure_ascii=False)

    def validate(self, value: Any) -> None:
        # `[]` is a value the model has a message for (Conductor's "No actions specified"); only a blank box
        # is missing, and it says the same.
        if value is None and self.required:
            raise ValidationError(self.error_messages["required"], code="required")


EVALUATOR_CHOICES = [("", "javascript (default)")] + [
    (name, name if canonical == name else f"{name} (same as {canonical})")
    for name, canonical in EVALUATOR_TYPES.items()
]


class EventHandlerForm(forms.ModelForm):
    actions = PrettyJSONField(
        error_messages={"required": NO_ACTIONS},
        widget=forms.Textarea(attrs={"rows": 16, "cols": 90, **CODE_ATTRS}),
        help_text="A JSON list of Conductor actions, e.g. "
        '<code>[{"action": "start_workflow", "start_workflow": {"name": "shipping_workflow", "version": 1, '
        '"input": {"address": "${address}"}}}]</code>. Kinds: start_workflow, complete_task, fail_task, '
        "terminate_workflow, update_workflow_variables. Errors name the place, e.g. "
        "<code>actions[0].start_workflow.name</code>; null fields are dropped on save.",
    )

    loaded_revision = forms.IntegerField(
        widget=forms.HiddenInput, required=False, help_text="The revision this form was opened at."
    )

    class Meta:
        model = EventHandler
        fields = ["name", "event", "active", "mode", "description", "condition", "evaluator_type", "actions"]
        widgets = {
            "event": forms.TextInput(attrs={"size": 80, "placeholder": "sqs:shipping_start"}),
            "condition": forms.Textarea(attrs={"rows": 3, "cols": 90, **CODE_ATTRS}),
            "description": forms.Textarea(attrs={"rows": 3, "cols": 90}),
            # A select for convenience, but still a free CharField: the model decides what is valid.
            "evaluator_type": forms.Select(choices=EVALUATOR_CHOICES),
        }
        # The model's (Conductor's) texts, for a box left empty here too.
        error_messages = {"name": {"required": MISSING_NAME}, "event": {"required": MISSING_EVENT}}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "active" in self.fields and self.instance.pk is None:
            self.fields["active"].initial = True
            self.fields["active"].help_text = (
                "Only active handlers run. New handlers made here start <strong>active</strong>; "
                "through the API a handler sent without <code>active</code> is inactive (Conductor's rule)."
            )
        if "mode" in self.fields:
            # (a form posted without it, by a script or an older page, keeps the handler's mode, as the API does)
            self.fields["mode"].required = False
        if "loaded_revision" in self.fields and self.instance.pk is not None:
            self.fields["loaded_revision"].initial = self.instance.revision

    def clean(self) -> dict:
        # Two people editing one handler: the later save would silently undo the earlier one. Refuse it
        # once, and arm the form so that saving again knowingly overwrites.
        cleaned = super().clean()
        loaded = cleaned.get("loaded_revision")
        current = self.instance.revision
        if self.instance.pk is None or loaded is None or loaded == current:
            return cleaned
        self.data = self.data.copy()
        self.data[self.add_prefix("loaded_revision")] = str(current)
        raise ValidationError(
            "Someone saved revision %(current)s of this handler after you opened revision %(loaded)s; "
            "your edits are kept below but not saved. Compare with its history, then save again to overwrite.",
            code="stale",
            params={"current": current, "loaded": loaded},
        )

    def clean_mode(self) -> str:
        return self.cleaned_data.get("mode") or self.instance.mode

    def clean_actions(self) -> Any:
        # The API drops null fields of actions; the admin stores the same shape.
        return normalize_actions(self.cleaned_data["actions"])

    def _update_errors(self, errors: ValidationError) -> None:
        # Django's version swaps a model message for the form field's own when their codes match; the
        # model's `problem()` errors are code "invalid", which the JSON field would turn into a bare
        # "Enter a valid JSON.", losing the path. So the model's messages are added as they are, except:
        # the model judges the instance, which still holds the old value of a field that did not parse,
        # and its verdict there would contradict the form's own message; and an error for a field this
        # form lacks is shown at the top instead of crashing the page.
        error_dict = without_redundant(errors.error_dict) if hasattr(errors, "error_dict") else {
            NON_FIELD_ERRORS: errors.error_list
        }
        kept: dict[str, list] = {}
        for field, messages in error_dict.items():
            if field in self._errors and field != NON_FIELD_ERRORS:
                continue
            kept.setdefault(field if field in self.fields else NON_FIELD_ERRORS, []).extend(messages)
        if kept:
            self.add_error(None, ValidationError(kept))


class HandlerImportForm(forms.Form):
    """Upload Conductor JSON (a list of handlers or one handler); validated whole before anything is written."""

    file = forms.FileField(
        label="Conductor JSON file",
        help_text="A JSON list of event handlers (as exported here or by Conductor's <code>GET /api/event</code>), "
        "or a single handler object. Handlers whose name exists are updated, the others created. "
        "A handler without <code>active</code> is imported inactive (Conductor's rule).",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.plan: list[tuple[EventHandler, str]] = []

    def clean_file(self) -> list:
        upload = self.cleaned_data["file"]
        if upload.size > settings.REQUEST_MAX_BYTES:  # (a request this large is refused before it gets here)
            raise ValidationError(f"The file is larger than {settings.REQUEST_MAX_BYTES} bytes (REQUEST_MAX_BYTES).")
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValidationError("The file is not UTF-8 text; export the handlers as JSON and upload that.")
        items = form_json(text)
        items = [items] if isinstance(items, dict) else items
        if not isinstance(items, list):
            raise ValidationError("The file must hold a JSON list of event handlers or one handler object.")
        if not items:
            raise ValidationError("The file holds no event handlers.")
        return items

    def clean(self) -> dict:
        items = self.cleaned_data.get("file")
        if items is not None:
            self.plan, problems = plan_import(items)
            if problems:
                raise ValidationError(problems)
        return self.cleaned_data

    def save(self, *, user) -> dict[str, int]:
        """Write every planned handler in one transaction, each as a revision; counts by outcome."""
        counts = {"created": 0, "updated": 0, "unchanged": 0}
        with transaction.atomic():
            for handler, outcome in self.plan:
                counts[outcome] += 1
                if outcome != "unchanged":
                    save_handler(handler, user=user, source="import")
        return counts


def _label(index: int, item: Any) -> str:
    name = item.get("name") if isinstance(item, dict) else None
    return f"#{index + 1} “{name}”" if isinstance(name, str) and name else f"#{index + 1}"


def plan_import(items: list) -> tuple[list[tuple[EventHandler, str]], list[str]]:
    """Validate every item with the model; returns (handler, created/updated/unchanged) pairs and all problems."""
    names = [item["name"] for item in items if isinstance(item, dict) and isinstance(item.get("name"), str)]
    existing = {handler.name: handler for handler in EventHandler.objects.filter(name__in=names)}
    first_seen: dict[str, int] = {}
    plan, problems = [], []
    for index, item in enumerate(items):
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str) and name in first_seen:
            earlier = first_seen[name] + 1
            problems.append(f"{_label(index, item)}: name: the file already has a handler of this name at #{earlier}")
            continue
        if isinstance(name, str):
            first_seen[name] = index
        handler = existing.get(name) if isinstance(name, str) else None
        before = handler.to_conductor() if handler else None
        handler = handler or EventHandler()
        try:
            handler.apply_conductor(item)
            handler.full_clean()
        except ValidationError as exc:
            problems.extend(f"{_label(index, item)}: {line}" for line in error_lines(exc))
            continue
        outcome = "created" if before is None else "unchanged" if before == handler.to_conductor() else "updated"
        plan.append((handler, outcome))
    return plan, problems
