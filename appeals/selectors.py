"""Reads for the appeal pages; each costs a fixed number of queries whatever the number of rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import BooleanField, Count, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from accounts.hooks import CasePanel
from accounts.selectors.case import CaseDetail, case_detail
from accounts.selectors.queue import by_line_search, operators_for_assignment
from appeals.figures import figure_appeal_ids
from appeals.models import CLOCK_STATES, OPEN_STATES, Appeal, AppealAlert, AppealRuleOutcome, AppealStatus, RuleOutcome

DECIDED_STATES = [s.value for s in AppealStatus if s not in OPEN_STATES]

# The inbox's status filter: what each value selects ("" is the default view, appeals whose SLA clock runs).
INBOX_STATUSES: dict[str, list[str]] = {
    "": [str(s) for s in CLOCK_STATES],
    AppealStatus.AWAITING_APPROVAL.value: [AppealStatus.AWAITING_APPROVAL.value],
    AppealStatus.AWAITING_INFO.value: [AppealStatus.AWAITING_INFO.value],
    "decided": DECIDED_STATES,
    **{s: [s] for s in DECIDED_STATES},
    "all": [s.value for s in AppealStatus],
}

INBOX_FIELDS = (
    "id",
    "status",
    "priority",
    "reason",
    "channel",
    "submitted_at",
    "sla_due_at",
    "sla_paused_at",
    "decided_at",
    "outcome",
    "case_id",
    "line__account_no",
    "line__status",
    "line__limit",
    "line__borrower__name",
    "line__borrower__phone",
    "case__assignee__username",
)

_APPEAL = Appeal._meta.db_table


@dataclass(frozen=True)
class InboxFilters:
    """What an operator narrows the inbox to (checked by `appeals.forms.InboxFilterForm`)."""

    status: str = ""  # a key of INBOX_STATUSES
    reason: str = ""
    sla: str = ""  # "", "within", "due_soon", "breached": the clock's state, for appeals whose clock runs
    assignee: str = ""  # "", "me", "unassigned", or an operator's id (the assignee of the appeal's case)
    q: str = ""  # "#<appeal id>", 4 digits (a phone's last 4), or an account number or its beginning
    # A dashboard figure's appeals (appeals.figures), whatever their status unless one is named.
    figure: str = ""
    figure_from: date | None = None
    figure_to: date | None = None
    figure_key: str = ""

    @property
    def decided(self) -> bool:
        """Decided appeals are listed newest decision first; the others nearest deadline first."""
        return set(INBOX_STATUSES[self.status]) <= set(DECIDED_STATES)


@dataclass
class InboxPage:
    appeals: list[dict[str, Any]]
    next_cursor: str
    prev_cursor: str


def parse_cursor(raw: str) -> tuple[datetime, int] | None:
    """A keyset cursor is "<iso time>|<id>"; anything else means the first page."""
    try:
        when, appeal_id = raw.rsplit("|", 1)
        parsed = datetime.fromisoformat(when), int(appeal_id)
    except ValueError:
        return None
    return parsed if parsed[0].tzinfo is not None else None


def inbox_queryset(filters: InboxFilters, *, user_id: int | None, now: datetime | None = None) -> QuerySet[Appeal]:
    """The appeals the filter selects, unordered."""
    qs = Appeal.objects.all()
    if filters.figure and filters.figure_from and filters.figure_to:
        qs = qs.filter(
            id__in=figure_appeal_ids(
                filters.figure, start=filters.figure_from, end=filters.figure_to, key=filters.figure_key
            )
        )
    if filters.status != "all" and not (filters.figure and filters.status == ""):
        qs = qs.filter(status__in=INBOX_STATUSES[filters.status])
    if filters.reason:
        qs = qs.filter(reason=filters.reason)
    if filters.sla:
        qs = _by_clock(qs, filters, now or timezone.now())
    if filters.assignee == "me":
        qs = qs.filter(case__assignee_id=user_id)
    elif filters.assignee == "unassigned":
        qs = qs.filter(case__assignee__isnull=True)
    elif filters.assignee:
        qs = qs.filter(case__assignee_id=int(filters.assignee))
    return _by_search(qs, filters.q) if filters.q else qs


def _by_clock(qs: QuerySet[Appeal], filters: InboxFilters, now: datetime) -> QuerySet[Appeal]:
    """The clock's state as the SLA column shows it (live, not the priority the aging job last wrote); appeals
    whose clock is paused or stopped are in none."""
    if not set(INBOX_STATUSES[filters.status]) <= set(CLOCK_STATES):
        # Only where the status filter does not already say it: said twice, the planner counts its selectivity
        # twice and leaves the deadline index for a sort.
        qs = qs.filter(status__in=CLOCK_STATES)
    soon = now + timedelta(hours=settings.APPEAL_DUE_SOON_HOURS)
    if filters.sla == "breached":
        return qs.filter(sla_due_at__lt=now)
    if filters.sla == "due_soon":
        return qs.filter(sla_due_at__gte=now, sla_due_at__lt=soon)
    return qs.filter(sla_due_at__gte=soon)


def _by_search(qs: QuerySet[Appeal], q: str) -> QuerySet[Appeal]:
    """An appeal's number (#12), a phone's last 4 digits, or an account number or its beginning."""
    if q.startswith("#"):
        return qs.filter(pk=int(q[1:]))
    return by_line_search(qs, q)  # as the queue searches


def inbox_page(
    filters: InboxFilters,
    *,
    user_id: int | None,
    after: tuple[datetime, int] | None = None,
    before: tuple[datetime, int] | None = None,
    page_size: int,
) -> InboxPage:
    """One page of the inbox: keyset pages on (deadline, id), or (decision time, id) newest first for decided
    appeals, forwards from `after` or backwards from `before`. One query at any depth and any page size."""
    qs = inbox_queryset(filters, user_id=user_id)
    key = "decided_at" if filters.decided else "sla_due_at"
    if filters.decided:
        qs = qs.filter(decided_at__isnull=False)  # always true of a decided appeal; lets its index serve
    backwards = before is not None and after is None
    cursor = after if not backwards else before
    # Forwards in the page's order, or backwards against it; ascending in SQL iff the comparison is ">".
    ascending = filters.decided == backwards
    if cursor is not None:
        qs = qs.filter(
            RawSQL(  # noqa: S611 - the table and column names are the model's, the values bound
                f'("{_APPEAL}"."{key}", "{_APPEAL}"."id") {">" if ascending else "<"} (%s, %s)',
                cursor,
                output_field=BooleanField(),
            )
        )
    order = (key, "id") if ascending else (f"-{key}", "-id")
    rows = list(qs.order_by(*order).values(*INBOX_FIELDS)[: page_size + 1])
    more = len(rows) > page_size
    rows = rows[:page_size]
    if backwards:
        rows.reverse()
    has_next, has_prev = (True, more) if backwards else (more, cursor is not None)
    return InboxPage(
        rows,
        _cursor(rows[-1], key) if has_next and rows else "",
        _cursor(rows[0], key) if has_prev and rows else "",
    )


def _cursor(row: dict[str, Any], key: str) -> str:
    return f"{row[key].isoformat()}|{row['id']}"


def operators_for_appeals() -> list[Any]:
    """Who an appeal may be assigned to: its case's assignee, so those the queue offers (roles that decide)."""
    return list(operators_for_assignment())


