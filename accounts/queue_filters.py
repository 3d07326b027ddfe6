"""The queue's filter: what an operator narrows the queue to, as the page's form reads it and a job saves it.

`QueueFilterForm` parses and checks it (a page's query string, a saved job selection); `QueueFilters` is the
checked value that `accounts.selectors.queue.queue_queryset` reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django import forms
from django.utils.translation import gettext as _gettext
from django.utils.translation import gettext_lazy as _

from accounts.figures import FIGURE_CHOICES, MAX_FIGURE_DAYS, NOW_FIGURES
from accounts.models import CaseStatus, RuleCode
from accounts.validation import ACCOUNT_REF
from riskops.core.errors import DomainError
from riskops.core.forms import DayField

MONEY_FIELD: dict[str, Any] = {"min_value": Decimal(0), "max_digits": 14, "decimal_places": 2}


def line_search_term(value: object) -> str:
    """A search by account (`selectors.queue.by_line_search`) as typed: an account number or a phone's last 4 digits;
    anything else is the field's error."""
    q = str(value).strip()
    if q and not (q.isdigit() and len(q) == 4) and not ACCOUNT_REF.fullmatch(q):
        raise forms.ValidationError(
            _("Search by an account number (letters, digits and . _ : / -) or the last 4 digits of a phone number")
        )
    return q


@dataclass
class QueueFilters:
    status: str = ""
    family: str = ""
    tier: int | None = None
    assignee: str = ""  # "", "me", "unassigned"
    sla: str = ""  # "", "due_soon", "breached"
    opened_from: date | None = None
    opened_to: date | None = None
    exposure_min: Decimal | None = None
    exposure_max: Decimal | None = None
    q: str = ""
    appeal: str = ""  # "", "open": only cases with an open appeal
    # A dashboard figure's cases (accounts.figures), whatever their status: the figure, its days and its key.
    figure: str = ""
    figure_from: date | None = None
    figure_to: date | None = None
    figure_key: str = ""


ASSIGNEE_CHOICES = [("", _("anyone")), ("me", _("me")), ("unassigned", _("unassigned"))]
SLA_CHOICES = [("", _("any")), ("due_soon", _("due soon")), ("breached", _("breached"))]
# The queue's SLA filter also has "on time" (neither due soon nor breached), the dashboard's third state.
QUEUE_SLA_CHOICES = [SLA_CHOICES[0], ("within", _("on time")), *SLA_CHOICES[1:]]
FIGURE_KEY = re.compile(r"[A-Za-z0-9_:]{0,40}")
TIER_CHOICES = [("", _("any")), ("1", "T1"), ("2", "T2"), ("3", "T3"), ("4", "T4")]


class QueueFilterForm(forms.Form):
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=[("", _("not resolved")), *CaseStatus.choices]
    )
    family = forms.ChoiceField(label=_("Signal family"), required=False, choices=[("", _("any")), *RuleCode.choices])
    tier = forms.TypedChoiceField(
        label=_("Risk tier"), required=False, choices=TIER_CHOICES, coerce=int, empty_value=None
    )
    assignee = forms.ChoiceField(label=_("Assignee"), required=False, choices=ASSIGNEE_CHOICES)
    sla = forms.ChoiceField(label=_("SLA"), required=False, choices=QUEUE_SLA_CHOICES)
    appeal = forms.ChoiceField(label=_("Appeal"), required=False, choices=[("", _("any")), ("open", _("open appeal"))])
    opened_from = DayField(label=_("Opened from"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    opened_to = DayField(label=_("Opened to"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    exposure_min = forms.DecimalField(label=_("Exposure from"), required=False, **MONEY_FIELD)
    exposure_max = forms.DecimalField(label=_("Exposure to"), required=False, **MONEY_FIELD)
    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=64,
        widget=forms.TextInput(attrs={"placeholder": _("account no. or phone last 4"), "autocomplete": "off"}),
    )

    figure = forms.ChoiceField(
        label=_("Dashboard figure"), required=False, choices=[("", "-"), *((f, f) for f in FIGURE_CHOICES)]
    )
    figure_from = DayField(required=False)
    figure_to = DayField(required=False)
    figure_key = forms.CharField(required=False, max_length=40)

    def clean_q(self) -> str:
        return line_search_term(self.cleaned_data["q"])

    def clean_figure_key(self) -> str:
        key = self.cleaned_data["figure_key"].strip()
        if not FIGURE_KEY.fullmatch(key):
            raise forms.ValidationError(_("A figure's key is letters, digits, _ and : (at most 40)"))
        return key

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("opened_from") and data.get("opened_to") and data["opened_from"] > data["opened_to"]:
            raise forms.ValidationError(_("'Opened from' is after 'opened to'"))
        figure, start, end = data.get("figure"), data.get("figure_from"), data.get("figure_to")
        if figure and figure not in NOW_FIGURES and not (start and end):
            raise forms.ValidationError(_("A dashboard figure needs its first and last day"))
        if start and end and start > end:
            raise forms.ValidationError(_("The figure's first day is after its last day"))
        if start and end and (end - start).days + 1 > MAX_FIGURE_DAYS:
            raise forms.ValidationError(_("A figure spans at most %(days)s days") % {"days": MAX_FIGURE_DAYS})
        low, high = data.get("exposure_min"), data.get("exposure_max")
        if low is not None and high is not None and low > high:
            raise forms.ValidationError(_("The exposure range is empty: 'from' is above 'to'"))
        return data


def queue_filters(params: dict[str, Any]) -> QueueFilters:
    """A saved queue filter (a job's selection) as QueueFilters, checked by the queue's own form."""
    form = QueueFilterForm({k: v for k, v in params.items() if not k.startswith("_")})
    if not form.is_valid():
        raise DomainError(
            _gettext("The queue filter is not valid: %(errors)s")
            % {"errors": "; ".join(f"{k}: {' '.join(str(e) for e in v)}" for k, v in form.errors.items())}
        )
    return QueueFilters(**form.cleaned_data)
