"""Input parsing for pages. Bad input gets a clear message and changes nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import CaseStatus, DecisionKind, ReasonCode, RuleCode

ASSIGNEE_CHOICES = [("", _("anyone")), ("me", _("me")), ("unassigned", _("unassigned"))]
SLA_CHOICES = [("", _("any")), ("due_soon", _("due soon")), ("breached", _("breached"))]
TIER_CHOICES = [("", _("any")), ("1", "T1"), ("2", "T2"), ("3", "T3"), ("4", "T4")]
MONEY_FIELD: dict[str, Any] = {"min_value": Decimal(0), "max_digits": 14, "decimal_places": 2}


class QueueFilterForm(forms.Form):
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=[("", _("not resolved")), *CaseStatus.choices]
    )
    family = forms.ChoiceField(label=_("Signal family"), required=False, choices=[("", _("any")), *RuleCode.choices])
    tier = forms.TypedChoiceField(
        label=_("Risk tier"), required=False, choices=TIER_CHOICES, coerce=int, empty_value=None
    )
    assignee = forms.ChoiceField(label=_("Assignee"), required=False, choices=ASSIGNEE_CHOICES)
    sla = forms.ChoiceField(label=_("SLA"), required=False, choices=SLA_CHOICES)
    appeal = forms.ChoiceField(label=_("Appeal"), required=False, choices=[("", _("any")), ("open", _("open appeal"))])
    opened_from = forms.DateField(
        label=_("Opened from"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    opened_to = forms.DateField(label=_("Opened to"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    exposure_min = forms.DecimalField(label=_("Exposure from"), required=False, **MONEY_FIELD)
    exposure_max = forms.DecimalField(label=_("Exposure to"), required=False, **MONEY_FIELD)
    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=20,
        widget=forms.TextInput(attrs={"placeholder": _("account no. or phone last 4"), "autocomplete": "off"}),
    )

    def clean_q(self) -> str:
        q = self.cleaned_data["q"].strip().upper()
        if q and not (q.isdigit() and len(q) == 4) and not (q.startswith("JB") and q[2:].isdigit() and len(q) == 12):
            raise forms.ValidationError(
                _("Search by an account number (JB and 10 digits) or the last 4 digits of a phone number")
            )
        return q

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("opened_from") and data.get("opened_to") and data["opened_from"] > data["opened_to"]:
            raise forms.ValidationError(_("'Opened from' is after 'opened to'"))
        low, high = data.get("exposure_min"), data.get("exposure_max")
        if low is not None and high is not None and low > high:
            raise forms.ValidationError(_("The exposure range is empty: 'from' is above 'to'"))
        return data


class DecisionForm(forms.Form):
    kind = forms.ChoiceField(label=_("Decision"), choices=DecisionKind.choices)
    reason_code = forms.ChoiceField(label=_("Reason"), choices=ReasonCode.choices)
    note = forms.CharField(label=_("Note"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
    new_limit = forms.DecimalField(
        label=_("New limit (CNY)"), required=False, help_text=_("Unfreeze: empty means the full limit"), **MONEY_FIELD
    )
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    token = forms.CharField(widget=forms.HiddenInput, max_length=64)


class ReviewForm(forms.Form):
    note = forms.CharField(label=_("Note"), required=False, max_length=2000)


class NoteForm(forms.Form):
    text = forms.CharField(label=_("Note"), max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))


class RevealForm(forms.Form):
    targets = forms.MultipleChoiceField(
        label=_("Reveal"),
        choices=[("name", _("name")), ("phone", _("phone")), ("national_id", _("national id"))],
        widget=forms.CheckboxSelectMultiple,
    )
    reason = forms.CharField(label=_("Reason (audited)"), min_length=10, max_length=500)


class BulkForm(forms.Form):
    action = forms.ChoiceField(choices=[("assign", "assign"), ("release", "release"), ("reevaluate", "reevaluate")])
    case_ids = forms.TypedMultipleChoiceField(coerce=int, choices=[])
    assignee = forms.IntegerField(required=False, min_value=1)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Any id is syntactically fine here; the service decides which cases can change.
        raw = self.data.getlist("case_ids") if hasattr(self.data, "getlist") else []
        self.fields["case_ids"].choices = [(v, v) for v in raw]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("action") == "assign" and not data.get("assignee"):
            raise forms.ValidationError(_("Choose the operator to assign the cases to"))
        if len(data.get("case_ids") or []) > 500:
            raise forms.ValidationError(_("Select at most 500 cases at a time"))
        return data
