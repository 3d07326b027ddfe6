"""Signals in plain words, with their numbers against the thresholds."""

from __future__ import annotations

from decimal import Decimal

from django.utils.translation import gettext as _

from accounts.models import Signal


def _pct(value: str | Decimal) -> str:
    return f"{Decimal(value) * 100:.1f}%"


def _money(value: str | Decimal) -> str:
    return f"¥{Decimal(value):,.2f}"


def explain(signal: Signal) -> str:
    v = signal.evidence.get("values", {})
    t = signal.evidence.get("thresholds", {})
    if signal.code == "MULTI_HEAD":
        return _("%(n)s inquiries from %(k)s institutions in %(days)s days; threshold %(tn)s from %(tk)s") % {
            "n": v.get("inquiries"),
            "k": v.get("institutions"),
            "days": t.get("window_days"),
            "tn": t.get("min_inquiries"),
            "tk": t.get("min_institutions"),
        }
    if signal.code == "OVERDUE":
        if signal.severity == "low":
            return _(
                "An installment is %(days)s days overdue (%(amount)s unpaid); reminder from %(low)s days, freeze from %(high)s"
            ) % {
                "days": v.get("max_days_past_due"),
                "amount": _money(v.get("overdue_amount", "0")),
                "low": t.get("reminder_min_days_past_due"),
                "high": t.get("min_days_past_due"),
            }
        return _("An installment is %(days)s days overdue (%(amount)s unpaid); threshold %(high)s days") % {
            "days": v.get("max_days_past_due"),
            "amount": _money(v.get("overdue_amount", "0")),
            "high": t.get("min_days_past_due"),
        }
    if signal.code == "ABNORMAL_USE":
        return _(
            "%(share)s of a drawdown went to securities, futures, crypto or gambling within %(days)s days; threshold %(min)s"
        ) % {"share": _pct(v.get("max_share", "0")), "days": t.get("window_days"), "min": _pct(t.get("min_share", "0"))}
    if signal.code == "PROFILE_STALE":
        if v.get("employer_changed"):
            head = _("An external record shows a new employer")
        else:
            head = _("An external record shows income %(ext)s against %(declared)s declared (a %(drop)s drop)") % {
                "ext": _money(v.get("external_income", "0")),
                "declared": _money(v.get("declared_income", "0")),
                "drop": _pct(v.get("income_drop", "0")),
            }
        return _("%(head)s; profile not updated for %(days)s days; thresholds %(min)s drop, %(grace)s days") % {
            "head": head,
            "days": v.get("days_since_record"),
            "min": _pct(t.get("min_income_drop", "0")),
            "grace": t.get("grace_days"),
        }
    return signal.code
