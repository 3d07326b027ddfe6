"""The appeals app's dashboard figures (see accounts.figures for what a figure is): appeals received, and appeals
decided keyed by whether the decision met the SLA; the inbox's drill-down lists their appeals."""

from __future__ import annotations

from datetime import date

from django.db.models.expressions import RawSQL

from accounts.figures import Figure, params, positional
from appeals.models import Appeal

_A = Appeal._meta.db_table

FIGURES: dict[str, Figure] = {
    f.name: f
    for f in [
        Figure(
            "appeal_received",
            f"SELECT (a.submitted_at AT TIME ZONE %(tz)s)::date, ''::text, a.id FROM {_A} a"
            " WHERE a.submitted_at >= %(start)s AND a.submitted_at < %(end)s",
        ),
        Figure(
            "appeal_decided",
            f"SELECT (a.decided_at AT TIME ZONE %(tz)s)::date,"
            f" CASE WHEN a.decided_at <= a.sla_due_at THEN 'in_sla' ELSE 'late' END, a.id FROM {_A} a"
            " WHERE a.decided_at >= %(start)s AND a.decided_at < %(end)s",
        ),
    ]
}
FIGURE_CHOICES = list(FIGURES)


def figure_appeal_ids(name: str, *, start: date, end: date, key: str = "") -> RawSQL:
    """The appeals behind a figure, for the inbox's drill-down."""
    where = "member IS NOT NULL" + (" AND key = %(key)s" if key else "")
    return positional(
        f"SELECT member FROM ({FIGURES[name].sql}) AS m(day, key, member) WHERE {where}",
        {**params(start, end), "key": key},
    )
