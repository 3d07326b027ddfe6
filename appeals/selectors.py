"""Reads for the appeal pages; each costs a fixed number of queries whatever the number of rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Q

from accounts.hooks import CasePanel
from accounts.selectors.case import CaseDetail, case_detail
from appeals.models import CLOCK_STATES, OPEN_STATES, Appeal, AppealAlert, AppealRuleOutcome, AppealStatus, RuleOutcome

INBOX_TABS = {
    "open": [str(s) for s in CLOCK_STATES],
    "awaiting_info": [AppealStatus.AWAITING_INFO.value],
    "decided": [s.value for s in AppealStatus if s not in OPEN_STATES],
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


@dataclass
class InboxPage:
    appeals: list[dict[str, Any]]
    next_cursor: str


def parse_cursor(raw: str) -> tuple[datetime, int] | None:
    """A keyset cursor is "<iso time>|<id>"; anything else means the first page."""
    try:
        when, appeal_id = raw.rsplit("|", 1)
        return datetime.fromisoformat(when), int(appeal_id)
    except ValueError:
        return None


def inbox_page(tab: str, *, after: tuple[datetime, int] | None, page_size: int) -> InboxPage:
    """Open appeals nearest deadline first (the deadline orders them as their priority does); decided ones newest
    first. Keyset pages on (time, id): one query at any depth."""
    qs = Appeal.objects.filter(status__in=INBOX_TABS[tab])
    if tab == "decided":
        order, key = ("-decided_at", "-id"), "decided_at"
        if after:
            qs = qs.filter(Q(decided_at__lt=after[0]) | Q(decided_at=after[0], id__lt=after[1]))
    else:
        order, key = ("sla_due_at", "id"), "sla_due_at"
        if after:
            qs = qs.filter(Q(sla_due_at__gt=after[0]) | Q(sla_due_at=after[0], id__gt=after[1]))
    rows = list(qs.order_by(*order).values(*INBOX_FIELDS)[: page_size + 1])
    next_cursor = ""
    if len(rows) > page_size:
        rows = rows[:page_size]
        last = rows[-1]
        next_cursor = f"{last[key].isoformat()}|{last['id']}"
    return InboxPage(rows, next_cursor)


def inbox_counts() -> dict[str, int]:
    """How many appeals wait in each open tab (open appeals are few: the count is one small index scan)."""
    counts = Appeal.objects.filter(status__in=OPEN_STATES).aggregate(
        open=Count("id", filter=Q(status__in=CLOCK_STATES)),
        awaiting_info=Count("id", filter=Q(status=AppealStatus.AWAITING_INFO)),
        breached=Count("id", filter=Q(status__in=CLOCK_STATES, priority=2)),
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
