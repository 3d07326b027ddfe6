"""The audit page's filter, as its query string carries it (the page and the export read the same form)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.queue_filters import line_search_term
from accounts.templatetags.console_text import object_text
from riskops.audit_trail import selectors
from riskops.audit_trail.catalogue import ACTION_LABELS, ACTOR_KINDS
from riskops.core.forms import DayField, IdField

OBJECT_TYPES = [
    "credit_line",
    "signal",
    "case",
    "decision",
    "note",
    "appeal",
    "appeal_document",
    "borrower",
    "job",
    "ingest_batch",
    "ruleset",
    "audit_event",
    "user",
]


class AuditFilterForm(forms.Form):
    actor_kind = forms.ChoiceField(label=_("Actor"), required=False, choices=[("", _("any")), *ACTOR_KINDS])
    operator = forms.CharField(
        label=_("Operator"),
        required=False,
        max_length=150,
        widget=forms.TextInput(attrs={"placeholder": _("user name"), "autocomplete": "off"}),
    )
    action = forms.ChoiceField(label=_("Action"), required=False)
    object_type = forms.ChoiceField(label=_("Object"), required=False)
    object_id = IdField(label=_("Object id"), required=False)
    account = forms.CharField(
        label=_("Account"),
        required=False,
        max_length=64,
        widget=forms.TextInput(attrs={"placeholder": _("account no. or phone last 4"), "autocomplete": "off"}),
    )
    day_from = DayField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    day_to = DayField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    # The keyset cursors (ids): the page's older and newer links.
    before = IdField(required=False, widget=forms.HiddenInput)
    after = IdField(required=False, widget=forms.HiddenInput)

    FILTER_FIELDS = ("actor_kind", "operator", "action", "object_type", "object_id", "account", "day_from", "day_to")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Built per form, so that the labels are in the reader's language.
        self.fields["action"].choices = [  # type: ignore[attr-defined]
            ("", _("any")),
            *sorted(((code, f"{label} · {code}") for code, label in ACTION_LABELS.items()), key=lambda c: c[0]),
        ]
        self.fields["object_type"].choices = [  # type: ignore[attr-defined]
            ("", _("any")),
            *((t, object_text(t)) for t in OBJECT_TYPES),
        ]

    def clean_operator(self) -> str:
        return str(self.cleaned_data["operator"]).strip()

    def clean_account(self) -> str:
        return line_search_term(self.cleaned_data["account"])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("day_from") and data.get("day_to") and data["day_from"] > data["day_to"]:
            raise forms.ValidationError(_("'From' is after 'to'"))
        if data.get("before") and data.get("after"):
            raise forms.ValidationError(_("A page is either older or newer than another, not both"))
        if data.get("object_id") and not data.get("object_type"):
            self.add_error("object_id", _("Choose the object's type with its id"))
        return data

    def filters(self) -> selectors.AuditFilters:
        """The checked filter, with the operator and the account found (their errors go into the form)."""
        data = self.cleaned_data
        user_id = account_ids = None
        if data["operator"]:
            user_id = selectors.operator_id(data["operator"])
            if user_id is None:
                self.add_error("operator", _("No operator has the user name %(name)s") % {"name": data["operator"]})
        if data["account"]:
            found = selectors.account_ids(data["account"])
            if not found:
                self.add_error("account", _("No account number or phone matches %(q)s") % {"q": data["account"]})
            elif len(found) > selectors.ACCOUNT_MATCHES_MAX:
                self.add_error(
                    "account",
                    _("%(q)s matches more than %(n)s accounts: type more of the account number")
                    % {"q": data["account"], "n": selectors.ACCOUNT_MATCHES_MAX},
                )
            account_ids = tuple(found)
        return selectors.AuditFilters(
            actor_kind=data["actor_kind"],
            actor_user_id=user_id,
            action=data["action"],
            object_type=data["object_type"],
            object_id=data["object_id"],
            account_ids=account_ids,
            day_from=data["day_from"],
            day_to=data["day_to"],
        )

    def query(self) -> dict[str, str]:
        """The filter as typed (the export's audit record): only the fields given."""
        data = self.cleaned_data
        return {
            name: data[name].isoformat() if hasattr(data[name], "isoformat") else str(data[name])
            for name in self.FILTER_FIELDS
            if data.get(name) not in (None, "")
        }
