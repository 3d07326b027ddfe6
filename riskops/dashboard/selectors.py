"""The dashboard's reads: daily figures (closed days kept, the rest counted live), figures of now, and the charts.

Every number comes with the link to the cases or appeals it counts (the queue's and the inbox's `figure` filters,
or their ordinary filters for figures of now), so what a manager clicks is what was counted.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Count, Sum
from django.urls import get_script_prefix, reverse
from django.utils import timezone

from accounts import figures as case_figures
from accounts.models import CreditLine, LineStatus, RuleCode
from accounts.selectors.queue import open_case_counts
from appeals import figures as appeal_figures
from appeals.selectors import InboxFilters, inbox_queryset
from riskops.models import DailyFigure, DailyFiguresDay, DayMember

Counts = dict[tuple[str, date, str], int]  # (figure, day, key) -> n

ALL_FIGURES = {**case_figures.FIGURES, **appeal_figures.FIGURES}
APPEAL_FIGURES = set(appeal_figures.FIGURES)
Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval


def _figure_sql(f: case_figures.Figure, template: str) -> str:
    return template.format(name=f.name, sql=f.sql, members=DayMember._meta.db_table)


def _count(sql: str, values: dict[str, Any]) -> Counts:
    """Run a union of (figure, day, key, n) rows, without JIT (its compilation costs more than these queries)."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL jit = off")
        cur.execute(sql, values)
        return {(name, day, key): int(n) for name, day, key, n in cur.fetchall() if n}


def counts_direct(start: date, end: date, names: Iterable[str] | None = None) -> Counts:
    """The figures of days start..end counted from the base tables, in one query (the naive way, and the truth)."""
    chosen = [ALL_FIGURES[n] for n in (names or ALL_FIGURES)]
    sql = " UNION ALL ".join(
        _figure_sql(
            f, "SELECT '{name}', day, key, count(DISTINCT member) FROM ({sql}) AS m(day, key, member) GROUP BY day, key"
        )
        for f in chosen
    )
    return _count(sql, case_figures.params(start, end))


def counts_since(since: datetime, today: date) -> Counts:
    """Today's figures from `since` on, each member counted unless today's kept members (DayMember) have it."""
    sql = " UNION ALL ".join(
        _figure_sql(
            f,
            "SELECT '{name}', day, key, count(DISTINCT member) FROM ({sql}) AS m(day, key, member)"
            " WHERE NOT EXISTS (SELECT 1 FROM {members} dm WHERE dm.day = m.day AND dm.figure = '{name}'"
            " AND dm.key = m.key AND dm.member = m.member) GROUP BY day, key",
        )
        for f in ALL_FIGURES.values()
    )
    return _count(sql, {**case_figures.params(today, today), "start": since})


def counted_days(start: date, end: date) -> set[date]:
    """The days of start..end whose figures are kept whole (counted in the platform's present time zone)."""
    return set(
        DailyFiguresDay.objects.filter(
            day__range=(start, end), time_zone=settings.TIME_ZONE, until__isnull=True
        ).values_list("day", flat=True)
    )


def today_kept_until(today: date) -> datetime | None:
    """Until when today's figures are kept (DailyFigure, their members in DayMember), if they are."""
    return (
        DailyFiguresDay.objects.filter(day=today, time_zone=settings.TIME_ZONE, until__isnull=False)
        .values_list("until", flat=True)
        .first()
    )


def late_commit() -> timedelta:
    """How long after its timestamp a change may still commit (the longest write transaction): what is kept of
    today stops this long before the refresh, and today's live count starts this long before that."""
    return timedelta(seconds=settings.DASHBOARD_LATE_COMMIT_SECONDS)


def spans(days: Iterable[date], *, longest: int) -> Iterator[tuple[date, date]]:
    """Days as runs of consecutive days (first, last), none longer than `longest`."""
    run: list[date] = []
    for day in sorted(set(days)):
        if run and (day - run[-1] != timedelta(days=1) or len(run) >= longest):
            yield run[0], run[-1]
            run = []
        run.append(day)
    if run:
        yield run[0], run[-1]


