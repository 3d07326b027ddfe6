"""The rules pages' forms: a draft from a version, one rule of a draft, a comparison, an activation."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import CounterpartyCategory, Rule, RuleAction, RuleSet, Severity
from accounts.rule_params import PARAMS
from accounts.services.rulesets import MAX_NOTE
from riskops.core.forms import IdField


class DraftForm(forms.Form):
    source = forms.ModelChoiceField(
        label=_("Copy version"), queryset=RuleSet.objects.order_by("-version"), to_field_name="version"
    )
    note = forms.CharField(label=_("What the draft is for"), max_length=MAX_NOTE, required=False)


class CompareForm(forms.Form):
    other = forms.ModelChoiceField(
        label=_("Compare with version"), queryset=RuleSet.objects.order_by("-version"), to_field_name="version"
    )


class BacktestForm(forms.Form):
    days = forms.IntegerField(label=_("Days back"), min_value=1, max_value=400, initial=90)


class ShadowForm(forms.Form):
    until = forms.DateField(label=_("In shadow until the end of"), widget=forms.DateInput(attrs={"type": "date"}))


class ActivateForm(forms.Form):
    """The approval of a draft: the simulation and backtest the approver reviewed, the reason (typed above the blast radius),
    and whether the accounts it names are re-evaluated at once."""

    simulation = IdField(widget=forms.HiddenInput)
    backtest = IdField(widget=forms.HiddenInput)
    reason = forms.CharField(label=_("Why"), max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    reevaluate = forms.BooleanField(
        label=_("Then re-evaluate the accounts it names (and unfreeze those no freezing signal holds)"),
        required=False,
        initial=True,
    )


RESTORE_CHOICES = [("", _("the family's default")), ("yes", _("yes")), ("no", _("no"))]


class RuleForm(forms.Form):
    """One rule of a draft: its family's parameters (the service checks types and ranges: the inputs only hint
    them), severity, action, on or off."""

    severity = forms.ChoiceField(label=_("Severity"), choices=Severity.choices)
    action = forms.ChoiceField(
        label=_("Action"), choices=[(a.value, a.label) for a in RuleAction if a != RuleAction.REMIND]
    )
    enabled = forms.BooleanField(label=_("On"), required=False)
    restore_on_clear = forms.ChoiceField(
        label=_("A cut is given back when the rule stops holding"), choices=RESTORE_CHOICES, required=False
    )

    def __init__(self, *args: Any, rule: Rule, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", rule.code)
        if not args and "data" not in kwargs:
            kwargs.setdefault("initial", self.initial_of(rule))
        super().__init__(*args, **kwargs)
        self.rule = rule
        self.param_names = []
        for spec in PARAMS[rule.code]:
            name = f"p_{spec.key}"
            self.param_names.append(name)
            if spec.kind == "categories":
                field: forms.Field = forms.MultipleChoiceField(
                    label=spec.label,
                    choices=CounterpartyCategory.choices,
                    widget=forms.CheckboxSelectMultiple,
                    required=False,
                )
            else:
                attrs = {"min": spec.low, "max": spec.high, "step": "1" if spec.kind == "int" else "any"}
                field = forms.CharField(
                    label=spec.label,
                    required=False,
                    widget=forms.NumberInput(attrs=attrs),
                    help_text=spec.help,
                )
            self.fields[name] = field

    @staticmethod
    def initial_of(rule: Rule) -> dict[str, Any]:
        restore = {None: "", True: "yes", False: "no"}[rule.restore_on_clear]
        return {
            "severity": rule.severity,
            "action": rule.action,
            "enabled": rule.enabled,
            "restore_on_clear": restore,
            **{f"p_{k}": v for k, v in rule.params.items()},
        }

    def params(self) -> dict[str, Any]:
        """The parameters as typed (the service checks and converts them)."""
        return {
            name[2:]: self.cleaned_data[name]
            for name in self.param_names
            if self.cleaned_data.get(name) not in (None, "") or PARAMS_KIND[self.rule.code][name[2:]] == "categories"
        }

    def restore(self) -> bool | None:
        return {"": None, "yes": True, "no": False}[self.cleaned_data.get("restore_on_clear") or ""]

    def param_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.param_names]

    def setting_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in ("severity", "action", "enabled", "restore_on_clear")]


PARAMS_KIND = {code: {p.key: p.kind for p in specs} for code, specs in PARAMS.items()}
