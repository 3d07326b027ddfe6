"""The borrower's profile update form (the appeal forms are the appeals app's)."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from appeals.forms import DocumentsField, MultipleFileInput

MAX_INCOME = Decimal("10000000")  # a monthly income above ¥10M is a typing error


class ProfileUpdateForm(forms.Form):
    employer = forms.CharField(label=_("Employer"), max_length=80, min_length=2)
    monthly_income = forms.DecimalField(
        label=_("Monthly income (CNY)"),
        min_value=Decimal("0"),
        max_value=MAX_INCOME,
        max_digits=14,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"inputmode": "decimal", "step": "0.01"}),
    )
    documents = DocumentsField(
        label=_("Proof of income (PDF, JPG or PNG): needed when your income changed"),
        required=False,
        widget=MultipleFileInput(attrs={"accept": "application/pdf,image/jpeg,image/png"}),
    )