def daily_counts(start: date, end: date) -> Counts:
    """The figures of days start..end: kept days read from DailyFigure; today's kept part plus what came since,
    counted live against its kept members; any other day counted live."""
    have = counted_days(start, end)
    today = timezone.localdate()
    until = today_kept_until(today) if start <= today <= end and today not in have else None
    kept = have | ({today} if until else set())
    counts: Counts = {
        (f, d, k): n
        for f, d, k, n in DailyFigure.objects.filter(day__range=(start, end)).values_list("figure", "day", "key", "n")
        if d in kept
    }
    if until:
        for key, n in counts_since(until - late_commit(), today).items():
            counts[key] = counts.get(key, 0) + n
    every = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    for first, last in spans((d for d in every if d not in kept), longest=case_figures.MAX_FIGURE_DAYS + 1):
        counts.update(counts_direct(first, last))
    return counts


# --- Links: every number's cases or appeals.


def _link(name: str, params: dict[str, Any]) -> str:
    url = _reversed(name, get_script_prefix())
    query = urlencode({k: v for k, v in params.items() if v not in ("", None)})
    return f"{url}?{query}" if query else url


@lru_cache(maxsize=16)
def _reversed(name: str, _prefix: str) -> str:
    """The address of a page (the dashboard links a thousand times to the same two)."""
    return reverse(name)


def queue_link(**params: Any) -> str:
    return _link("accounts:queue", params)


def inbox_link(**params: Any) -> str:
    return _link("appeals:inbox", params)


def figure_link(figure: str, first: date, last: date, key: str = "") -> str:
    """The queue (or for an appeal figure the inbox) showing exactly the cases or appeals a figure counts."""
    # Written out (a chart has a thousand of them): a figure's name, ISO days and a key of [A-Za-z0-9_:] need no
    # escaping but the key's ":".
    base = _reversed("appeals:inbox" if figure in APPEAL_FIGURES else "accounts:queue", get_script_prefix())
    link = f"{base}?figure={figure}&figure_from={first.isoformat()}&figure_to={last.isoformat()}"
    return link + f"&figure_key={quote(key)}" if key else link


# --- The dashboard.


@dataclass
class Tile:
    label: str  # the key of the template's label (dashboard.html words it, in both languages)
    value: Any
    link: str = ""
    note: Any = None  # a second figure (e.g. "of which the borrower's own action")
    note_link: str = ""


@dataclass
class Rate:
    """A rule's (and ruleset version's) overturn rate: k of n overturned, with a Wilson 95% interval."""

    code: str
    version: str
    n: int
    k: int
    low: float = field(init=False)
    high: float = field(init=False)

    def __post_init__(self) -> None:
        self.low, self.high = wilson(self.k, self.n)

    @property
    def rate(self) -> float | None:
        return self.k / self.n if self.n else None


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion k/n (0..1 when n is 0: nothing is known)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Dashboard:
    start: date
    end: date
    days: list[date]
    tiles: list[Tile]
    charts: dict[str, dict[str, Any]]  # name -> {"x": ..., "series": [{"name", "y", "links"}], ...}
    rates: list[Rate]
    median_hours: float | None
    kept_days: int


