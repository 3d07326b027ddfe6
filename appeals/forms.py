"""Input parsing for the appeal pages. Bad input gets a clear message and changes nothing."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.figures import MAX_FIGURE_DAYS
from accounts.forms import MONEY_FIELD
from accounts.queue_filters import ASSIGNEE_CHOICES, SLA_CHOICES
from accounts.validation import ACCOUNT_REF
from appeals import replies
from appeals.figures import FIGURE_CHOICES
from appeals.models import AppealReason, AppealStatus
from appeals.selectors import InboxFilters
from riskops.core.forms import DayField, IdField, IdsField

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


# The inbox's status filter (the keys of `appeals.selectors.INBOX_STATUSES`); tabs link to three of them.
_STATUS_LABELS = dict(AppealStatus.choices)
INBOX_STATUS_CHOICES = [
    ("", _STATUS_LABELS[AppealStatus.OPEN]),
    (AppealStatus.AWAITING_APPROVAL.value, _STATUS_LABELS[AppealStatus.AWAITING_APPROVAL]),
    (AppealStatus.AWAITING_INFO.value, _STATUS_LABELS[AppealStatus.AWAITING_INFO]),
    ("decided", _("decided, any outcome")),
    (AppealStatus.APPROVED.value, _STATUS_LABELS[AppealStatus.APPROVED]),
    (AppealStatus.APPROVED_IN_PART.value, _STATUS_LABELS[AppealStatus.APPROVED_IN_PART]),
    (AppealStatus.REJECTED.value, _STATUS_LABELS[AppealStatus.REJECTED]),
    ("all", _("any status")),
]
# The inbox's tabs: shortcuts to three of those statuses, the other filters kept.
INBOX_TABS = [
    ("", _("In review")),
    (AppealStatus.AWAITING_INFO.value, _("Waiting for the borrower")),
    ("decided", _("Decided")),
]
# The queue's SLA states, and the one an appeal's clock adds before "due soon".
INBOX_SLA_CHOICES = [SLA_CHOICES[0], ("within", _("on time")), *SLA_CHOICES[1:]]
_APPEAL_NO = re.compile(r"#\d{1,18}")


class InboxFilterForm(forms.Form):
    """The inbox's filter, as the page's query string carries it."""

    status = forms.ChoiceField(label=_("Status"), required=False, choices=INBOX_STATUS_CHOICES)
    reason = forms.ChoiceField(label=_("Reason"), required=False, choices=[("", _("any")), *AppealReason.choices])
    sla = forms.ChoiceField(label=_("SLA"), required=False, choices=INBOX_SLA_CHOICES)
    assignee = forms.ChoiceField(label=_("Assignee"), required=False, choices=ASSIGNEE_CHOICES)
    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=64,
        widget=forms.TextInput(attrs={"placeholder": _("#appeal, account no. or phone last 4"), "autocomplete": "off"}),
    )

    figure = forms.ChoiceField(required=False, choices=[("", "-"), *((f, f) for f in FIGURE_CHOICES)])
    figure_from = DayField(required=False)
    figure_to = DayField(required=False)
    figure_key = forms.ChoiceField(required=False, choices=[("", "-"), ("in_sla", "in_sla"), ("late", "late")])

    def __init__(self, *args: Any, operators: Iterable[Any] = (), **kwargs: Any) -> None:
        """`operators`: those an appeal can be assigned to, each a choice of the assignee filter by id."""
        super().__init__(*args, **kwargs)
        field = self.fields["assignee"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [*ASSIGNEE_CHOICES, *((str(u.pk), u.get_username()) for u in operators)]

    def clean_q(self) -> str:
        # The queue's search (an account number as upstreams write it, or a phone's last 4), and an appeal's number.
        q = self.cleaned_data["q"].strip()
        if q and not _APPEAL_NO.fullmatch(q) and not ACCOUNT_REF.fullmatch(q):
            raise forms.ValidationError(
                _(
                    "Search by an appeal number (#12), an account number (letters, digits and . _ : / -) or the "
                    "last 4 digits of a phone number"
                )
            )
        return q

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("figure_from"), data.get("figure_to")
        if data.get("figure") and not (start and end):
            raise forms.ValidationError(_("A dashboard figure needs its first and last day"))
        if start and end and start > end:
            raise forms.ValidationError(_("The figure's first day is after its last day"))
        if start and end and (end - start).days + 1 > MAX_FIGURE_DAYS:
            raise forms.ValidationError(_("A figure spans at most %(days)s days") % {"days": MAX_FIGURE_DAYS})
        return data

    def filters(self) -> InboxFilters:
        """The checked filter; the whole inbox when the form is unbound or not valid."""
        if not self.is_bound or not self.is_valid():
            return InboxFilters()
        return InboxFilters(**self.cleaned_data)


class InboxActionForm(forms.Form):
    """The inbox's actions on the selected appeals: claim them, assign them to an operator, release them."""

    action = forms.ChoiceField(choices=[("claim", "claim"), ("assign", "assign"), ("release", "release")])
    # Any id is fine here; the service decides which appeals can change.
    appeal_ids = IdsField(
        error_messages={
            "required": _("Select at least one appeal"),
            "too_many": _("Select at most 500 appeals at a time"),
        }
    )
    assignee = IdField(required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("action") == "assign" and not data.get("assignee"):
            raise forms.ValidationError(_("Choose the operator to assign the appeals to"))
        return data
