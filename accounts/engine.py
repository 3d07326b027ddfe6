"""The risk engine: evaluates the active ruleset over a batch of accounts, set-based.

One batch costs a fixed number of SQL queries whatever its size: each rule is one aggregate
query over the batch's events in PostgreSQL, then the differences with the current signals are
applied through `accounts.services` (fire, clear, freeze, cut, remind, open cases).

How an event becomes a freeze:
events -> rule queries (`_find_*`) -> findings -> minus suppressed -> diff with active signals
-> services.signals (fire / clear) -> policy: services.lines (freeze / cut) and reminders -> services.cases
-> audit (each service writes its own).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, reset_queries, transaction
from django.utils import timezone

from accounts.models import (
    SEVERITY_RANK,
    CounterpartyCategory,
    NotificationKind,
    Rule,
    RuleAction,
    RuleCode,
    Severity,
)
from accounts.notifications import Outgoing, notifications_queue
from accounts.services import cases, lines, signals
from riskops.core.audit import Actor
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
        return set(signals.evidence_event_keys(self.evidence))


@dataclass
class EvaluationResult:
    evaluated: int = 0
    fired: int = 0
    cleared: int = 0
    suppressed: int = 0
    frozen: int = 0
    cut: int = 0
    reminded: int = 0
    cases_opened: int = 0
    fired_signal_ids: list[int] = field(default_factory=list)
    # Lines where a signal fired or cleared (and so any freeze, cut, reminder or case change happened).
    changed_line_ids: set[int] = field(default_factory=set)

    def add(self, other: EvaluationResult) -> None:
        for name in ("evaluated", "fired", "cleared", "suppressed", "frozen", "cut", "reminded", "cases_opened"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def active_rules() -> dict[str, Rule]:
    rules = Rule.objects.filter(ruleset__is_active=True, enabled=True).select_related("ruleset")
    return {r.code: r for r in rules}


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
          AND (r.employer <> sel.employer OR r.monthly_income <= sel.declared_monthly_income * (1 - %(drop)s))
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
                    "declared_income": _dec(declared),
                    "external_income": _dec(ext_income),
                    "income_drop": str(drop.quantize(Decimal("0.0001"))),
                    "employer_changed": ext_employer != employer,
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


def evaluate_lines(
    line_ids: Iterable[int],
    *,
    now: datetime | None = None,
    actor: Actor | None = None,
    rules: dict[str, Rule] | None = None,
) -> EvaluationResult:
    """Evaluate the active rules for these lines and apply what changed, in one transaction.

    Evaluating twice on the same data changes nothing the second time.
    """
    now = now or timezone.now()
    actor = actor or Actor.engine()
    result = EvaluationResult()
    requested = sorted(set(line_ids))
    if not requested:
        return result
    with transaction.atomic():
        ids = _lock_batch(requested)
        result.evaluated = len(ids)
        if not ids:
            return result
        rules = rules if rules is not None else active_rules()
        findings: dict[tuple[int, str, str], Finding] = {}
        for code, rule in rules.items():
            for f in FINDERS[RuleCode(code)](rule, ids, now):
                findings[(f.line_id, f.code, f.severity)] = f
        active, suppressed_keys = _current(ids)

        new: list[Finding] = []
        for key, f in findings.items():
            if key in active:
                continue
            if (f.line_id, f.code) in suppressed_keys and f.event_keys <= suppressed_keys[(f.line_id, f.code)]:
                result.suppressed += 1
                continue
            new.append(f)
        to_clear = [sid for key, sid in active.items() if key not in findings]

        result.cleared = len(
            signals.signals_clear(signal_ids=to_clear, actor=actor, at=now, reason="condition no longer holds")
        )
        created = signals.signals_fire(
            signals=[
                signals.NewSignal(
                    f.line_id, f.rule.pk, f.code, f.severity, f.action, f.rule.ruleset.version, f.evidence
                )
                for f in new
            ],
            actor=actor,
            at=now,
        )
        result.fired = len(created)
        result.fired_signal_ids = [s.pk for s in created]
        result.changed_line_ids = {s.line_id for s in created} | {key[0] for key in active if key not in findings}
        _apply_policy(created, rules, actor, now, result)
        cases.cases_refresh_exposure(line_ids=ids, at=now)
    return result


def _lock_batch(requested: list[int]) -> list[int]:
    """Lock the batch's open lines first: concurrent evaluations of the same account serialise here."""
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT id FROM accounts_creditline WHERE {in_batch('id', requested)} AND status <> 'closed' ORDER BY id FOR UPDATE",  # noqa: S608 - table names from the models, values bound
            batch_params(requested),
        )
        return [r[0] for r in cur.fetchall()]