def dashboard(start: date, end: date, *, user_id: int | None, operator_figures: bool) -> Dashboard:
    """Everything the dashboard shows for days start..end (and now), with the link behind each number."""
    today = timezone.localdate()
    week = today - timedelta(days=6)
    # Past the range too: this week's freezes, and every day's net change up to today (the frozen stock).
    counts = daily_counts(min(start, week), max(end, today))
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    by: dict[str, dict[date, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for (f, d, k), n in counts.items():
        by[f][d][k] = n

    def total(figure: str, first: date, last: date, key: str | None = None) -> int:
        return sum(
            n for d, keys in by[figure].items() if first <= d <= last for k, n in keys.items() if key in (None, k)
        )

    tiers, of_now = now_tiles(user_id)
    frozen_now = next(t.value for t in of_now if t.label == "frozen_now")
    lift_today = total("lift", today, today)
    tiles = [
        *of_now,
        Tile("freezes_today", total("freeze", today, today), figure_link("freeze", today, today)),
        Tile("freezes_week", total("freeze", week, today), figure_link("freeze", week, today)),
        Tile(
            "lifts_today",
            lift_today,
            figure_link("lift", today, today),
            total("lift", today, today, "borrower"),
            figure_link("lift", today, today, "borrower"),
        ),
        Tile("inflow", total("opened", start, end), figure_link("opened", start, end)),
        Tile("outflow", total("resolved", start, end), figure_link("resolved", start, end)),
    ]
    charts = {
        "freezes": _series(days, [("freeze", by["freeze"], code.value) for code in RuleCode]),
        "stock": _stock(by["frozen_in"], by["frozen_out"], days, today, frozen_now),
        "flow": _series(days, [("opened", by["opened"], ""), ("resolved", by["resolved"], "")]),
        "appeals": _appeals(by, days),
        "decision_time": _buckets(by["resolved"], start, end),
        "tiers": tiers,
    }
    if operator_figures:
        charts["operators"] = _operators(by["decisions"], days)
    return Dashboard(
        start=start,
        end=end,
        days=days,
        tiles=tiles,
        charts=charts,
        rates=overturn_rates(start, end, by["adverse"]),
        median_hours=median_decision_hours(start, end),
        kept_days=len(counted_days(start, end)),
    )


def now_tiles(user_id: int | None) -> tuple[dict[str, Any], list[Tile]]:
    """The figures of now (lines frozen and cut, exposure, open cases by SLA state and tier, appeals waiting and in
    breach): counted from the tables on every request, from index-only scans."""
    # Counts over a few hundred thousand index entries each: one process is faster than a parallel plan's start.
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        cur.execute("SET LOCAL jit = off")
        # The frozen lines' count and exposure from their partial index alone (an index-only scan, 2x faster): the
        # planner, costing a bitmap scan of the status index as cheaper, reads 15,000 heap pages instead.
        cur.execute("SET LOCAL enable_bitmapscan = off")
        # Each statement planned for its values: psycopg prepares what the connection ran 5 times, and PostgreSQL's
        # plan for any value (generic) cannot tell the status is 'frozen' or not 'resolved', so it cannot use the
        # partial indexes (twice as long, in every long-lived connection).
        cur.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        frozen = CreditLine.objects.filter(status=LineStatus.FROZEN).aggregate(
            n=Count("*"), exposure=Sum("outstanding")
        )
        cur.execute(case_figures.CUT_NOW_COUNT)
        cut = int(cur.fetchone()[0])
        open_cases = open_case_counts()
        open_by_sla = {sla: open_cases[sla] for sla in ("breached", "due_soon", "within")}
        appeals_waiting = inbox_queryset(InboxFilters(), user_id=user_id).count()
        appeals_breached = inbox_queryset(InboxFilters(sla="breached"), user_id=user_id).count()
        tiers = _tiers(open_cases)
    return tiers, [
        Tile("frozen_now", frozen["n"], queue_link(figure="frozen_now")),
        Tile("exposure_frozen", frozen["exposure"] or Decimal("0"), queue_link(figure="frozen_now")),
        Tile("cut_now", cut, queue_link(figure="cut_now")),
        *(Tile(f"open_{sla}", n, queue_link(sla=sla)) for sla, n in open_by_sla.items()),
        Tile("appeals_waiting", appeals_waiting, inbox_link()),
        Tile("appeals_breached", appeals_breached, inbox_link(sla="breached")),
    ]


def _series(days: list[date], parts: list[tuple[str, dict[date, dict[str, int]], str]]) -> dict[str, Any]:
    """One series per (figure, its counts, key or "" for all keys), per day, each point linking to its cases."""
    return {
        "x": [d.isoformat() for d in days],
        "series": [
            {
                "name": figure + (f":{key}" if key else ""),
                "y": [sum(n for k, n in per_day.get(d, {}).items() if not key or k == key) for d in days],
                "links": [figure_link(figure, d, d, key) for d in days],
            }
            for figure, per_day, key in parts
        ],
    }


def _stock(
    into: dict[date, dict[str, int]], out: dict[date, dict[str, int]], days: list[date], today: date, now: int
) -> dict[str, Any]:
    """Lines frozen at the end of each day: frozen now less the net moves of every later day (today's too)."""
    later = 0
    y: dict[date, int] = {}
    day = today
    while day >= days[0]:
        if day <= days[-1]:
            y[day] = now - later
        later += into.get(day, {}).get("", 0) - out.get(day, {}).get("", 0)
        day -= timedelta(days=1)
    return {
        "x": [d.isoformat() for d in days],
        "series": [
            {"name": "frozen_at", "y": [y[d] for d in days], "links": [figure_link("frozen_at", d, d) for d in days]}
        ],
    }


def _appeals(by: dict[str, dict[date, dict[str, int]]], days: list[date]) -> dict[str, Any]:
    chart = _series(
        days,
        [
            ("appeal_received", by["appeal_received"], ""),
            ("appeal_decided", by["appeal_decided"], "in_sla"),
            ("appeal_decided", by["appeal_decided"], "late"),
        ],
    )
    in_sla = sum(chart["series"][1]["y"])
    decided = in_sla + sum(chart["series"][2]["y"])
    chart["compliance"] = in_sla / decided if decided else None
    chart["in_sla"], chart["decided"] = in_sla, decided
    return chart


def _buckets(per_day: dict[date, dict[str, int]], start: date, end: date) -> dict[str, Any]:
    keys = [k for k, _hours in case_figures.DECISION_TIME_BUCKETS]
    n = {k: sum(v.get(k, 0) for d, v in per_day.items() if start <= d <= end) for k in keys}
    return {
        "x": keys,
        "series": [
            {
                "name": "resolved",
                "y": [n[k] for k in keys],
                "links": [figure_link("resolved", start, end, k) for k in keys],
            }
        ],
    }


def _tiers(open_cases: dict[str, int]) -> dict[str, Any]:
    tiers = [1, 2, 3, 4]
    return {
        "x": [f"T{t}" for t in tiers],
        "series": [
            {"name": "open", "y": [open_cases[f"tier{t}"] for t in tiers], "links": [queue_link(tier=t) for t in tiers]}
        ],
    }


def _operators(per_day: dict[date, dict[str, int]], days: list[date]) -> dict[str, Any]:
    ids = sorted({k for v in per_day.values() for k in v if k.isdigit()}, key=int)
    names = dict(get_user_model().objects.filter(pk__in=[int(i) for i in ids]).values_list("pk", "username"))
    chart = _series(days, [("decisions", per_day, k) for k in ids])
    for s, k in zip(chart["series"], ids, strict=True):
        s["label"] = names.get(int(k), k)
    return chart


def overturn_rates(start: date, end: date, adverse: dict[date, dict[str, int]]) -> list[Rate]:
    """Per rule and ruleset version, over the cases it froze or cut on days start..end: how many a person overturned."""
    n: dict[str, int] = defaultdict(int)
    for d, keys in adverse.items():
        if start <= d <= end:
            for key, count in keys.items():
                n[key] += count
    k: dict[str, int] = defaultdict(int)
    with connection.cursor() as cur:
        cur.execute(case_figures.counted(case_figures.OVERTURNED), case_figures.params(start, end))
        for _day, key, count in cur.fetchall():
            k[key] += int(count)
    rates = [Rate(key.partition(":")[0], key.partition(":")[2], n[key], k[key]) for key in set(n) | set(k)]
    return sorted(rates, key=lambda r: (-(r.rate or 0), -r.n, r.code, r.version))


def median_decision_hours(start: date, end: date) -> float | None:
    """The median time from a case's opening to its decision, over cases decided on days start..end."""
    p = case_figures.params(start, end)
    with connection.cursor() as cur:
        cur.execute(case_figures.MEDIAN_DECISION_SECONDS, [p["start"], p["end"]])
        seconds = cur.fetchone()[0]
    return None if seconds is None else float(seconds) / 3600


@dataclass
class Drift:
    figure: str
    day: date
    key: str
    shown: int  # what the dashboard shows (a kept day's DailyFigure)
    direct: int  # the count over the base tables


def dashboard_drift(start: date, end: date) -> tuple[int, list[Drift]]:
    """How many figures of days start..end were compared, and those where the dashboard differs from the tables."""
    shown, direct = daily_counts(start, end), counts_direct(start, end)
    drifts = [
        Drift(f, d, k, shown.get((f, d, k), 0), direct.get((f, d, k), 0))
        for f, d, k in sorted(set(shown) | set(direct))
        if shown.get((f, d, k), 0) != direct.get((f, d, k), 0)
    ]
    return len(set(shown) | set(direct)), drifts
