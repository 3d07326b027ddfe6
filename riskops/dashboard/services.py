"""Keeping the dashboard's closed days: each day's figures counted once from the base tables, in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from riskops.dashboard.selectors import counted_days, counts_direct, spans
from riskops.models import DailyFigure, DailyFiguresDay

log = logging.getLogger(__name__)

# One refresh at a time (a beat task and a command may meet): an advisory lock's key.
_LOCK = 7_316_042


def dashboard_refresh(*, days: Iterable[date] | None = None, rebuild: bool = False) -> int:
    """Count closed days into DailyFigure; returns how many days were counted.

    By default: every closed day of the last DASHBOARD_DAYS not counted yet (in this time zone), and yesterday
    again (a change written just before midnight may commit after it). `rebuild`: every closed day of the window.
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
        wanted = sorted({d for d in window if d not in have} | {today - timedelta(days=1)})
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
            DailyFiguresDay.objects.filter(day__range=(start, end)).delete()
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
    return done


def dashboard_forget() -> None:
    """Forget every counted day (after data was written into past days, as seed_demo does): the dashboard counts
    them live until the next refresh counts them again."""
    with transaction.atomic():
        DailyFiguresDay.objects.all().delete()
        DailyFigure.objects.all().delete()
