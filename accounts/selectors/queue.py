"""The queue: unresolved cases in priority order, filtered, in keyset pages; a fixed number of queries at any depth."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import BooleanField, Count, Model, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import Right
from django.utils import timezone

from accounts.figures import figure_case_ids
from accounts.models import Case, CaseStatus, Signal
from accounts.queue_filters import QueueFilters
from riskops.core.roles import DECIDE_CASE, holders

_M = TypeVar("_M", bound=Model)

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
    """The cases the filter selects (unresolved ones unless it names a status), unordered."""
    qs = Case.objects.all()
    if filters.figure:
        # A dashboard figure's cases: resolved ones too, unless the status filter names one.
        qs = qs.filter(
            id__in=figure_case_ids(
                filters.figure, start=filters.figure_from, end=filters.figure_to, key=filters.figure_key
            )
        )
        qs = qs.filter(status=filters.status) if filters.status else qs
    else:
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
    qs = _by_time(qs, filters, now or timezone.now())
    if filters.exposure_min is not None:
        qs = qs.filter(exposure__gte=filters.exposure_min)
    if filters.exposure_max is not None:
        qs = qs.filter(exposure__lte=filters.exposure_max)
    return by_line_search(qs, filters.q) if filters.q else qs


def by_line_search(qs: QuerySet[_M], q: str, *, line: str = "line__") -> QuerySet[_M]:
    """The rows (cases, appeals: anything with a `line`) whose line an operator's search finds: a phone's last 4
    digits, or an account number or its beginning, as sent (upstream references keep their case) or in capitals
    (the demo's JB numbers typed in lower case); the prefix index on account_no serves both. `line` is the path to
    the line ("" for a queryset of lines)."""
    if q.isdigit() and len(q) == 4:
        # The expression index on the phone's last 4 digits serves this (django-stubs type alias() loosely).
        return cast("QuerySet[_M]", qs.alias(phone_last4=Right(f"{line}borrower__phone", 4)).filter(phone_last4=q))
    return qs.filter(Q(**{f"{line}account_no__startswith": q}) | Q(**{f"{line}account_no__startswith": q.upper()}))


def sla_states(now: datetime) -> dict[str, Q]:
    """The queue's SLA filter: each state's condition on an unresolved case."""
    soon = now + timedelta(hours=settings.CASE_DUE_SOON_HOURS)
    return {
        "breached": Q(sla_due_at__lt=now),
        "due_soon": Q(sla_due_at__gte=now, sla_due_at__lt=soon),
        "within": Q(sla_due_at__gte=soon),
    }


def open_case_counts(now: datetime | None = None) -> dict[str, int]:
    """The whole queue's unresolved cases by SLA state and by risk tier ("tier1".."tier4"), in one pass over an
    index (the dashboard's figures, which link to the queue filtered by the same conditions).

    Grouped by tier (the index's order) with two counts per tier, the cases due before now and before the due-soon
    boundary; the states are their differences, which is `sla_states`' three conditions (a case always has a due
    time). Seven filtered counts per case cost twice as long."""
    states = sla_states(now or timezone.now())
    rows = (
        Case.objects.exclude(status=CaseStatus.RESOLVED)
        .values("risk_tier")
        .annotate(
            n=Count("*"),
            before_now=Count("risk_tier", filter=states["breached"]),
            before_soon=Count("risk_tier", filter=~states["within"]),
        )
        .order_by()
    )
    counts = {"breached": 0, "due_soon": 0, "within": 0, **{f"tier{t}": 0 for t in (1, 2, 3, 4)}}
    for row in rows:
        counts[f"tier{row['risk_tier']}"] = row["n"]
        counts["breached"] += row["before_now"]
        counts["due_soon"] += row["before_soon"] - row["before_now"]
        counts["within"] += row["n"] - row["before_soon"]
    return counts


def _by_time(qs: QuerySet[Case], filters: QueueFilters, now: datetime) -> QuerySet[Case]:
    """The SLA state and the opening dates (whole days in the operator's time zone)."""
    if filters.sla:
        qs = qs.filter(sla_states(now)[filters.sla])
    tz = timezone.get_current_timezone()
    if filters.opened_from:
        qs = qs.filter(opened_at__gte=datetime.combine(filters.opened_from, datetime.min.time(), tzinfo=tz))
    if filters.opened_to:
        qs = qs.filter(
            opened_at__lt=datetime.combine(filters.opened_to + timedelta(days=1), datetime.min.time(), tzinfo=tz)
        )
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
    # A dashboard figure's drill-down counts all its cases, to be read against the figure.
    count = qs.count() if filters.figure else qs.values("pk")[: QUEUE_COUNT_CAP + 1].count()
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
    if filters.figure:
        return QueuePage(cases, next_cursor, count, False)
    return QueuePage(cases, next_cursor, min(count, QUEUE_COUNT_CAP), count > QUEUE_COUNT_CAP)


def operators_for_assignment() -> QuerySet:
    """Who a case may be assigned to: active operators whose role decides cases (not auditors, not API users)."""
    return get_user_model().objects.filter(holders(DECIDE_CASE), is_active=True).order_by("username")
