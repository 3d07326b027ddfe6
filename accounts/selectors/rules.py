"""Reading rulesets: their versions, and what differs between two of them (a parameter diff)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, QuerySet

from accounts.models import Rule, RuleSet, Signal, SignalStatus

FIELDS = ("severity", "action", "enabled", "restore_on_clear")


@dataclass(frozen=True)
class Difference:
    code: str
    field: str  # a parameter's key, or one of FIELDS, or "" when the rule is in one version only
    before: Any
    after: Any


def versions() -> QuerySet[RuleSet]:
    """Every version, the newest first, with who made and activated it and its number of rules."""
    return (
        RuleSet.objects.select_related("created_by", "activated_by", "based_on")
        .annotate(n_rules=Count("rules"))
        .order_by("-version")
    )


def rules_of(ruleset: RuleSet) -> list[Rule]:
    return list(ruleset.rules.order_by("code"))


def ruleset_diff(before: RuleSet, after: RuleSet) -> list[Difference]:
    """What `after` changes of `before`, rule by rule (by code) and parameter by parameter."""
    old = {r.code: r for r in before.rules.all()}
    new = {r.code: r for r in after.rules.all()}
    diff: list[Difference] = []
    for code in sorted(set(old) | set(new)):
        a, b = old.get(code), new.get(code)
        if a is None or b is None:
            diff.append(Difference(code, "", a is not None, b is not None))
            continue
        for key in sorted(set(a.params) | set(b.params)):
            if a.params.get(key) != b.params.get(key):
                diff.append(Difference(code, key, a.params.get(key), b.params.get(key)))
        for name in FIELDS:
            if getattr(a, name) != getattr(b, name):
                diff.append(Difference(code, name, getattr(a, name), getattr(b, name)))
    return diff


def rules_digest(ruleset: RuleSet) -> str:
    """A fingerprint of what a version holds (every rule's fields): what was simulated is what is activated."""
    fields = {r.code: [r.params, r.severity, r.action, r.enabled, r.restore_on_clear] for r in ruleset.rules.all()}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def active_signal_counts() -> dict[str, int]:
    """The signals holding now, per rule code (what each rule is firing on today)."""
    rows = Signal.objects.filter(status=SignalStatus.ACTIVE).values("code").annotate(n=Count("*")).order_by()
    return {r["code"]: r["n"] for r in rows}
