"""The rules page's figures: each rule of a version with what it fires on now, what it froze over the last days and
how often a person overturned it (the dashboard's kept figures and overturn rates)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.utils import timezone

from accounts.models import Rule, RuleSet
from accounts.rule_params import PARAMS
from accounts.selectors.rules import active_signal_counts, rules_of
from riskops.dashboard.selectors import Rate, daily_counts, figure_link, overturn_rates

DAYS = 90  # the days the rules page's figures are over


@dataclass
class RuleRow:
    rule: Rule
    params: list[tuple[str, Any]]  # (label, value), in the family's order
    holding: int  # signals of this rule's family holding now
    froze: int  # cases it froze or cut over the last DAYS days, this version
    froze_link: str
    rate: Rate | None  # this version's overturn rate over those days
    form: Any = None  # a draft's rule form, for who may change it


def rule_rows(ruleset: RuleSet, *, today: date | None = None) -> tuple[date, list[RuleRow]]:
    today = today or timezone.localdate()
    start = today - timedelta(days=DAYS - 1)
    counts = daily_counts(start, today)
    adverse: dict[date, dict[str, int]] = {}
    for (figure, day, key), n in counts.items():
        if figure == "adverse":
            adverse.setdefault(day, {})[key] = n
    rates = {(r.code, r.version): r for r in overturn_rates(start, today, adverse)}
    holding = active_signal_counts()
    rows = []
    for rule in rules_of(ruleset):
        key = f"{rule.code}:{ruleset.version}"
        specs = PARAMS.get(rule.code, [])
        rows.append(
            RuleRow(
                rule=rule,
                params=[(str(p.label), rule.params.get(p.key)) for p in specs],
                holding=holding.get(rule.code, 0) if ruleset.is_active else 0,
                froze=sum(keys.get(key, 0) for keys in adverse.values()),
                froze_link=figure_link("adverse", start, today, key),
                rate=rates.get((rule.code, str(ruleset.version))),
            )
        )
    return start, rows
