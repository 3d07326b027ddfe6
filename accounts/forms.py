"""Input parsing for pages. Bad input gets a clear message and changes nothing."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import DecisionKind, ReasonCode, RuleCode
from accounts.queue_filters import MONEY_FIELD
from accounts.services.decisions import KINDS_FOR_STATE
from riskops.core.forms import IdField, IdsField


class DecisionForm(forms.Form):
    kind = forms.ChoiceField(label=_("Decision"), choices=DecisionKind.choices)
    reason_code = forms.ChoiceField(label=_("Reason"), choices=ReasonCode.choices)
    note = forms.CharField(label=_("Note"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
    new_limit = forms.DecimalField(
        label=_("New limit (CNY)"), required=False, help_text=_("Unfreeze: empty means the full limit"), **MONEY_FIELD
    )
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    token = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args: Any, line_state: str = "frozen", **kwargs: Any) -> None:
        """`line_state` (frozen, cut, active: `accounts.services.decisions.line_state`) decides the choices: a cut
        line is restored or kept cut, a frozen one unfrozen or kept frozen."""
        super().__init__(*args, **kwargs)
        labels = dict(DecisionKind.choices)
        field = self.fields["kind"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(kind.value, labels[kind]) for kind in KINDS_FOR_STATE[line_state]]


class ReviewForm(forms.Form):
    note = forms.CharField(label=_("Note"), required=False, max_length=2000)


class NoteForm(forms.Form):
    text = forms.CharField(label=_("Note"), max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))
    token = forms.CharField(widget=forms.HiddenInput, max_length=64, required=False)


class ExemptionForm(forms.Form):
    code = forms.ChoiceField(label=_("Rule"), choices=RuleCode.choices)
    until = forms.DateField(label=_("Until the end of"), widget=forms.DateInput(attrs={"type": "date"}))
    reason = forms.CharField(label=_("Why"), max_length=1000, widget=forms.Textarea(attrs={"rows": 2}))


class RevealForm(forms.Form):
    targets = forms.MultipleChoiceField(
        label=_("Reveal"),
        choices=[("name", _("name")), ("phone", _("phone")), ("national_id", _("national id"))],
        widget=forms.CheckboxSelectMultiple,
    )
    reason = forms.CharField(label=_("Reason (audited)"), min_length=10, max_length=500)


class BulkForm(forms.Form):
    """The queue's bulk actions: assign and release, and those other apps add (`accounts.hooks.queue_actions`)."""

    action = forms.ChoiceField(choices=[("assign", "assign"), ("release", "release")])
    # Any id is fine here; the service decides which cases can change.
    case_ids = IdsField(
        error_messages={"required": _("Select at least one case"), "too_many": _("Select at most 500 cases at a time")}
    )
    assignee = IdField(required=False)

    def __init__(self, *args: Any, actions: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [("assign", "assign"), ("release", "release"), *((a, a) for a in actions or [])]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("action") == "assign" and not data.get("assignee"):
            raise forms.ValidationError(_("Choose the operator to assign the cases to"))
        return data