def _current(ids: list[int]) -> tuple[dict[tuple[int, str, str], int], dict[tuple[int, str], set[str]]]:
    """The batch's active signals by (line, code, severity), and the event keys suppressed per (line, code)."""
    params = batch_params(ids)
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT id, line_id, code, severity FROM accounts_signal WHERE {in_batch('line_id', ids)} AND status = 'active'",  # noqa: S608 - table names from the models, values bound
            params,
        )
        active = {(r[1], r[2], r[3]): r[0] for r in cur.fetchall()}
        cur.execute(
            f"SELECT line_id, code, event_ids FROM accounts_suppression WHERE {in_batch('line_id', ids)}",  # noqa: S608 - table names from the models, values bound
            params,
        )
        suppressed_keys: dict[tuple[int, str], set[str]] = defaultdict(set)
        for line_id, code, keys in cur.fetchall():
            # Django has psycopg load jsonb as text (JSONField decodes it); a raw cursor gets the text.
            if isinstance(keys, str):
                keys = json.loads(keys)
            suppressed_keys[(line_id, code)].update(keys if isinstance(keys, list) else [])
    return active, suppressed_keys


def _apply_policy(created: list, rules: dict[str, Rule], actor: Actor, now: datetime, result: EvaluationResult) -> None:
    freeze: dict[int, Any] = {}
    cut: dict[int, Any] = {}
    remind: list[Any] = []
    severity_by_line: dict[int, int] = {}
    signals_by_line: dict[int, list[int]] = defaultdict(list)
    for s in created:
        if s.action == RuleAction.FREEZE:
            freeze.setdefault(s.line_id, s)
        elif s.action == RuleAction.CUT:
            cut.setdefault(s.line_id, s)
        elif s.action == RuleAction.REMIND:
            remind.append(s)
        rank = SEVERITY_RANK[Severity(s.severity)]
        if rank >= SEVERITY_RANK[Severity.MEDIUM]:
            severity_by_line[s.line_id] = max(rank, severity_by_line.get(s.line_id, 0))
            signals_by_line[s.line_id].append(s.pk)

    def reason(s: Any) -> str:
        return f"{s.code} signal #{s.pk} (ruleset v{s.ruleset_version})"

    result.frozen = len(
        lines.lines_freeze(
            line_ids=freeze,
            actor=actor,
            at=now,
            reasons={i: reason(s) for i, s in freeze.items()},
            codes={i: s.code for i, s in freeze.items()},
            signal_by_line={i: s.pk for i, s in freeze.items()},
        )
    )
    if cut:
        result.cut = len(
            lines.lines_cut_available(
                cuts={i: Decimal(rules[s.code].params.get("cut_ratio", "0.5")) for i, s in cut.items()},
                actor=actor,
                at=now,
                reasons={i: reason(s) for i, s in cut.items()},
                codes={i: s.code for i, s in cut.items()},
                signal_by_line={i: s.pk for i, s in cut.items()},
            )
        )
    outgoing = [
        Outgoing(s.line_id, NotificationKind.PROFILE_UPDATE_REQUEST, f"profile_update:{s.pk}", {}) for s in cut.values()
    ] + [
        Outgoing(s.line_id, NotificationKind.OVERDUE_REMINDER, f"overdue_reminder:{s.pk}", lines.overdue_params(s))
        for s in remind
    ]
    notifications_queue(outgoing, at=now)
    result.reminded = len(remind)
    opened = cases.cases_open_or_raise(
        severity_by_line=severity_by_line,
        signal_ids_by_line=signals_by_line,
        actor=actor,
        at=now,
        reason="risk signals fired",
    )
    result.cases_opened = len(opened["opened"])


def evaluate_all(
    *, now: datetime | None = None, batch_size: int | None = None, actor: Actor | None = None
) -> EvaluationResult:
    """Evaluate every active or frozen line, batch by batch in id order (keyset, no OFFSET)."""
    batch_size = batch_size or settings.ENGINE_BATCH_SIZE
    now = now or timezone.now()
    total = EvaluationResult()
    rules = active_rules()
    for ids in line_id_batches(batch_size):
        total.add(evaluate_lines(ids, now=now, actor=actor, rules=rules))
        reset_queries()  # with DEBUG on, Django would keep every batch's SQL in memory
    return total


def line_id_batches(batch_size: int) -> Iterator[list[int]]:
    last = 0
    while True:
        with connection.cursor() as cur:
            cur.execute(
                "SELECT id FROM accounts_creditline WHERE id > %s AND status <> 'closed' ORDER BY id LIMIT %s",
                [last, batch_size],
            )
            ids = [r[0] for r in cur.fetchall()]
        if not ids:
            return
        yield ids
        last = ids[-1]
