"""The accounts app's dashboard figures, each defined once, as SQL over the base tables.

A daily figure is a query of rows (day, key, member) for what happened in [start, end): a case frozen by a signal
family, a case opened, a line's freeze lifted... Its count for a day and key is the number of distinct members
(cases); the dashboard keeps closed days' counts (riskops.dashboard) and counts today from this same SQL, and the
queue's drill-down lists the members themselves (`figure_case_ids`), so a figure and its queue agree by definition.
A figure whose members are not cases (line changes: the frozen stock's moves) has no drill-down.

Days are whole days in the platform's time zone (settings.TIME_ZONE); every timestamp used is the time the row was
written, so a closed day's figures never change afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.models import Case, CreditLine, Decision, LiftCause, LineChange, RuleCode, Signal


@dataclass(frozen=True)
class Figure:
    name: str
    sql: str  # rows of (day, key, member) for %(start)s <= ts < %(end)s
    drill: bool = True  # its members are cases (the queue lists them)


_LC = LineChange._meta.db_table
_S = Signal._meta.db_table
_C = Case._meta.db_table
_D = Decision._meta.db_table
_L = CreditLine._meta.db_table


def _day(column: str) -> str:
    return f"({column} AT TIME ZONE %(tz)s)::date"


# Time from a case's opening to its resolution, in the chart's buckets (the keys of "resolved").
DECISION_TIME_BUCKETS = [("h1", 1), ("h4", 4), ("d1", 24), ("d3", 72), ("d7", 168), ("more", None)]
_BUCKET = (
    "CASE "
    + " ".join(
        f"WHEN c.resolved_at - c.opened_at < interval '{hours} hours' THEN '{key}'"
        for key, hours in DECISION_TIME_BUCKETS
        if hours
    )
    + " ELSE 'more' END"
)

# The case a line change belongs to: the line's latest case opened by then (a line has one unresolved case at a time).
_CASE_OF_CHANGE = f"(SELECT max(c.id) FROM {_C} c WHERE c.line_id = lc.line_id AND c.opened_at <= lc.at)"

FIGURES: dict[str, Figure] = {
    f.name: f
    for f in [
        # Cases whose line a signal froze, by the signal's family (a hand freeze has no signal and no case).
        Figure(
            "freeze",
            f"SELECT {_day('lc.at')}, s.code::text, s.case_id FROM {_LC} lc JOIN {_S} s ON s.id = lc.signal_id"
            f" WHERE lc.kind = 'freeze' AND s.case_id IS NOT NULL AND lc.at >= %(start)s AND lc.at < %(end)s",
        ),
        # Freezes and cuts lifted, keyed by their cause ("borrower": the borrower's own repayment or update).
        Figure(
            "lift",
            f"SELECT * FROM (SELECT {_day('lc.at')} AS day, lc.cause::text AS key, {_CASE_OF_CHANGE} AS member"
            f" FROM {_LC} lc WHERE lc.kind IN ('unfreeze', 'restore_available')"
            " AND lc.at >= %(start)s AND lc.at < %(end)s) x WHERE member IS NOT NULL",
        ),
        # Line changes into "frozen" and out of it: the frozen stock's daily moves.
        Figure(
            "frozen_in",
            f"SELECT {_day('lc.at')}, ''::text, lc.id FROM {_LC} lc WHERE lc.status_after = 'frozen'"
            " AND lc.status_before <> 'frozen' AND lc.at >= %(start)s AND lc.at < %(end)s",
            drill=False,
        ),
        Figure(
            "frozen_out",
            f"SELECT {_day('lc.at')}, ''::text, lc.id FROM {_LC} lc WHERE lc.status_before = 'frozen'"
            " AND lc.status_after <> 'frozen' AND lc.at >= %(start)s AND lc.at < %(end)s",
            drill=False,
        ),
        # The queue's inflow and outflow; the outflow keyed by the time the case took (DECISION_TIME_BUCKETS).
        Figure(
            "opened",
            f"SELECT {_day('c.opened_at')}, ''::text, c.id FROM {_C} c"
            " WHERE c.opened_at >= %(start)s AND c.opened_at < %(end)s",
        ),
        Figure(
            "resolved",
            f"SELECT {_day('c.resolved_at')}, {_BUCKET}, c.id FROM {_C} c"
            " WHERE c.resolved_at >= %(start)s AND c.resolved_at < %(end)s",
        ),
        # Signals that froze or cut (the overturn rate's denominator), keyed "CODE:version"; their cases.
        Figure(
            "adverse",
            f"SELECT {_day('s.fired_at')}, s.code || ':' || s.ruleset_version, s.case_id FROM {_S} s"
            " WHERE s.action IN ('freeze', 'cut') AND s.case_id IS NOT NULL"
            " AND s.fired_at >= %(start)s AND s.fired_at < %(end)s",
        ),
        # Decisions taken and reviewed, keyed by the operator's id.
        Figure(
            "decisions",
            f"SELECT {_day('d.proposed_at')}, d.proposed_by_id::text, d.case_id FROM {_D} d"
            " WHERE d.proposed_at >= %(start)s AND d.proposed_at < %(end)s"
            f" UNION ALL SELECT {_day('d.reviewed_at')}, d.reviewed_by_id::text, d.case_id FROM {_D} d"
            " WHERE d.reviewed_at >= %(start)s AND d.reviewed_at < %(end)s",
        ),
    ]
}

# The overturn rate's numerator is not a closed-day figure: a signal fired weeks ago is overturned today. It is
# counted live, over the few overturned signals (a partial index), per day fired: of the cases a rule froze or cut
# on those days, those where a person then overturned it (an appeal approved, a reviewer's unfreeze).
OVERTURNED = Figure(
    "overturned",
    f"SELECT {_day('s.fired_at')}, s.code || ':' || s.ruleset_version, s.case_id FROM {_S} s"
    " WHERE s.status = 'overturned' AND s.action IN ('freeze', 'cut') AND s.case_id IS NOT NULL"
    " AND s.fired_at >= %(start)s AND s.fired_at < %(end)s",
)

# "Now" figures whose queue is a set of cases: each line's latest case.
FROZEN_NOW = Figure(
    "frozen_now",
    f"SELECT NULL::date, ''::text, (SELECT max(c.id) FROM {_C} c WHERE c.line_id = l.id) FROM {_L} l"
    " WHERE l.status = 'frozen'",
)
CUT_NOW = Figure(
    "cut_now",
    f"SELECT NULL::date, ''::text, (SELECT max(c.id) FROM {_C} c WHERE c.line_id = l.id) FROM {_L} l"
    f" WHERE l.status = 'active' AND EXISTS (SELECT 1 FROM {_S} s WHERE s.line_id = l.id AND s.status = 'active'"
    " AND s.action = 'cut')",
)

# The frozen stock at the end of a day (the last day of the drill-down's range): lines whose last change into or
# out of "frozen" by then was into it; their case then. The chart's point is frozen now less the net changes since.
FROZEN_AT = Figure(
    "frozen_at",
    f"SELECT NULL::date, ''::text, (SELECT max(c.id) FROM {_C} c WHERE c.line_id = x.line_id AND c.opened_at < %(end)s)"
    f" FROM (SELECT DISTINCT ON (lc.line_id) lc.line_id, lc.status_after FROM {_LC} lc"
    " WHERE lc.at < %(end)s AND (lc.status_after = 'frozen') <> (lc.status_before = 'frozen')"
    " ORDER BY lc.line_id, lc.at DESC, lc.id DESC) x WHERE x.status_after = 'frozen'",
)

# The median time from a case's opening to its decision, over the cases decided in [%s, %s).
MEDIAN_DECISION_SECONDS = (
    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM c.resolved_at - c.opened_at))"
    f" FROM {_C} c WHERE c.resolved_at >= %s AND c.resolved_at < %s"
)

# How many lines CUT_NOW has, from index-only scans: lines with a cut in force but not frozen or closed (a merge
# anti-join of signal_active_cut and line_not_active).
CUT_NOW_COUNT = (
    f"SELECT count(DISTINCT s.line_id) FROM {_S} s WHERE s.status = 'active' AND s.action = 'cut'"
    f" AND NOT EXISTS (SELECT 1 FROM {_L} l WHERE l.id = s.line_id AND l.status <> 'active')"
)

DRILLABLE = {
    **{n: f for n, f in FIGURES.items() if f.drill},
    "overturned": OVERTURNED,
    "frozen_at": FROZEN_AT,
}
NOW_FIGURES = {"frozen_now": FROZEN_NOW, "cut_now": CUT_NOW}
FIGURE_CHOICES = [*DRILLABLE, *NOW_FIGURES]


# The longest span of days a figure is counted or drilled into over (the dashboard's date filter too).
MAX_FIGURE_DAYS = 400


FIGURE_LABELS = {
    "freeze": _("cases frozen by a signal"),
    "lift": _("freezes and cuts lifted"),
    "opened": _("cases opened"),
    "resolved": _("cases decided"),
    "adverse": _("cases frozen or cut by a rule"),
    "overturned": _("of them overturned by a person"),
    "decisions": _("cases an operator decided on"),
    "frozen_now": _("lines frozen now"),
    "frozen_at": _("lines frozen at the end of the day"),
    "cut_now": _("lines cut now"),
}
BUCKET_LABELS = {
    "h1": _("under 1 hour"),
    "h4": _("1 to 4 hours"),
    "d1": _("4 to 24 hours"),
    "d3": _("1 to 3 days"),
    "d7": _("3 to 7 days"),
    "more": _("over 7 days"),
}


def key_label(figure: str, key: str) -> str:
    """A figure's key in words: a rule family (and version), a cause, a time bucket, an operator."""
    code, _sep, version = key.partition(":")
    if code in RuleCode.values:
        label = str(RuleCode(code).label)
        return f"{label} v{version}" if version else label
    if figure == "lift":
        return str(LiftCause(key).label) if key in LiftCause.values else gettext("a person or a job")
    if figure == "resolved" and key in BUCKET_LABELS:
        return str(BUCKET_LABELS[key])
    if figure == "decisions" and key.isdigit():
        user = get_user_model().objects.filter(pk=int(key)).values_list("username", flat=True).first()
        return user or key
    return key


