"""Reads that span models. Each costs a fixed number of queries whatever the number of rows."""

from __future__ import annotations

from django.db.models import Prefetch, Q, QuerySet

from accounts.models import Case, CaseStatus, Signal, SignalStatus


def flagged_cases(*, after: tuple[int, int] | None = None, limit: int = 50) -> list[Case]:
    """Open cases, most severe first, with their line, borrower and active signals (3 queries).

    Keyset pagination on (severity_rank desc, id asc): `after` is the last row's (rank, id).
    """
    qs: QuerySet[Case] = (
        Case.objects.filter(status=CaseStatus.OPEN)
        .select_related("line__borrower")
        .prefetch_related(
            Prefetch(
                "line__signals",
                queryset=Signal.objects.filter(status=SignalStatus.ACTIVE).order_by("-fired_at"),
                to_attr="active_signals",
            )
        )
        .order_by("-severity_rank", "id")
    )
    if after is not None:
        rank, case_id = after
        qs = qs.filter(Q(severity_rank__lt=rank) | Q(severity_rank=rank, id__gt=case_id))
    return list(qs[:limit])
