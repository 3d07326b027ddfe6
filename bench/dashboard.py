#!/usr/bin/env python
"""Dashboard benchmark: the managers' dashboard on 1M accounts, kept daily figures against counting every request.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/riskops_pages .venv/bin/python bench/dashboard.py \
        [--accounts 1000000] [--requests 40] [--reset]

- Data: the pages benchmark's database and seed (`seed_demo --accounts N --seed 42`, engine included: about a
  fifth of the accounts have a case; the engine's first run is dated the seed's day, so "today" holds most of the
  book's freezes and cases, the heaviest day a dashboard can have). A database already holding N accounts is
  reused; otherwise it is reseeded, which needs --reset unless its name contains "bench" or "pages".
- dashboard: GET /dashboard/ (the last 90 days, every tile and chart, the decisions per operator included) through
  Django's full stack in this process (test client, a risk manager, DEBUG off), after 3 warm-up requests; p50/p95
  over --requests requests. dashboard_400d: the same over the longest range, 400 days.
- direct_count (the naive way, same run): the same page with nothing kept (DailyFigure, DayMember emptied in a
  transaction that is rolled back at the end), so that each request counts every figure of the 90 days from the
  base tables (in one query, through the same indexes).
- The database is vacuumed after seeding (what autovacuum does some time after a bulk load: visibility maps for
  index-only scans, BRIN summaries), and the dashboard refreshed (`dashboard_refresh`, timed) just before.
- drill_down: the queue of one day's MULTI_HEAD freezes (the chart's busiest day), as a click on its bar opens it.
- now_figures_floor: the figures of now alone (lines frozen and cut, exposure, open cases by SLA state and tier,
  appeals waiting and in breach), which both ways count from the tables on every request: the page's floor.
- daily_figures_kept vs daily_figures_direct: the part the keeping replaces, alone: the 90 days' daily figures as
  the page reads them (`daily_counts`) against the same counted from the base tables (`counts_direct`).
- verify: `dashboard_drift` over 400 days (what `manage.py verify_dashboard` runs): seconds and differing figures.

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import measure, queries, seeded_book, setup, timings

setup(default_database="riskops_pages")

from django.contrib.auth.models import Group, User  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from riskops.core.roles import ensure_roles  # noqa: E402
from riskops.dashboard.selectors import counted_days, counts_direct, daily_counts, dashboard_drift  # noqa: E402
from riskops.dashboard.services import dashboard_refresh  # noqa: E402
from riskops.models import DailyFigure, DailyFiguresDay, DayMember  # noqa: E402

TARGET_P95_MS = 300
TARGET_VS_NAIVE = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--reset", action="store_true")
    args = parser.parse_args()
    if args.accounts < 1000 or args.requests < 5:
        parser.error("--accounts must be at least 1000 and --requests at least 5")

    have, seed_seconds = seeded_book(args.accounts, reset=args.reset)
    started = time.monotonic()
    refreshed = dashboard_refresh()
    refresh_seconds = round(time.monotonic() - started, 1)
    print(f"dashboard_refresh: {refreshed} closed days counted in {refresh_seconds} s")
    with connection.cursor() as cur:
        # What autovacuum does to a table some time after a bulk load: the visibility map (index-only scans) and
        # the BRIN ranges' summaries; a freshly seeded database has neither.
        cur.execute("VACUUM ANALYZE")

    ensure_roles()
    manager, _ = User.objects.get_or_create(username="bench-manager")
    manager.groups.add(Group.objects.get(name="risk_manager"))
    client = Client()
    client.force_login(manager)

    today = timezone.localdate()
    long_range = f"/dashboard/?start={today - timedelta(days=399)}&end={today}"
    results = {
        "dashboard": measure(client, lambda i: "/dashboard/", args.requests),
        "dashboard_400d": measure(client, lambda i: long_range, max(5, args.requests // 2)),
    }
    counts = {"dashboard": queries(client, "/dashboard/"), "dashboard_400d": queries(client, long_range)}

    # The drill-down of the freezes chart's busiest MULTI_HEAD day.
    from riskops.dashboard.selectors import dashboard as board_of

    board = board_of(today - timedelta(days=89), today, user_id=manager.pk, operator_figures=True)
    multi = next(s for s in board.charts["freezes"]["series"] if s["name"] == "freeze:MULTI_HEAD")
    busiest = max(range(len(multi["y"])), key=lambda i: multi["y"][i])
    results["drill_down"] = measure(client, lambda i: multi["links"][busiest], max(5, args.requests // 2))
    counts["drill_down"] = queries(client, multi["links"][busiest])

    # The floor: the figures of now alone (frozen, cut, open cases by SLA and tier, appeals), which no keeping of
    # days removes: counts over index-only scans, in both ways alike.
    from riskops.dashboard.selectors import now_tiles

    now_floor = timings(lambda i: now_tiles(manager.pk), max(5, args.requests // 2))

    # The daily figures alone, the part kept: read (kept days, today's kept part and what came since) against
    # counted from the base tables, over the page's 90 days.
    first_day = today - timedelta(days=89)
    figures_kept = timings(lambda i: daily_counts(first_day, today), max(5, args.requests // 2))
    figures_direct = timings(lambda i: counts_direct(first_day, today), max(5, args.requests // 2))

    # The naive way: no kept day, every figure counted from the base tables on each request (rolled back after).
    kept_days = len(counted_days(today - timedelta(days=399), today))
    with transaction.atomic():
        DailyFiguresDay.objects.all().delete()
        DailyFigure.objects.all().delete()
        DayMember.objects.all().delete()
        results["direct_count"] = measure(client, lambda i: "/dashboard/", max(5, args.requests // 2))
        counts["direct_count"] = queries(client, "/dashboard/")
        transaction.set_rollback(True)

    started = time.monotonic()
    compared, drifts = dashboard_drift(today - timedelta(days=399), today)
    verify_seconds = round(time.monotonic() - started, 1)

    for page, r in results.items():
        print(f"{page:15} p50 {r['p50']:8.1f} ms   p95 {r['p95']:8.1f} ms   {counts[page]} queries")
    print(f"figures of now alone (the floor): p50 {now_floor['p50']} ms, p95 {now_floor['p95']} ms")
    print(f"daily figures, 90 days: kept p95 {figures_kept['p95']} ms, from the tables p95 {figures_direct['p95']} ms")
    print(f"verify: {compared:,} figures over 400 days compared in {verify_seconds} s, {len(drifts)} differ")
    speedup = round(results["direct_count"]["p95"] / max(results["dashboard"]["p95"], 0.1), 1)
    figures = {
        "dashboard_p95_ms": results["dashboard"]["p95"],
        "direct_count_p95_ms": results["direct_count"]["p95"],
        "dashboard_vs_direct": speedup,
        "meets_target": results["dashboard"]["p95"] <= TARGET_P95_MS and speedup >= TARGET_VS_NAIVE,
        "now_figures_floor_p50_ms": now_floor["p50"],
        "now_figures_floor_p95_ms": now_floor["p95"],
        "dashboard_vs_floor": round(results["dashboard"]["p95"] / max(now_floor["p95"], 0.1), 1),
        "daily_figures_kept_p95_ms": figures_kept["p95"],
        "daily_figures_direct_p95_ms": figures_direct["p95"],
        "daily_figures_vs_direct": round(figures_direct["p95"] / max(figures_kept["p95"], 0.1), 1),
        **{f"{page}_p50_ms": r["p50"] for page, r in results.items()},
        **{f"{page}_p95_ms": r["p95"] for page, r in results.items() if page not in ("dashboard", "direct_count")},
        **{f"{page}_queries": n for page, n in counts.items()},
        "accounts": have if seed_seconds is None else args.accounts,
        "kept_days": kept_days,
        "refresh_days": refreshed,
        "refresh_seconds": refresh_seconds,
        "verify_seconds": verify_seconds,
        "verify_figures": compared,
        "verify_drift": len(drifts),
        "requests": args.requests,
        "seed_seconds": seed_seconds,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
