"""The case page: everything it shows about a case and its account, in a fixed number of queries."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import hooks
from accounts.models import (
    RULE_SHORT_LABELS,
    Case,
    CreditInquiry,
    CreditLine,
    Decision,
    DecisionStatus,
    Drawdown,
    ExternalIncomeRecord,
    Installment,
    LineChange,
    Note,
    RuleCode,
    Signal,
    Transfer,
)
from riskops.models import AuditEvent

EVENT_MODELS: dict[str, Any] = {
    "inquiry": CreditInquiry,
    "installment": Installment,
    "drawdown": Drawdown,
    "transfer": Transfer,
    "income_record": ExternalIncomeRecord,
}


@dataclass
class CaseDetail:
    case: Case
    line: CreditLine
    signals: list[Signal]
    evidence: dict[int, dict[str, list[Any]]]
    pending: Decision | None
    decisions: list[Decision]
    other_cases: list[Case]
    changes: list[LineChange]
    notes: list[Note]
    audit: list[AuditEvent]
    timeline: dict[str, Any] = field(default_factory=dict)
    # Sections other apps add to the page (`accounts.hooks.case_panels`): the account's appeals.
    panels: list[hooks.CasePanel] = field(default_factory=list)


def case_detail(case_id: int, *, now: datetime | None = None) -> CaseDetail:
    """Everything the case page shows, in a fixed number of queries (about 16)."""
    now = now or timezone.now()
    case = Case.objects.select_related("line__borrower", "assignee").get(pk=case_id)
    line = case.line
    signals = list(Signal.objects.filter(line=line).select_related("rule").order_by("-fired_at", "-id")[:50])
    wanted: dict[str, set[int]] = defaultdict(set)
    for s in signals:
        for kind, ids in s.evidence.get("events", {}).items():
            wanted[kind].update(ids)
    fetched: dict[str, dict[int, Any]] = {}
    for kind, model in EVENT_MODELS.items():
        ids = wanted.get(kind, set())
        fetched[kind] = {e.pk: e for e in model.objects.filter(pk__in=ids, line=line)} if ids else {}
    evidence = {
        s.pk: {
            kind: [fetched[kind][i] for i in ids if i in fetched.get(kind, {})]
            for kind, ids in s.evidence.get("events", {}).items()
        }
        for s in signals
    }
    decisions = list(
        Decision.objects.filter(line=line).select_related("proposed_by", "reviewed_by").order_by("-proposed_at")[:50]
    )
    pending = next((d for d in decisions if d.case_id == case.pk and d.status == DecisionStatus.PROPOSED), None)
    other_cases = list(Case.objects.filter(line=line).exclude(pk=case.pk).order_by("-opened_at")[:20])
    changes = list(LineChange.objects.filter(line=line).select_related("actor_user").order_by("-at", "-id")[:50])
    notes = list(Note.objects.filter(line=line).select_related("author").order_by("-created_at", "-id")[:100])
    audit = list(AuditEvent.objects.filter(account=line).select_related("actor_user").order_by("-at", "-id")[:100])
    detail = CaseDetail(case, line, signals, evidence, pending, decisions, other_cases, changes, notes, audit)
    detail.timeline = account_timeline(line, signals, changes, now=now)
    detail.panels = [panel for make in hooks.case_panels.callbacks for panel in make(detail)]
    return detail


def _local(at: datetime) -> str:
    """A time as the operator reads it: in the current zone, without an offset (Plotly drops offsets and would
    show the UTC clock)."""
    return timezone.localtime(at).strftime("%Y-%m-%d %H:%M:%S")


def account_timeline(
    line: CreditLine, signals: list[Signal], changes: list[LineChange], *, now: datetime
) -> dict[str, Any]:
    """The last 12 months of an account as Plotly-ready series (5 queries), in the operator's zone and language.

    The axis runs from a year ago to the last thing shown (or now), with a margin on both sides so that the newest
    marker is drawn whole rather than cut at the edge.
    """
    start = now - timedelta(days=365)
    lanes = [
        _("Drawdowns"),
        _("Repayments"),
        _("Overdue"),
        _("Credit inquiries"),
        _("High-risk transfers"),
        _("Signals"),
        _("Line changes"),
    ]
    series: list[dict[str, Any]] = []
    spans: list[dict[str, Any]] = []
    last = now

    def add(lane: int, label: str, symbol: str, color: str, points: list[tuple[datetime, str]]) -> None:
        nonlocal last
        if points:
            last = max(last, *(p[0] for p in points))
            series.append(
                {
                    "lane": lane,
                    "label": label,
                    "symbol": symbol,
                    "color": color,
                    "x": [_local(p[0]) for p in points],
                    "text": [p[1] for p in points],
                }
            )

    def money(amount: Any) -> str:
        return f"¥{amount:,.2f}"

    drawdowns = Drawdown.objects.filter(line=line, occurred_at__gte=start).order_by("occurred_at")
    add(
        0,
        _("drawdown"),
        "circle",
        "#1f5fbf",
        [
            (
                d.occurred_at,
                _("%(amount)s over %(months)s months") % {"amount": money(d.amount), "months": d.term_months},
            )
            for d in drawdowns
        ],
    )
    installments = list(Installment.objects.filter(line=line, due_date__gte=start.date()).order_by("due_date"))
    add(
        1,
        _("repayment"),
        "triangle-up",
        "#4d6b2f",
        [
            (i.paid_at, _("%(amount)s (due %(date)s)") % {"amount": money(i.paid_amount), "date": i.due_date})
            for i in installments
            if i.paid_at
        ],
    )
    tz = timezone.get_current_timezone()
    late: list[tuple[datetime, str]] = []
    for i in installments:
        due = datetime.combine(i.due_date, datetime.min.time(), tzinfo=tz)
        end = i.paid_at or now
        if end - due >= timedelta(days=1):
            spans.append(
                {
                    "lane": 2,
                    "x0": _local(due),
                    "x1": _local(end),
                    "color": "#b3261e" if (end - due).days >= 30 else "#b26a00",
                }
            )
            late.append(
                (due, _("%(amount)s due, %(days)s days late") % {"amount": money(i.amount), "days": (end - due).days})
            )
    add(2, _("overdue"), "square", "#b3261e", late)
    inquiries = CreditInquiry.objects.filter(line=line, occurred_at__gte=start).order_by("occurred_at")
    add(3, _("inquiry"), "diamond", "#6b3fa0", [(q.occurred_at, q.institution) for q in inquiries])
    risky = Transfer.objects.filter(
        line=line, occurred_at__gte=start, counterparty_category__in=["securities", "futures", "crypto", "gambling"]
    ).order_by("occurred_at")
    add(
        4,
        _("high-risk transfer"),
        "x",
        "#b3261e",
        [(t.occurred_at, f"{money(t.amount)} → {t.get_counterparty_category_display()}") for t in risky],
    )
    add(
        5,
        _("signal fired"),
        "star",
        "#b3261e",
        [
            (s.fired_at, f"{RULE_SHORT_LABELS[RuleCode(s.code)]} ({s.get_severity_display()})")
            for s in signals
            if s.fired_at >= start
        ],
    )
    add(
        5,
        _("signal cleared"),
        "star-open",
        "#4d6b2f",
        [
            (s.cleared_at, f"{RULE_SHORT_LABELS[RuleCode(s.code)]} · {s.get_status_display()}")
            for s in signals
            if s.cleared_at and s.cleared_at >= start
        ],
    )
    add(
        6,
        _("line change"),
        "line-ns-open",
        "#1d2430",
        [
            (
                c.at,
                _("%(kind)s: %(before)s → %(after)s, limit %(limit)s")
                % {
                    "kind": c.get_kind_display(),
                    "before": c.get_status_before_display(),
                    "after": c.get_status_after_display(),
                    "limit": money(c.limit_after),
                },
            )
            for c in changes
            if c.at >= start
        ],
    )
    margin = (last - start) * 0.03
    return {
        "lanes": lanes,
        "series": series,
        "spans": spans,
        "start": _local(start - margin),
        "end": _local(last + margin),
        "zone": timezone.get_current_timezone_name(),
    }
