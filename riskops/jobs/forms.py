"""Input parsing for the jobs pages. Bad input gets a clear message and changes nothing."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from django import forms
from django.utils.translation import gettext_lazy as _

from riskops.core.forms import IdField, IdsField
from riskops.models import JobSelection, selection_kind_choices


class JobForm(forms.Form):
    """A job from the queue (the selected cases or the current filter) or from a case page (its account)."""

    kind = forms.ChoiceField(label=_("Job"), choices=selection_kind_choices)
    selection_kind = forms.ChoiceField(choices=JobSelection.choices)
    case_ids = IdsField(required=False, max_count=100_000)
    line_id = IdField(required=False)
    query = forms.CharField(required=False, max_length=2000)
    reason = forms.CharField(label=_("Why"), required=False, max_length=500)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("selection_kind")
        if kind == JobSelection.IDS and not (data.get("case_ids") or data.get("line_id")):
            raise forms.ValidationError(_("Select at least one case, or use the current filter"))
        if kind == JobSelection.FILTER:
            data["filter"] = {k: v for k, v in parse_qsl(data.get("query") or "") if k != "after"}
        return data
