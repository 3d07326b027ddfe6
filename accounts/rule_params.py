"""What each rule's parameters are: their types and ranges, checked wherever a ruleset is written (the draft form,
the services, the migrations' default ruleset). The rule queries (`accounts.rule_queries`) read exactly these keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import CounterpartyCategory, RuleCode
from riskops.core.errors import DomainError


@dataclass(frozen=True)
class Param:
    key: str
    label: Any  # lazy text
    kind: str  # "int", "decimal" (stored as a string, exact) or "categories" (a list of counterparty categories)
    low: int | str = 0
    high: int | str = 0
    help: Any = ""

    def clean(self, value: Any) -> Any:
        """The stored form of a value, or ValueError with the reader's message."""
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise ValueError(_("a whole number"))
            try:
                number = int(str(value).strip())
            except ValueError:
                raise ValueError(_("a whole number")) from None
            if not int(self.low) <= number <= int(self.high):
                raise ValueError(_("from %(low)s to %(high)s") % {"low": self.low, "high": self.high})
            return number
        if self.kind == "decimal":
            try:
                exact = Decimal(str(value).strip())
            except (InvalidOperation, ValueError):
                raise ValueError(_("a number such as 0.5")) from None
            exponent = exact.as_tuple().exponent
            if not exact.is_finite() or not isinstance(exponent, int) or exponent < -4:
                raise ValueError(_("a number with at most 4 decimals"))
            if not Decimal(self.low) <= exact <= Decimal(self.high):
                raise ValueError(_("from %(low)s to %(high)s") % {"low": self.low, "high": self.high})
            return format(exact.normalize(), "f")
        values = value if isinstance(value, list | tuple) else None
        if not values or not all(isinstance(v, str) for v in values):
            raise ValueError(_("at least one category"))
        unknown = sorted(set(values) - set(CounterpartyCategory.values))
        if unknown:
            raise ValueError(_("unknown categories: %(names)s") % {"names": ", ".join(unknown)})
        return sorted(set(values))


PARAMS: dict[str, list[Param]] = {
    RuleCode.MULTI_HEAD: [
        Param("window_days", gettext_lazy("window (days)"), "int", 1, 365, gettext_lazy("inquiries counted over")),
        Param("min_inquiries", gettext_lazy("inquiries at least"), "int", 1, 1000),
        Param("min_institutions", gettext_lazy("institutions at least"), "int", 1, 1000),
    ],
    RuleCode.OVERDUE: [
        Param("min_days_past_due", gettext_lazy("days past due to freeze"), "int", 1, 3650),
        Param("reminder_min_days_past_due", gettext_lazy("days past due to remind"), "int", 0, 3650),
    ],
    RuleCode.ABNORMAL_USE: [
        Param("window_days", gettext_lazy("window after a drawdown (days)"), "int", 1, 90),
        Param("min_share", gettext_lazy("share sent to risky payees at least"), "decimal", "0.01", "1"),
        Param("categories", gettext_lazy("risky payee categories"), "categories"),
        Param("lookback_days", gettext_lazy("drawdowns of the last (days)"), "int", 1, 730),
    ],
    RuleCode.PROFILE_STALE: [
        Param("min_income_drop", gettext_lazy("income drop at least"), "decimal", "0", "1"),
        Param("grace_days", gettext_lazy("grace after the record (days)"), "int", 0, 3650),
        Param("lookback_days", gettext_lazy("records of the last (days)"), "int", 1, 3650),
        Param("cut_ratio", gettext_lazy("share of the limit cut"), "decimal", "0.01", "1"),
    ],
}


class ParamsInvalid(DomainError):
    """A rule's parameters that cannot be saved: each key with its message (key "" for the whole set)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" if k else v for k, v in errors.items()))
        self.errors = errors


def clean_params(code: str, params: Any) -> dict[str, Any]:
    """The rule's parameters as stored: every key of its family present, none other, each in its range, and the
    ranges that depend on each other in order. ParamsInvalid lists what is wrong."""
    if code not in PARAMS:
        raise ParamsInvalid({"": _("unknown rule %(code)s") % {"code": code}})
    if not isinstance(params, dict):
        raise ParamsInvalid({"": _("parameters must be an object of named values")})
    specs = {p.key: p for p in PARAMS[code]}
    errors: dict[str, str] = {}
    for key in sorted(set(params) - set(specs)):
        errors[key] = _("unknown parameter")
    cleaned: dict[str, Any] = {}
    for key, spec in specs.items():
        if key not in params:
            errors[key] = _("missing")
            continue
        try:
            cleaned[key] = spec.clean(params[key])
        except ValueError as e:
            errors[key] = str(e)
    if not errors:
        errors.update(_related(code, cleaned))
    if errors:
        raise ParamsInvalid(errors)
    return cleaned


def _related(code: str, p: dict[str, Any]) -> dict[str, str]:
    if code == RuleCode.MULTI_HEAD and p["min_institutions"] > p["min_inquiries"]:
        return {"min_institutions": _("cannot exceed the inquiries (each inquiry is from one institution)")}
    if code == RuleCode.OVERDUE and p["reminder_min_days_past_due"] > p["min_days_past_due"]:
        return {"reminder_min_days_past_due": _("cannot exceed the days past due to freeze")}
    if code == RuleCode.ABNORMAL_USE and p["lookback_days"] < p["window_days"]:
        return {"lookback_days": _("cannot be shorter than the window")}
    if code == RuleCode.PROFILE_STALE and p["lookback_days"] <= p["grace_days"]:
        return {"lookback_days": _("must be longer than the grace")}
    return {}
