"""Keeping the dashboard's figures: each closed day's counted once from the base tables, in one transaction; today's
up to a few minutes ago, with the members counted (DayMember), so that the page counts only what came since."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.figures import day_start, params
from riskops.dashboard.selectors import ALL_FIGURES, counted_days, counts_direct, late_commit, spans
from riskops.models import DailyFigure, DailyFiguresDay, DayMember

log = logging.getLogger(__name__)

# One refresh at a time (a beat task and a command may meet): an advisory lock's key.
_LOCK = 7_316_042


def dashboard_refresh(*, days: Iterable[date] | None = None, rebuild: bool = False) -> int:
    """Count closed days into DailyFigure, then keep today's up to now less the late-commit margin; returns how
    many closed days were counted.

    By default: every closed day of the last DASHBOARD_DAYS not counted yet (in this time zone), and yesterday
    again while its count is younger than midnight plus the late-commit margin (a change stamped just before
    midnight may commit after it). `rebuild`: every closed day of the window.
    `days`: those days (closed ones only). Idempotent: a day's rows are replaced in the transaction that counts it.
    """
    today = timezone.localdate()
    window = [today - timedelta(days=n) for n in range(settings.DASHBOARD_DAYS, 0, -1)]
    if days is not None:
        wanted = sorted({d for d in days if d < today})
    elif rebuild:
        wanted = window
    else:
        have = counted_days(window[0], window[-1])
        settled = day_start(today) + late_commit()
        yesterday = today - timedelta(days=1)
        recount = not DailyFiguresDay.objects.filter(
            day=yesterday, until__isnull=True, computed_at__gte=settled
        ).exists()
        wanted = sorted({d for d in window if d not in have} | ({yesterday} if recount else set()))
    done = 0
    for start, end in spans(wanted, longest=31):
        with transaction.atomic():
            with connection.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK])
            counts = counts_direct(start, end)
            DailyFigure.objects.filter(day__range=(start, end)).delete()
            DailyFigure.objects.bulk_create(
                [DailyFigure(day=d, figure=f, key=k, n=n) for (f, d, k), n in counts.items() if n], batch_size=5000
            )
            DailyFiguresDay.objects.filter(day__range=(start, end)).delete()  # today's kept part is not in a span
            at = timezone.now()
            n_days = (end - start).days + 1
            DailyFiguresDay.objects.bulk_create(
                [
                    DailyFiguresDay(day=start + timedelta(days=i), time_zone=settings.TIME_ZONE, computed_at=at)
                    for i in range(n_days)
                ]
            )
            done += n_days
    if done:
        log.info("dashboard: counted %d closed days", done)
    dashboard_keep_today()
    return done


def dashboard_keep_today(now: datetime | None = None) -> datetime:
    """Keep today's figures up to `now` less the late-commit margin: the members of what happened since the last
    time (and within the margin before it, for changes committed late) go into DayMember, and today's DailyFigure
    rows become their counts. Returns the instant kept up to."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    first = day_start(today)
    until = max(first, now - late_commit())
    members = DayMember._meta.db_table
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK])
        DayMember.objects.exclude(day=today).delete()
        DailyFiguresDay.objects.filter(until__isnull=False).exclude(day=today).delete()
        mark = DailyFiguresDay.objects.filter(day=today).first()
        if mark is None or mark.time_zone != settings.TIME_ZONE or mark.until is None:
            DayMember.objects.filter(day=today).delete()
            since = first
        else:
            since = max(first, mark.until - late_commit())
        if until > since:
            insert = " UNION ALL ".join(
                f"SELECT day, '{f.name}', key, member FROM ({f.sql}) AS m(day, key, member)"  # noqa: S608 - the figures' SQL
                " WHERE member IS NOT NULL"
                for f in ALL_FIGURES.values()
            )
            with connection.cursor() as cur:
                cur.execute("SET LOCAL jit = off")
                cur.execute(
                    f"INSERT INTO {members} (day, figure, key, member) {insert}"
                    " ON CONFLICT (day, figure, key, member) DO NOTHING",
                    {**params(today, today), "start": since, "end": until},
                )
        DailyFigure.objects.filter(day=today).delete()
        with connection.cursor() as cur:
            cur.execute(
                f"INSERT INTO {DailyFigure._meta.db_table} (day, figure, key, n)"  # noqa: S608 - table names
                f" SELECT day, figure, key, count(*) FROM {members} WHERE day = %s GROUP BY day, figure, key",
                [today],
            )
        DailyFiguresDay.objects.update_or_create(
            day=today, defaults={"time_zone": settings.TIME_ZONE, "computed_at": now, "until": until}
        )
    return until


def dashboard_forget() -> None:
    """Forget every counted day (after data was written into past days, as seed_demo does): the dashboard counts
    them live until the next refresh counts them again."""
    with transaction.atomic():
        DailyFiguresDay.objects.all().delete()
        DailyFigure.objects.all().delete()
        DayMember.objects.all().delete()
