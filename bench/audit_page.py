#!/usr/bin/env python
"""Audit page benchmark: the trail's page and export on a large audit table, against OFFSET pages with a COUNT(*).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/riskops_audit .venv/bin/python bench/audit_page.py \
        [--events 2000000] [--accounts 20000] [--requests 40] [--export] [--reset]

- Data: --accounts lines (`seed_demo --no-engine`), then --events audit events written by one INSERT ... SELECT
  over generate_series, in id order a year of events (ids follow time, as the service writes them): 60% engine,
  25% ten operators (and 1 in 40,000 an eleventh, the rare one, spread over the year), 10% jobs, 5% the system; actions weighted as a day's work (signal.fire, case.*, line.*,
  decision.*), 1 in 20,000 an export (audit.export, the rare action); an account on 95% of them. A database
  already holding that many events is reused; otherwise it is rebuilt, which needs --reset unless its name contains
  "bench" or "audit".
- Each page is requested through Django's full stack with the test client as an auditor, DEBUG off; p50 and p95
  over --requests requests after 3 warm-up requests; the query count of one request.
- actor_operator_rare_without_index: the rare operator's page with the partial index `audit_operator` dropped
  inside a transaction that is rolled back (as it was before that index).
- naive_offset_count: what a naive list page does, Django's Paginator (COUNT(*) of the filter, then OFFSET) on the
  same filter at page 2,000 (row 100,000), as queries alone.
- --export: the whole unfiltered trail streamed as CSV: seconds, rows per second, and the process's peak memory
  growth while streaming (keyset chunks: it stays flat whatever the rows).

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ensure_database, percentile, setup

setup(default_database="riskops_audit")

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.core.paginator import Paginator  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from accounts.models import CreditLine  # noqa: E402
from riskops.core.audit_chain import audit_maintenance  # noqa: E402
from riskops.models import AuditEvent  # noqa: E402
from tests.factories import make_role_operator  # noqa: E402

ACTIONS = [
    ("signal.fire", 30),
    ("signal.clear", 8),
    ("case.open", 10),
    ("case.update", 10),
    ("case.claim", 8),
    ("case.release", 3),
    ("line.freeze", 8),
    ("line.unfreeze", 6),
    ("line.cut_available", 3),
    ("decision.propose", 4),
    ("decision.apply", 4),
    ("note.add", 3),
    ("appeal.submit", 2),
    ("borrower.reveal", 1),
]

FILL = """
WITH ops AS (SELECT array_agg(id ORDER BY id) AS ids, array_agg(username ORDER BY id) AS names
             FROM auth_user WHERE username ~ '^bench-op-[0-9]+$'),
     rare AS (SELECT id, username FROM auth_user WHERE username = 'bench-op-rare'),
     acts AS (SELECT array_agg(a) AS a FROM (SELECT a FROM unnest(%(actions)s::text[]) WITH ORDINALITY AS t(a, i),
              generate_series(1, (%(weights)s::int[])[i])) w),
     lines AS (SELECT min(id) AS lo, max(id) AS hi FROM accounts_creditline)
INSERT INTO riskops_auditevent (at, actor_kind, actor_user_id, actor_label, action, object_type, object_id,
                                account_id, before, after, reason)
SELECT %(start)s::timestamptz + (g::float8 * 31536000 / %(n)s) * interval '1 second',
       k.kind,
       CASE WHEN g %% 40000 = 13 THEN rare.id WHEN k.kind = 'operator' THEN ops.ids[1 + (g %% 10)] END,
       CASE WHEN g %% 40000 = 13 THEN rare.username
            ELSE CASE k.kind WHEN 'operator' THEN ops.names[1 + (g %% 10)] WHEN 'job' THEN 'job #' || (g %% 500)
                   WHEN 'engine' THEN 'engine' ELSE 'system' END END,
       CASE WHEN g %% 20000 = 7 THEN 'audit.export' ELSE acts.a[1 + (hashint(g) %% array_length(acts.a, 1))] END,
       'case', g, CASE WHEN g %% 20 <> 0 THEN lines.lo + hashint(g * 7) %% (lines.hi - lines.lo + 1) END,
       '{"status": "open"}'::jsonb, '{"status": "claimed"}'::jsonb, 'nightly re-evaluation'
FROM generate_series(1, %(n)s) AS g, ops, rare, acts, lines,
     LATERAL (SELECT CASE WHEN g %% 20 < 12 THEN 'engine' WHEN g %% 20 < 17 THEN 'operator'
                          WHEN g %% 20 < 19 THEN 'job' ELSE 'system' END AS kind) k