def inbox_counts() -> dict[str, int]:
    """How many appeals wait in each open tab (open appeals are few: the count is one small index scan); past
    their deadline now, as the SLA filter and column have it."""
    counts = Appeal.objects.filter(status__in=OPEN_STATES).aggregate(
        open=Count("id", filter=Q(status__in=CLOCK_STATES)),
        awaiting_info=Count("id", filter=Q(status=AppealStatus.AWAITING_INFO)),
        breached=Count("id", filter=Q(status__in=CLOCK_STATES, sla_due_at__lt=timezone.now())),
    )
    return {k: v or 0 for k, v in counts.items()}


def unread_alerts(user_id: int) -> list[AppealAlert]:
    return list(
        AppealAlert.objects.filter(recipient_id=user_id, read_at__isnull=True)
        .select_related("appeal__line")
        .order_by("-created_at")[:20]
    )


def overturn_rates() -> list[dict[str, Any]]:
    """Per rule family: decided appeals that overturned or upheld it, and the overturn rate."""
    rows = (
        AppealRuleOutcome.objects.values("code")
        .annotate(
            overturned=Count("id", filter=Q(outcome=RuleOutcome.OVERTURNED)),
            upheld=Count("id", filter=Q(outcome=RuleOutcome.UPHELD)),
        )
        .order_by("code")
    )
    return [
        {**r, "total": r["overturned"] + r["upheld"], "rate": r["overturned"] / (r["overturned"] + r["upheld"])}
        for r in rows
    ]


@dataclass
class AppealDetail:
    appeal: Appeal
    documents: list[Any]
    case: CaseDetail
    others: list[Appeal]


def appeal_detail(appeal_id: int) -> AppealDetail:
    """The appeal, its documents, and the case page's evidence beside it."""
    appeal = Appeal.objects.select_related("decided_by", "decision__reviewed_by").get(pk=appeal_id)
    documents = list(appeal.documents.order_by("round", "id"))
    detail = case_detail(appeal.case_id)
    others = [a for a in _account_appeals(detail) if a.pk != appeal.pk]
    return AppealDetail(appeal, documents, detail, others)


def case_panels(detail: CaseDetail) -> list[CasePanel]:
    """The case page's sections about appeals (`accounts.hooks.case_panels`): the open appeal, if any, under the
    header, and the account's appeals in its history. One query."""
    appeals = list(Appeal.objects.filter(line=detail.line).order_by("-submitted_at")[:20])
    panels = [CasePanel("history", "appeals/_case_appeals.html", {"appeals": appeals})]
    panels += [CasePanel("top", "appeals/_case_open_appeal.html", {"appeal": a}) for a in appeals if a.is_open]
    return panels


def _account_appeals(detail: CaseDetail) -> list[Appeal]:
    """The account's appeals, as this app's panel of the case page read them."""
    return next((p.context["appeals"] for p in detail.panels if p.template == "appeals/_case_appeals.html"), [])


def appeals_sent_by(user_id: int) -> QuerySet[Appeal]:
    """The appeals this API user sent (never a borrower's own, sent through their link), newest first."""
    return (
        Appeal.objects.filter(submitted_by_id=user_id)
        .select_related("line")
        .prefetch_related("documents")
        .order_by("-id")
    )
