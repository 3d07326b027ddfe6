"""The dashboard's date range: whole days in the platform's time zone, today at the latest, at most a few hundred."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.figures import MAX_FIGURE_DAYS
from riskops.core.forms import DayField

DEFAULT_DAYS = 90
CHARTS = ("freezes", "stock", "flow", "appeals", "decision_time", "tiers", "operators", "overturn")


class DashboardForm(forms.Form):
    start = DayField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = DayField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        today = timezone.localdate()
        end = data.get("end") or today
        start = data.get("start") or end - timedelta(days=DEFAULT_DAYS - 1)
        if end > today:
            raise forms.ValidationError(_("The last day is in the future (today is %(today)s)") % {"today": today})
        if start > end:
            raise forms.ValidationError(_("'From' is after 'to'"))
        if (end - start).days + 1 > MAX_FIGURE_DAYS:
            raise forms.ValidationError(_("The dashboard shows at most %(days)s days") % {"days": MAX_FIGURE_DAYS})
        data["start"], data["end"] = start, end
        return data

    def days(self) -> tuple[date, date]:
        return self.cleaned_data["start"], self.cleaned_data["end"]


class CsvForm(forms.Form):
    chart = forms.ChoiceField(choices=[(c, c) for c in CHARTS])
