#!/usr/bin/env python
"""Admin benchmark: the credit lines' changelist on a table of N lines (1M by default), against Django's defaults.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/riskops_admin .venv/bin/python bench/admin.py \
        [--lines 1000000] [--requests 20]

- Data: N borrowers and lines (1% frozen) inserted by `generate_series` (no events: the changelist reads the lines
  and their borrowers only), then ANALYZE; a database already holding N lines is reused.
- Each page is requested through Django's full stack with the test client, logged in as an operator in the admin
  role, DEBUG off; p50 and p95 over --requests requests after 2 warm-up requests, and the page's queries.
- `default`: the same pages with Django's paginator and full result count (what the admin did before).

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ensure_database, percentile, setup

setup(default_database="riskops_admin")

from django.contrib import admin  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.paginator import Paginator  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from accounts.models import Borrower, CreditLine  # noqa: E402
from riskops.core.roles import ADMIN, ensure_roles  # noqa: E402

SEED = f"""
    TRUNCATE {CreditLine._meta.db_table}, {Borrower._meta.db_table} RESTART IDENTITY CASCADE;
    INSERT INTO {Borrower._meta.db_table}
        (name, phone, national_id, city, occupation, employer, declared_monthly_income, profile_updated_at, created_at)
    SELECT '王小明', '138' || lpad(i::text, 8, '0'), '33010219900101' || lpad((i %% 10000)::text, 4, '0'), '杭州',
           '软件工程师', '杭州云栖科技有限公司', 10000, now(), now()
    FROM generate_series(1, %(n)s) i;
    INSERT INTO {CreditLine._meta.db_table}
        (account_no, borrower_id, "limit", available, outstanding, status, frozen_since, opened_at, updated_at)
    SELECT 'JB' || lpad(b.id::text, 10, '0'), b.id, 20000, 20000, 0,
           CASE WHEN b.id % 100 = 0 THEN 'frozen' ELSE 'active' END,
           CASE WHEN b.id % 100 = 0 THEN now() END, now(), now()
    FROM {Borrower._meta.db_table} b;
    ANALYZE {Borrower._meta.db_table};
    ANALYZE {CreditLine._meta.db_table};
"""  # noqa: S608 - table names from the models, the count bound


def measure(client: Client, url: str, n: int) -> dict[str, float]:
    for _ in range(2):
        assert client.get(url).status_code == 200
    times = []
    for _ in range(n):
        started = time.perf_counter()
        assert client.get(url).status_code == 200
        times.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as ctx:
        client.get(url)
    return {
        "p50_ms": round(percentile(times, 0.5), 1),
        "p95_ms": round(percentile(times, 0.95), 1),
        "queries": len(ctx),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    ensure_database()
    seed_seconds = None
    if CreditLine.objects.order_by()[: args.lines + 1].count() != args.lines:
        started = time.monotonic()
        with connection.cursor() as cur:
            for statement in SEED.split(";"):
                if statement.strip():
                    cur.execute(statement, {"n": args.lines} if "%(n)s" in statement else None)
        seed_seconds = round(time.monotonic() - started, 1)
    ensure_roles()
    user, _ = User.objects.get_or_create(username="bench-admin-role")
    user.groups.set([Group.objects.get(name=ADMIN)])
    client = Client()
    client.force_login(user)
    account = CreditLine.objects.order_by("-pk").values_list("account_no", flat=True).first()
    base = "/admin/accounts/creditline/"
    pages = {
        "unfiltered": base,
        "frozen": base + "?status__exact=frozen",
        "active": base + "?status__exact=active",
        "search_prefix": f"{base}?q={account[:-2] if account else ''}",
        "page_100": base + "?p=100",
    }
    figures: dict[str, object] = {"lines": args.lines, "seed_seconds": seed_seconds}
    for name, url in pages.items():
        figures[name] = measure(client, url, args.requests)
    line_admin = type(admin.site.get_model_admin(CreditLine))
    line_admin.paginator = Paginator
    line_admin.show_full_result_count = True
    for name in ("unfiltered", "active"):
        figures[f"default_{name}"] = measure(client, pages[name], max(args.requests // 4, 3))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
