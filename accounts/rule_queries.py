"""The rule queries of the engine: each rule is one aggregate SQL query over a batch of lines that returns, for the
whole batch, the lines where the rule holds with its evidence (event ids, computed values, thresholds). The
thresholds are data (the active ruleset's rules); the SQL is here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.utils import timezone

from accounts.models import CounterpartyCategory, Rule, RuleAction, RuleCode, Severity
from accounts.services.signals import evidence_event_keys
from riskops.core.sql import batch_params, id_range, in_batch


@dataclass
class Finding:
    """A rule holding for a line. Its severity and action are the rule's, except OVERDUE's reminder tier."""

    rule: Rule
    line_id: int
    evidence: dict[str, Any]
    severity: str = ""
    action: str = ""

    def __post_init__(self) -> None:
        self.severity = self.severity or self.rule.severity
        self.action = self.action or self.rule.action

    @property
    def code(self) -> str:
        return self.rule.code

    @property
    def event_keys(self) -> set[str]:
        return set(evidence_event_keys(self.evidence))


def active_rules() -> dict[str, Rule]:
    return _by_code(Rule.objects.filter(ruleset__is_active=True, enabled=True))


def version_rules(ruleset_id: int) -> dict[str, Rule]:
    """The enabled rules of any version (a draft simulated, backtested or in shadow), by code."""
    return _by_code(Rule.objects.filter(ruleset_id=ruleset_id, enabled=True))


def _by_code(rules: Any) -> dict[str, Rule]:
    return {r.code: r for r in rules.select_related("ruleset")}


def _dec(value: Any) -> str:
    return str(Decimal(value).quantize(Decimal("0.01")))


def _rows(sql: str, params: dict[str, Any]) -> list[tuple]:
    """Run a rule query over a batch (`params["ids"]`); the query keeps the batch's rows with
    `riskops.core.sql.in_batch` (the batch's id range through the (line, time) indexes, its ids a hashed filter)."""
    with connection.cursor() as cur:
        cur.execute(sql, {**params, **batch_params(params["ids"])})
        return cur.fetchall()


def _find_multi_head(rule: Rule, ids: list[int], now: datetime) -> Iterator[Finding]:
    p = rule.params
    rows = _rows(
        f"""
        SELECT line_id, count(*), count(DISTINCT institution), array_agg(id ORDER BY occurred_at, id)
        FROM accounts_creditinquiry
        WHERE {in_batch("line_id", ids)} AND occurred_at >= %(now)s - make_interval(days => %(days)s)
          AND occurred_at <= %(now)s
        GROUP BY line_id
        HAVING count(*) >= %(n)s AND count(DISTINCT institution) >= %(k)s
        """,  # noqa: S608 - table names from the models, values bound
        {"ids": ids, "now": now, "days": p["window_days"], "n": p["min_inquiries"], "k": p["min_institutions"]},
    )
    for line_id, n, k, event_ids in rows:
        yield Finding(
            rule,
            line_id,
            {
                "events": {"inquiry": event_ids},
                "values": {"inquiries": n, "institutions": k},
                "thresholds": {k2: p[k2] for k2 in ("min_inquiries", "min_institutions", "window_days")},
            },
        )


def _find_overdue(rule: Rule, ids: list[int], now: datetime) -> Iterator[Finding]:
    p = rule.params
    today = timezone.localdate(now)
    rows = _rows(
        f"""
        SELECT line_id, max(%(today)s::date - due_date),
               array_agg(id ORDER BY due_date, id),
               array_agg(id ORDER BY due_date, id) FILTER (WHERE %(today)s::date - due_date >= %(high)s),
               sum(amount - paid_amount)
        FROM accounts_installment
        WHERE {in_batch("line_id", ids)} AND paid_at IS NULL AND due_date <= %(today)s::date - %(low)s
        GROUP BY line_id
        """,  # noqa: S608 - table names from the models, values bound
        {"ids": ids, "today": today, "high": p["min_days_past_due"], "low": p["reminder_min_days_past_due"]},
    )
    thresholds = {k: p[k] for k in ("min_days_past_due", "reminder_min_days_past_due")}
    for line_id, max_dpd, all_ids, high_ids, amount in rows:
        values = {"max_days_past_due": max_dpd, "overdue_amount": _dec(amount), "as_of": today.isoformat()}
        if max_dpd >= p["min_days_past_due"]:
            yield Finding(
                rule,
                line_id,
                {"events": {"installment": high_ids}, "values": values, "thresholds": thresholds},
            )
        else:
            yield Finding(
                rule,
                line_id,
                {"events": {"installment": all_ids}, "values": values, "thresholds": thresholds},
                severity=Severity.LOW,
                action=RuleAction.REMIND,
            )


def _find_abnormal_use(rule: Rule, ids: list[int], now: datetime) -> Iterator[Finding]:
    p = rule.params
    unknown = set(p["categories"]) - set(CounterpartyCategory.values)
    if unknown:
        raise ValueError(f"ruleset v{rule.ruleset.version} ABNORMAL_USE has unknown categories {sorted(unknown)}")
    # Written into the SQL (checked against the choices above) so that the planner can use the partial
    # index of risky transfers; a bound parameter would hide the values from it.
    categories = ", ".join(f"'{c}'" for c in sorted(p["categories"]))
    rows = _rows(
        f"""
        SELECT d.line_id, d.id, d.amount, sum(t.amount), array_agg(t.id ORDER BY t.occurred_at, t.id),
               array_agg(DISTINCT t.counterparty_category)
        FROM accounts_drawdown d
        JOIN accounts_transfer t
          ON t.line_id = d.line_id AND t.occurred_at >= d.occurred_at
         AND t.occurred_at <= d.occurred_at + make_interval(days => %(window)s)
         AND t.occurred_at <= %(now)s AND t.counterparty_category IN ({categories})
        WHERE {in_batch("d.line_id", ids)} AND d.occurred_at <= %(now)s
          AND d.occurred_at > %(now)s - make_interval(days => %(lookback)s)
        GROUP BY d.line_id, d.id, d.amount
        HAVING sum(t.amount) >= d.amount * %(share)s
        ORDER BY d.line_id, d.id
        """,  # noqa: S608 - table names from the models, values bound
        {
            "ids": ids,
            "now": now,
            "window": p["window_days"],
            "lookback": p["lookback_days"],
            "share": Decimal(p["min_share"]),
        },
    )
    by_line: dict[int, list[tuple]] = defaultdict(list)
    for row in rows:
        by_line[row[0]].append(row)
    thresholds = {k: p[k] for k in ("min_share", "window_days", "categories", "lookback_days")}
    for line_id, items in by_line.items():
        drawdowns = [
            {
                "drawdown_id": r[1],
                "amount": _dec(r[2]),
                "risky_transfers": _dec(r[3]),
                "share": str((Decimal(r[3]) / Decimal(r[2])).quantize(Decimal("0.0001"))),
                "categories": sorted(r[5]),
            }
            for r in items
        ]
        yield Finding(
            rule,
            line_id,
            {
                "events": {"drawdown": [r[1] for r in items], "transfer": sorted({t for r in items for t in r[4]})},
                "values": {"drawdowns": drawdowns, "max_share": max(d["share"] for d in drawdowns)},
                "thresholds": thresholds,
            },
        )


def _find_profile_stale(rule: Rule, ids: list[int], now: datetime) -> Iterator[Finding]:
    p = rule.params
    rows = _rows(
        f"""
        WITH sel AS MATERIALIZED (
            -- The batch's lines with their borrower's declared employer and income: one lookup per line, not one
            -- per income record.
            SELECT l.id, b.employer, b.declared_monthly_income
            FROM unnest(%(ids)s::bigint[]) AS s(id)
            JOIN accounts_creditline l ON l.id = s.id
            JOIN accounts_borrower b ON b.id = l.borrower_id
        )
        SELECT r.line_id, r.id, r.employer, r.monthly_income, sel.employer, sel.declared_monthly_income,
               floor(extract(epoch FROM %(now)s - r.occurred_at) / 86400)::int
        FROM accounts_externalincomerecord r
        JOIN sel ON sel.id = r.line_id
        WHERE {id_range("r.line_id", ids)}
          AND r.occurred_at <= %(now)s - make_interval(days => %(grace)s)
          AND r.occurred_at > %(now)s - make_interval(days => %(lookback)s)
          -- An employer or income the borrower never declared (upstream did not have it) is nothing to differ from.
          AND ((sel.employer <> '' AND r.employer <> sel.employer)
               OR r.monthly_income <= sel.declared_monthly_income * (1 - %(drop)s))
          AND NOT EXISTS (
              SELECT 1 FROM accounts_profileupdate u
              WHERE u.line_id = r.line_id AND u.occurred_at >= r.occurred_at AND u.occurred_at <= %(now)s
          )
        ORDER BY r.line_id, r.occurred_at, r.id
        """,  # noqa: S608 - table names from the models, values bound
        {
            "ids": ids,
            "now": now,
            "grace": p["grace_days"],
            "lookback": p["lookback_days"],
            "drop": Decimal(p["min_income_drop"]),
        },
    )
    by_line: dict[int, list[tuple]] = defaultdict(list)
    for row in rows:
        by_line[row[0]].append(row)
    thresholds = {k: p[k] for k in ("min_income_drop", "grace_days", "cut_ratio")}
    for line_id, items in by_line.items():
        _l, _rid, ext_employer, ext_income, employer, declared, days = items[-1]
        drop = (Decimal(declared) - Decimal(ext_income)) / Decimal(declared) if declared else Decimal(0)
        yield Finding(
            rule,
            line_id,
            {
                "events": {"income_record": [r[1] for r in items]},
                "values": {
                    "declared_income": _dec(declared) if declared is not None else None,
                    "external_income": _dec(ext_income),
                    "income_drop": str(drop.quantize(Decimal("0.0001"))),
                    "employer_changed": bool(employer) and ext_employer != employer,
                    "days_since_record": days,
                },
                "thresholds": thresholds,
            },
        )


FINDERS = {
    RuleCode.MULTI_HEAD: _find_multi_head,
    RuleCode.OVERDUE: _find_overdue,
    RuleCode.ABNORMAL_USE: _find_abnormal_use,
    RuleCode.PROFILE_STALE: _find_profile_stale,
}
