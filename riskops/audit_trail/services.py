"""The one state change of the audit page: an export of the trail is itself an audit event."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from riskops.audit_trail import selectors
from riskops.audit_trail.catalogue import EXPORT_ACTION
from riskops.core.audit import Actor, Change, audit_write


@dataclass(frozen=True)
class Export:
    filters: selectors.AuditFilters
    up_to: int  # the newest event the export holds: the export is the filter's events up to it
    rows: int


def audit_export(*, filters: selectors.AuditFilters, query: dict[str, str], actor: Actor) -> Export:
    """Record that `actor` exports the trail `filters` select (as typed: `query`), before a row is sent.

    The export is the filter's events up to the newest one now: its own event and later ones are not in it, so the
    record says exactly which rows left (the filter, the last id, how many).
    """
    at = timezone.now()
    with transaction.atomic():
        up_to = selectors.newest_id()
        rows = selectors.export_count(filters, up_to)
        audit_write(
            actor=actor,
            at=at,
            changes=[
                Change(
                    EXPORT_ACTION,
                    "audit_event",
                    up_to,
                    None,
                    None,
                    {"filter": query, "up_to_id": up_to, "rows": rows},
                )
            ],
        )
    return Export(filters, up_to, rows)
