"""How the rules pages show a parameter: its label in the reader's language, its value plainly."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.translation import gettext as _

from accounts.models import CounterpartyCategory
from accounts.rule_params import PARAMS
from riskops.tuning.forms import RuleForm

register = template.Library()


@register.filter
def param_value(value: Any) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, list | tuple):
        labels = dict(CounterpartyCategory.choices)
        return ", ".join(str(labels.get(v, v)) for v in value)
    return str(value)


@register.filter
def param_label(code: str, field: str) -> str:
    """A parameter's label, a rule setting's label, or for a rule in one version only, "the rule"."""
    if not field:
        return _("the rule")
    for spec in PARAMS.get(code, []):
        if spec.key == field:
            return str(spec.label)
    setting = RuleForm.base_fields.get(field)
    return str(setting.label) if setting is not None else field