def day_start(day: date) -> datetime:
    """The first instant of a day in the platform's time zone."""
    return datetime.combine(day, time.min, tzinfo=timezone.get_default_timezone())


def params(start: date, end: date) -> dict[str, Any]:
    """The parameters of a figure's SQL for the days start..end (both included)."""
    return {"tz": settings.TIME_ZONE, "start": day_start(start), "end": day_start(end + timedelta(days=1))}


def counted(figure: Figure) -> str:
    """A figure's SQL as (day, key, n) rows."""
    return f"SELECT day, key, count(DISTINCT member) FROM ({figure.sql}) AS m(day, key, member) GROUP BY day, key"


def figure_case_ids(name: str, *, start: date | None, end: date | None, key: str = "") -> RawSQL:
    """The cases behind a figure, for the queue's drill-down: `Case.objects.filter(id__in=figure_case_ids(...))`.

    A "now" figure takes no dates. A key of "" takes every key; "CODE" takes every version of a rule ("CODE:3" one).
    """
    if name in NOW_FIGURES:
        sql, values = NOW_FIGURES[name].sql, {}
    else:
        assert start is not None and end is not None
        sql, values = DRILLABLE[name].sql, params(start, end)
    where = "member IS NOT NULL"
    if key:
        where += " AND (key = %(key)s OR key LIKE %(key_prefix)s)"
        values = {**values, "key": key, "key_prefix": key.replace("%", "").replace("_", r"\_") + ":%"}
    return positional(f"SELECT member FROM ({sql}) AS m(day, key, member) WHERE {where}", values)


def positional(sql: str, values: dict[str, object]) -> RawSQL:
    """SQL written with %(name)s as a RawSQL of %s and a list (what a queryset's other parameters are joined to)."""
    order: list[object] = []

    def bind(match: re.Match[str]) -> str:
        order.append(values[match.group(1)])
        return "%s"

    return RawSQL(_NAMED.sub(bind, sql), order)  # noqa: S611 - SQL of this module, values bound


_NAMED = re.compile(r"%\((\w+)\)s")