"""


def prepare(events: int, accounts: int, reset: bool) -> None:
    ensure_database()
    name = str(settings.DATABASES["default"]["NAME"])
    have_lines = CreditLine.objects.count()
    have = AuditEvent.objects.count()
    rare = AuditEvent.objects.filter(actor_user__username="bench-op-rare").exists()
    if have_lines >= accounts and abs(have - events) < events // 100 and rare:
        return
    if not (reset or "bench" in name or "audit" in name):
        sys.exit(f"database {name} holds {have:,} audit events, not {events:,}; pass --reset to rebuild it")
    if have_lines < accounts:
        call_command("seed_demo", accounts=str(accounts), seed="42", reset=True, no_engine=True, appeals=0)
    for i in range(10):
        if not _exists(f"bench-op-{i}"):
            make_role_operator("analyst", f"bench-op-{i}")
    if not _exists("bench-op-rare"):
        make_role_operator("analyst", "bench-op-rare")
    started = time.perf_counter()
    # The audit trail is append-only: rebuilding this bench's own table goes through the maintenance procedure.
    with audit_maintenance(), connection.cursor() as cur:
        cur.execute(
            "CREATE OR REPLACE FUNCTION hashint(bigint) RETURNS bigint IMMUTABLE LANGUAGE sql AS"
            " $$ SELECT abs(hashtextextended($1::text, 0)) $$"
        )
        cur.execute("TRUNCATE riskops_auditevent RESTART IDENTITY")
        cur.execute(
            FILL,
            {
                "actions": [a for a, _w in ACTIONS],
                "weights": [w for _a, w in ACTIONS],
                "start": "2025-03-01T00:00:00+08:00",
                "n": events,
            },
        )
        # As autovacuum would: the statistics, and the BRIN index summarised over the new blocks.
        cur.execute("VACUUM ANALYZE riskops_auditevent")
    print(f"wrote {events:,} audit events in {time.perf_counter() - started:.0f} s")


def _exists(username: str) -> bool:
    from django.contrib.auth.models import User

    return User.objects.filter(username=username).exists()


def measure(client: Client, urls: Callable[[int], str], n: int) -> dict[str, float]:
    for i in range(3):
        response = client.get(urls(i))
        assert response.status_code == 200, response.content[:500]
    times = []
    for i in range(n):
        started = time.perf_counter()
        response = client.get(urls(i))
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    with CaptureQueriesContext(connection) as ctx:
        client.get(urls(0))
    return {
        "p50": round(statistics.median(times), 1),
        "p95": round(percentile(times, 0.95), 1),
        "queries": len(ctx.captured_queries),
    }


def without_operator_index(client: Client, n: int) -> dict[str, float]:
    """The rare operator's page as it was before the partial index `audit_operator`: dropped, measured, rolled back."""
    from django.db import transaction

    class Rollback(Exception):
        pass

    figures: dict[str, float] = {}
    try:
        with transaction.atomic():
            with connection.cursor() as cur:
                cur.execute("DROP INDEX audit_operator")
            figures = measure(client, lambda i: "/audit/?operator=bench-op-rare", n)
            raise Rollback
    except Rollback:
        pass
    return figures


def naive(query: dict[str, str], n: int) -> dict[str, float]:
    """Paginator over the filter: COUNT(*), then the page at OFFSET 100,000 (page 2,001 of 50)."""
    qs = AuditEvent.objects.filter(**query).order_by("-id").values("id", "at", "action", "actor_label")
    times = []
    for _ in range(max(3, n // 4)):
        started = time.perf_counter()
        paginator = Paginator(qs, 50)
        number = min(2001, paginator.num_pages)
        list(paginator.page(number).object_list)
        times.append((time.perf_counter() - started) * 1000)
    return {"p50": round(statistics.median(times), 1), "p95": round(percentile(times, 0.95), 1)}


def export(client: Client) -> dict[str, float]:
    before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    response = client.get("/audit/export.csv")
    rows = size = 0
    for chunk in response.streaming_content:  # type: ignore[attr-defined]  # a StreamingHttpResponse
        rows += 1
        size += len(chunk)
    seconds = time.perf_counter() - started
    peak_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_kb
    return {
        "rows": rows - 1,
        "seconds": round(seconds, 1),
        "rows_per_s": round((rows - 1) / seconds),
        "mb": round(size / 2**20, 1),
        "peak_rss_growth_mb": round(peak_growth / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--export", action="store_true")
    parser.add_argument("--reset", action="store_true")
    args = parser.parse_args()
    prepare(args.events, args.accounts, args.reset)
    if not _exists("bench-auditor"):
        make_role_operator("auditor", "bench-auditor")
    from django.contrib.auth.models import User

    auditor = User.objects.get(username="bench-auditor")
    client = Client()
    client.force_login(auditor)
    top = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 1
    accounts = list(
        AuditEvent.objects.filter(id__gt=top - 5000, account_id__isnull=False).values_list(
            "account__account_no", flat=True
        )[:200]
    )
    n = args.requests
    figures: dict[str, object] = {"events": AuditEvent.objects.count(), "accounts": CreditLine.objects.count()}
    depths = [top // 10, top // 2, top * 9 // 10]
    pages = {
        "unfiltered": lambda i: "/audit/",
        "unfiltered_deep": lambda i: f"/audit/?before={depths[i % 3]}",
        "action_common": lambda i: "/audit/?action=signal.fire",
        "action_common_deep": lambda i: f"/audit/?action=signal.fire&before={depths[i % 3]}",
        "action_rare": lambda i: "/audit/?action=audit.export",
        "actor_operator": lambda i: f"/audit/?operator=bench-op-{i % 10}",
        "actor_operator_rare": lambda i: "/audit/?operator=bench-op-rare",
        "actor_kind_job": lambda i: "/audit/?actor_kind=job",
        "account": lambda i: f"/audit/?account={accounts[i % len(accounts)]}",
        "object": lambda i: f"/audit/?object_type=case&object_id={top - 1000 * (i + 1)}",
        "one_day": lambda i: f"/audit/?day_from=2025-0{3 + i % 6}-15&day_to=2025-0{3 + i % 6}-15",
    }
    for name, urls in pages.items():
        figures[name] = measure(client, urls, n)
        print(name, figures[name], flush=True)
    figures["actor_operator_rare_without_index"] = without_operator_index(client, n)
    print("actor_operator_rare_without_index", figures["actor_operator_rare_without_index"], flush=True)
    figures["naive_offset_count"] = naive({}, n)
    figures["naive_offset_count_action"] = naive({"action": "signal.fire"}, n)
    print("naive", figures["naive_offset_count"], figures["naive_offset_count_action"], flush=True)
    if args.export:
        figures["export_unfiltered"] = export(client)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
