"""Input parsing for the appeal pages. Bad input gets a clear message and changes nothing."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.forms import MONEY_FIELD
from appeals import replies
from appeals.models import AppealReason

OUTCOME_CHOICES = [
    (replies.APPROVE, _("Approve: unfreeze at the full limit")),
    (replies.APPROVE_IN_PART, _("Approve in part: unfreeze at a lower limit")),
    (replies.REJECT, _("Reject: keep the line frozen")),
    (replies.REQUEST_INFO, _("Request more information (pauses the SLA)")),
]


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class DocumentsField(forms.FileField):
    """Renders the multiple-file input; the files themselves are checked by appeals.documents in the service."""

    def clean(self, data: object, initial: object = None) -> object:
        return None


class BorrowerAppealForm(forms.Form):
    reason = forms.ChoiceField(label=_("Reason"), choices=AppealReason.choices, widget=forms.RadioSelect)
    statement = forms.CharField(
        label=_("What happened"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 5, "placeholder": _("Explain in a few sentences; attach proof below.")}),
    )
    documents = DocumentsField(
        label=_("Documents (PDF, JPG or PNG, up to 5, at most 10 MB each)"),
        required=False,
        widget=MultipleFileInput(attrs={"accept": "application/pdf,image/jpeg,image/png"}),
    )


class MoreInfoForm(forms.Form):
    note = forms.CharField(
        label=_("Your answer"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 4})
    )
    documents = DocumentsField(
        label=_("Documents (PDF, JPG or PNG, up to 5, at most 10 MB each)"),
        required=False,
        widget=MultipleFileInput(attrs={"accept": "application/pdf,image/jpeg,image/png"}),
    )


class AppealDecisionForm(forms.Form):
    outcome = forms.ChoiceField(label=_("Outcome"), choices=OUTCOME_CHOICES)
    reply = forms.CharField(label=_("Reply to the borrower"), max_length=500, widget=forms.Textarea(attrs={"rows": 4}))
    new_limit = forms.DecimalField(label=_("New limit (CNY)"), required=False, **MONEY_FIELD)
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
