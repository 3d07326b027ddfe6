#!/usr/bin/env python
"""Page benchmark: the queue and case pages against Django admin's default changelist, on 1M accounts.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/riskops_pages .venv/bin/python bench/pages.py \
        [--accounts 1000000] [--requests 60] [--reset]

- Data: `seed_demo --accounts N --seed 42` (engine included, so about a fifth of the accounts have a case). A
  database already holding N accounts is reused; otherwise it is reseeded, which needs --reset unless the
  database name contains "bench" or "pages".
- Each page is requested through Django's full stack (middleware, sessions, templates) in this process with the
  test client, logged in as an analyst (the admin as a superuser), DEBUG off. Timings are wall-clock per request;
  the figures are the 50th and 95th percentiles over --requests requests, after 3 warm-up requests.
- queue: the first page; queue_deep: pages far down the queue (cursors at 10%, 50% and 90% of all open cases);
  queue_filtered: a rotation of filters (family + tier + exposure, phone last 4, unassigned + SLA due soon, an
  opening date range); queue_search: account-number searches (a whole number, its first 9 characters, its first 7
  in lower case); inbox: the appeals inbox of a senior reviewer; case: case pages of random open cases;
  admin_changelist: /admin/accounts/case/.
- search_query vs search_naive_query: the queue's search as a query alone (the prefix index), and the naive way of
  matching a part of a number (`icontains`, a scan of every line), same numbers.

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import measure, percentile, queries, seeded_book, setup

setup(default_database="riskops_pages")

from django.contrib.auth.models import Group, User  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from accounts.models import Case, CreditLine  # noqa: E402
from riskops.core.roles import ensure_roles  # noqa: E402


def search_queries(numbers: list[str], n: int) -> dict[str, dict[str, float]]:
    """The queue's search (a prefix: the index) and the naive one (any part: a scan), as one query each, 50 rows."""
    from accounts.selectors.queue import by_line_search

    open_cases = Case.objects.exclude(status="resolved").order_by("id")
    ways: dict[str, Callable[[str], Any]] = {
        "search_query": lambda q: by_line_search(open_cases, q),
        "search_naive_query": lambda q: open_cases.filter(line__account_no__icontains=q),
    }
    figures = {}
    for name, way in ways.items():
        times = []
        for i in range(max(5, n // 3)):
            q = numbers[i % len(numbers)][:9]
            started = time.perf_counter()
            list(way(q).values_list("id", flat=True)[:50])
            times.append((time.perf_counter() - started) * 1000)
        figures[name] = {"p50": round(statistics.median(times), 2), "p95": round(percentile(times, 0.95), 2)}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--reset", action="store_true")
    args = parser.parse_args()
    if args.accounts < 1000 or args.requests < 5:
        parser.error("--accounts must be at least 1000 and --requests at least 5")

    have, seed_seconds = seeded_book(args.accounts, reset=args.reset)
    with connection.cursor() as cur:
        cur.execute("ANALYZE")

    ensure_roles()
    analyst, _ = User.objects.get_or_create(username="bench-analyst")
    analyst.groups.add(Group.objects.get(name="analyst"))
    root, _ = User.objects.get_or_create(username="bench-admin", defaults={"is_staff": True, "is_superuser": True})
    client, admin = Client(), Client()
    client.force_login(analyst)
    admin.force_login(root)

    open_cases = Case.objects.exclude(status="resolved")
    total = open_cases.count()
    print(f"{total:,} open cases")
    cursors = []
    for share in (0.1, 0.5, 0.9):
        key, case_id = open_cases.order_by("queue_key", "id").values_list("queue_key", "id")[int(total * share)]
        cursors.append(f"{key}:{case_id}")
    rng = random.Random(42)
    case_ids = list(open_cases.values_list("id", flat=True)[:20000])
    rng.shuffle(case_ids)
    phones = list(CreditLine.objects.filter(cases__isnull=False).values_list("borrower__phone", flat=True)[:200])
    numbers = list(CreditLine.objects.filter(cases__isnull=False).values_list("account_no", flat=True)[:200])
    senior, _ = User.objects.get_or_create(username="bench-senior")
    senior.groups.add(Group.objects.get(name="senior_reviewer"))
    reviewer = Client()
    reviewer.force_login(senior)

    def search(i: int) -> str:
        number = numbers[i % len(numbers)]
        return "/queue/?q=" + (number, number[:9], number[:7].lower())[i % 3]

    sample_case = case_ids[0]
    filters = [
        "?family=OVERDUE&tier=2&exposure_min=10000",
        "?q={}",
        "?assignee=unassigned&sla=due_soon",
        "?family=MULTI_HEAD&opened_from=2020-01-01&opened_to=2100-01-01",
        "?status=open&family=PROFILE_STALE&exposure_max=5000",
    ]

    def filtered(i: int) -> str:
        f = filters[i % len(filters)]
        return "/queue/" + (f.format(phones[i % len(phones)][-4:]) if "{}" in f else f)

    results = {
        "queue": measure(client, lambda i: "/queue/", args.requests),
        "queue_deep": measure(client, lambda i: f"/queue/?after={cursors[i % 3]}", args.requests),
        "queue_filtered": measure(client, filtered, args.requests),
        "queue_search": measure(client, search, args.requests),
        "inbox": measure(reviewer, lambda i: "/appeals/", args.requests),
        "case": measure(client, lambda i: f"/cases/{case_ids[i % len(case_ids)]}/", args.requests),
        "admin_changelist": measure(admin, lambda i: "/admin/accounts/case/", max(5, args.requests // 3)),
    }
    counts = {
        "queue": queries(client, "/queue/"),
        "queue_deep": queries(client, f"/queue/?after={cursors[2]}"),
        "queue_filtered": queries(client, filtered(0)),
        "queue_search": queries(client, search(1)),
        "inbox": queries(reviewer, "/appeals/"),
        "case": queries(client, f"/cases/{sample_case}/"),
        "admin_changelist": queries(admin, "/admin/accounts/case/"),
    }
    results |= search_queries(numbers, args.requests)
    counts |= {"search_query": 1, "search_naive_query": 1}
    for page, r in results.items():
        print(f"{page:18} p50 {r['p50']:8.1f} ms   p95 {r['p95']:8.1f} ms   {counts[page]} queries")
    figures = {
        "accounts": have if seed_seconds is None else args.accounts,
        "open_cases": total,
        "requests": args.requests,
        **{f"{page}_p95_ms": r["p95"] for page, r in results.items()},
        **{f"{page}_p50_ms": r["p50"] for page, r in results.items()},
        **{f"{page}_queries": n for page, n in counts.items()},
        "search_vs_naive": round(results["search_naive_query"]["p95"] / max(results["search_query"]["p95"], 0.01), 1),
        "queue_vs_admin": round(results["admin_changelist"]["p95"] / max(results["queue"]["p95"], 0.1), 1),
        "seed_seconds": seed_seconds,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
