"""Form fields for JSON typed into the admin: only what every record can hold, with a reason when not."""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.text import capfirst

from .storable import UnreadableJSON, read_json


def form_json(text: str) -> Any:
    """The JSON of typed text (`read_json`), or a ValidationError saying why it cannot be taken."""
    try:
        return read_json(text)
    except UnreadableJSON as exc:
        raise ValidationError("%(reason)s.", code="invalid", params={"reason": capfirst(str(exc))}) from None


class StorableJSONField(forms.JSONField):
    """Django's JSON field, reading with `read_json`: NaN, Infinity, NUL and JSON nested past what the
    records hold are form errors, where Django's own field would take them (or fail with a
    RecursionError, a 500, on deeply nested text)."""

    def to_python(self, value: Any) -> Any:
        if self.disabled or value in self.empty_values or not isinstance(value, str):
            return super().to_python(value)
        parsed = form_json(value)
        return forms.fields.JSONString(parsed) if isinstance(parsed, str) else parsed

    def bound_data(self, data: Any, initial: Any) -> Any:
        # Shown again with the form's errors: the text as typed, whatever made it unreadable.
        if self.disabled or data is None:
            return super().bound_data(data, initial)
        try:
            return read_json(data)
        except UnreadableJSON:
            return forms.fields.InvalidJSONInput(data)
