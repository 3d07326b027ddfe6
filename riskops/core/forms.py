"""Form fields every entry point shares, so that an id, a list of ids or a day out of range gets the form's message
(never a database error, never a 500)."""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

MAX_ID = 2**63 - 1  # PostgreSQL's bigint: every id column
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2999, 12, 31)


class IdField(forms.IntegerField):
    """One id: a whole number from 1 to MAX_ID (whether it exists is the service's question)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=1, max_value=MAX_ID, **kwargs)


class IdsField(forms.Field):
    """Ids from checkboxes or a list: each a whole number from 1 to MAX_ID, at most `max_count` of them."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {
        "invalid_id": _("%(value)s is not an id (a whole number from 1 to %(max)s)"),
        "too_many": _("At most %(max)s at a time"),
    }

    def __init__(self, *, max_count: int = 500, **kwargs: Any) -> None:
        self.max_count = max_count
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> list[int]:
        values = value if isinstance(value, list | tuple) else ([] if value in (None, "") else [value])
        ids = []
        for raw in values:
            text = str(raw).strip()
            if not text.isdigit() or not 1 <= int(text) <= MAX_ID:
                raise forms.ValidationError(
                    self.error_messages["invalid_id"], code="invalid_id", params={"value": text[:30], "max": MAX_ID}
                )
            ids.append(int(text))
        if len(ids) > self.max_count:
            raise forms.ValidationError(
                self.error_messages["too_many"], code="too_many", params={"max": self.max_count}
            )
        return ids


class DayField(forms.DateField):
    """A day from FIRST_DAY to LAST_DAY (a day past the end of the calendar cannot be a bound: 9999-12-31 + 1)."""

    default_error_messages = {"out_of_range": _("Enter a date from %(first)s to %(last)s.")}

    def validate(self, value: Any) -> None:
        super().validate(value)
        if value and not FIRST_DAY <= value <= LAST_DAY:
            raise forms.ValidationError(
                self.error_messages["out_of_range"],
                code="out_of_range",
                params={"first": FIRST_DAY.isoformat(), "last": LAST_DAY.isoformat()},
            )
