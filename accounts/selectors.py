"""Reads that span models. Each page costs a fixed number of queries whatever the number of rows."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import Right
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import (
    Case,
    CaseStatus,
    CreditInquiry,
    CreditLine,
    Decision,
    DecisionStatus,
    Drawdown,
    ExternalIncomeRecord,
    Installment,
    LineChange,
    Note,
    Signal,
    Transfer,
)
from riskops.models import AuditEvent

QUEUE_COUNT_CAP = 1000
SEVERITY_ORDER = {"high": 3, "medium": 2, "low": 1}

# queue_key = -(severity_rank * 10**12 + exposure in cents): each tier is a range of it (see models.RISK_TIER).
_T = 10**12
TIER_QUEUE_KEYS = {
    1: (-(10 * _T), -(3 * _T + 5_000_000)),
    2: (-(3 * _T + 5_000_000), -3 * _T),
    3: (-(3 * _T), -2 * _T),
    4: (-(2 * _T), 0),
}


@dataclass
class QueueFilters:
    status: str = ""
    family: str = ""
    tier: int | None = None
    assignee: str = ""  # "", "me", "unassigned"
    sla: str = ""  # "", "due_soon", "breached"
    opened_from: date | None = None
    opened_to: date | None = None
    exposure_min: Decimal | None = None
    exposure_max: Decimal | None = None
    q: str = ""
    appeal: str = ""  # "", "open": only cases with an open appeal


@dataclass
class QueuePage:
    cases: list[dict[str, Any]]
    next_cursor: str
    count: int
    count_capped: bool


def parse_cursor(raw: str) -> tuple[int, int] | None:
    """A keyset cursor is "queue_key:id"; anything else means the first page."""
    try:
        key, case_id = raw.split(":", 1)
        return int(key), int(case_id)
    except ValueError:
        return None


def queue_queryset(filters: QueueFilters, *, user_id: int | None, now: datetime | None = None) -> QuerySet[Case]:
    now = now or timezone.now()
    qs = Case.objects.all()
    qs = qs.filter(status=filters.status) if filters.status else qs.exclude(status=CaseStatus.RESOLVED)
    if filters.family:
        qs = qs.filter(signal_codes__contains=[filters.family])
    if filters.appeal:
        qs = qs.exclude(appeal_state="")
    if filters.tier:
        # Tiers are contiguous stretches of the queue order; the queue_key range lets the index skip to them.
        low, high = TIER_QUEUE_KEYS[filters.tier]
        qs = qs.filter(risk_tier=filters.tier, queue_key__gt=low, queue_key__lte=high)
    if filters.assignee == "me":
        qs = qs.filter(assignee_id=user_id)
    elif filters.assignee == "unassigned":
        qs = qs.filter(assignee__isnull=True)
    if filters.sla == "breached":
        qs = qs.filter(sla_due_at__lt=now)
    elif filters.sla == "due_soon":
        qs = qs.filter(sla_due_at__gte=now, sla_due_at__lt=now + timedelta(hours=settings.CASE_DUE_SOON_HOURS))
    tz = timezone.get_current_timezone()
    if filters.opened_from:
        qs = qs.filter(opened_at__gte=datetime.combine(filters.opened_from, datetime.min.time(), tzinfo=tz))
    if filters.opened_to:
        qs = qs.filter(
            opened_at__lt=datetime.combine(filters.opened_to + timedelta(days=1), datetime.min.time(), tzinfo=tz)
        )
    if filters.exposure_min is not None:
        qs = qs.filter(exposure__gte=filters.exposure_min)
    if filters.exposure_max is not None:
        qs = qs.filter(exposure__lte=filters.exposure_max)
    if filters.q:
        if filters.q.startswith("JB"):
            qs = qs.filter(line__account_no=filters.q)
        else:
            qs = qs.alias(phone_last4=Right("line__borrower__phone", 4)).filter(phone_last4=filters.q)
    return qs


QUEUE_ROW_FIELDS = (
    "id",
    "status",
    "severity_rank",
    "exposure",
    "queue_key",
    "risk_tier",
    "opened_at",
    "sla_due_at",
    "line__account_no",
    "line__status",
    "line__borrower__name",
    "line__borrower__phone",
    "assignee__username",
    "appeal_state",
    "appeal_due_at",
)


def queue_page(
    filters: QueueFilters, *, user_id: int | None, after: tuple[int, int] | None, page_size: int
) -> QueuePage:
    """One page of the queue in priority order (keyset on (queue_key, id)); 3 queries whatever the depth."""
    qs = queue_queryset(filters, user_id=user_id)
    count = qs.values("pk")[: QUEUE_COUNT_CAP + 1].count()
    page_qs = qs
    if after is not None:
        page_qs = page_qs.filter(
            RawSQL('("accounts_case"."queue_key", "accounts_case"."id") > (%s, %s)', after, output_field=BooleanField())
        )
    # Plain rows, not model instances: only what a queue row shows (never the evidence JSON).
    cases = list(page_qs.order_by("queue_key", "id").values(*QUEUE_ROW_FIELDS)[: page_size + 1])
    has_more = len(cases) > page_size
    cases = cases[:page_size]
    signals: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
    if cases:
        rows = (
            Signal.objects.filter(case_id__in=[c["id"] for c in cases])
            .order_by("-severity", "code")
            .values_list("case_id", "code", "severity", "status")
        )
        for case_id, code, severity, status in rows:
            signals[case_id].append((code, severity, status))
        for items in signals.values():
            items.sort(key=lambda item: (item[2] != "active", -SEVERITY_ORDER.get(item[1], 0), item[0]))
    for c in cases:
        c["signals"] = signals[c["id"]]
    next_cursor = f"{cases[-1]['queue_key']}:{cases[-1]['id']}" if has_more and cases else ""
    return QueuePage(cases, next_cursor, min(count, QUEUE_COUNT_CAP), count > QUEUE_COUNT_CAP)


# --- The case page


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
    appeals: list[Any] = field(default_factory=list)


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
    detail.appeals = list(line.appeals.order_by("-submitted_at")[:20])  # type: ignore[attr-defined]
    detail.timeline = account_timeline(line, signals, changes, now=now)
    return detail


def account_timeline(
    line: CreditLine, signals: list[Signal], changes: list[LineChange], *, now: datetime
) -> dict[str, Any]:
    """The last 12 months of an account as Plotly-ready series (5 queries)."""
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

    def add(lane: int, label: str, symbol: str, color: str, points: list[tuple[datetime, str]]) -> None:
        if points:
            series.append(
                {
                    "lane": lane,
                    "label": label,
                    "symbol": symbol,
                    "color": color,
                    "x": [p[0].isoformat() for p in points],
                    "text": [p[1] for p in points],
                }
            )

    drawdowns = Drawdown.objects.filter(line=line, occurred_at__gte=start).order_by("occurred_at")
    add(
        0,
        _("drawdown"),
        "circle",
        "#1f5fbf",
        [(d.occurred_at, f"¥{d.amount:,.2f} · {d.term_months}m") for d in drawdowns],
    )
    installments = list(Installment.objects.filter(line=line, due_date__gte=start.date()).order_by("due_date"))
    add(
        1,
        _("repayment"),
        "triangle-up",
        "#4d6b2f",
        [(i.paid_at, f"¥{i.paid_amount:,.2f} (due {i.due_date})") for i in installments if i.paid_at],
    )
    tz = timezone.get_current_timezone()
    for i in installments:
        due = datetime.combine(i.due_date, datetime.min.time(), tzinfo=tz)
        end = i.paid_at or now
        if end - due >= timedelta(days=1):
            spans.append(
                {
                    "lane": 2,
                    "x0": due.isoformat(),
                    "x1": end.isoformat(),
                    "color": "#b3261e" if (end - due).days >= 30 else "#b26a00",
                }
            )
    add(
        2,
        _("overdue"),
        "square",
        "#b3261e",
        [
            (
                datetime.combine(i.due_date, datetime.min.time(), tzinfo=tz),
                f"¥{i.amount:,.2f} due, {((i.paid_at or now) - datetime.combine(i.due_date, datetime.min.time(), tzinfo=tz)).days} days late",
            )
            for i in installments
            if (i.paid_at or now) - datetime.combine(i.due_date, datetime.min.time(), tzinfo=tz) >= timedelta(days=1)
        ],
    )
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
        [(t.occurred_at, f"¥{t.amount:,.2f} → {t.get_counterparty_category_display()}") for t in risky],
    )
    add(
        5,
        _("signal fired"),
        "star",
        "#b3261e",
        [(s.fired_at, f"{s.code} ({s.severity})") for s in signals if s.fired_at >= start],
    )
    add(
        5,
        _("signal cleared"),
        "star-open",
        "#4d6b2f",
        [(s.cleared_at, f"{s.code} {s.status}") for s in signals if s.cleared_at and s.cleared_at >= start],
    )
    add(
        6,
        _("line change"),
        "line-ns-open",
        "#1d2430",
        [
            (c.at, f"{c.kind}: {c.status_before}→{c.status_after}, limit ¥{c.limit_after:,.2f}")
            for c in changes
            if c.at >= start
        ],
    )
    return {"lanes": lanes, "series": series, "spans": spans, "start": start.isoformat(), "end": now.isoformat()}


def operators_for_assignment() -> QuerySet:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(is_active=True, groups__isnull=False).distinct().order_by("username")
