"""Input parsing for pages. Bad input gets a clear message and changes nothing."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import CaseStatus, RuleCode

ASSIGNEE_CHOICES = [("", _("anyone")), ("me", _("me")), ("unassigned", _("unassigned"))]
SLA_CHOICES = [("", _("any")), ("due_soon", _("due soon")), ("breached", _("breached"))]
TIER_CHOICES = [("", _("any")), ("1", "T1"), ("2", "T2"), ("3", "T3"), ("4", "T4")]


class QueueFilterForm(forms.Form):
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=[("", _("not resolved")), *CaseStatus.choices]
    )
    family = forms.ChoiceField(label=_("Signal family"), required=False, choices=[("", _("any")), *RuleCode.choices])
    tier = forms.ChoiceField(label=_("Risk tier"), required=False, choices=TIER_CHOICES)
    assignee = forms.ChoiceField(label=_("Assignee"), required=False, choices=ASSIGNEE_CHOICES)
    sla = forms.ChoiceField(label=_("SLA"), required=False, choices=SLA_CHOICES)
    opened_from = forms.DateField(
        label=_("Opened from"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    opened_to = forms.DateField(label=_("Opened to"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    exposure_min = forms.DecimalField(
        label=_("Exposure from"), required=False, min_value=Decimal(0), max_digits=14, decimal_places=2
    )
    exposure_max = forms.DecimalField(
        label=_("Exposure to"), required=False, min_value=Decimal(0), max_digits=14, decimal_places=2
    )
    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=20,
        widget=forms.TextInput(attrs={"placeholder": _("account no. or phone last 4"), "autocomplete": "off"}),
    )

    def clean_q(self) -> str:
        q = self.cleaned_data["q"].strip()
        if q and not (q.isdigit() and len(q) == 4) and not (q[:2].upper() == "JB" and q[2:].isdigit()):
            raise forms.ValidationError(
                _("Search by an account number (JB + 10 digits) or the last 4 digits of a phone")
            )
        return q.upper()

    def clean(self) -> dict:
        data = super().clean() or {}
        if data.get("opened_from") and data.get("opened_to") and data["opened_from"] > data["opened_to"]:
            raise forms.ValidationError(_("'Opened from' is after 'opened to'"))
        if (
            data.get("exposure_min") is not None
            and data.get("exposure_max") is not None
            and data["exposure_min"] > data["exposure_max"]
        ):
            raise forms.ValidationError(_("The exposure range is empty: 'from' is above 'to'"))
        return data
