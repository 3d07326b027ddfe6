#!/usr/bin/env python
"""Engine benchmark: the set-based engine against the same four rules written one account at a time.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/riskops_bench .venv/bin/python bench/engine.py \
        [--accounts 100000] [--naive-sample 5000] [--batch-size N] [--reset]

Why it is built this way:
- The data is `seed_demo`'s (fixed seed and "now"), so runs are comparable. A database that already holds exactly
  that many accounts and no engine output is reused; otherwise it is reseeded, which needs --reset unless the
  database name contains "bench" (reseeding deletes accounts, signals, cases and audit events).
- The engine's passes commit like production does. Afterwards the database is put back as it was (engine output
  emptied, line status and amounts restored), so the next run reuses it.
- DEBUG is off unless the environment says otherwise, as in production.
- The naive version is what one would write first with the ORM: a handful of queries per account and Python
  loops. It only computes which rules fire (no writes), on a sample, and must agree with the engine.

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ensure_database, setup

# An in-memory broker: the engine queues a "send notifications" task after each commit.
setup(default_database="riskops_bench")

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.engine import evaluate_all, line_id_batches  # noqa: E402
from accounts.models import (  # noqa: E402
    CreditInquiry,
    CreditLine,
    Drawdown,
    ExternalIncomeRecord,
    Installment,
    LineStatus,
    ProfileUpdate,
    Rule,
    RuleCode,
    Severity,
    Transfer,
)
from accounts.rule_queries import FINDERS, active_rules  # noqa: E402
from riskops.core.audit_chain import audit_maintenance  # noqa: E402

BENCH_NOW = "2026-06-15T12:00:00+08:00"
BENCH_SEED = 42
ENGINE_OUTPUT = (
    "accounts_signal",
    "accounts_suppression",
    "accounts_case",
    "accounts_linechange",
    "accounts_notification",
    "riskops_auditevent",
)


# --- the naive version


def naive_fired(line_id: int, rules: dict[str, Rule], now: datetime) -> set[tuple[str, str]]:
    """Which rules fire for one account, written the usual way: ORM queries per account, loops in Python."""
    line = CreditLine.objects.select_related("borrower").get(pk=line_id)
    if line.status == LineStatus.CLOSED:
        return set()
    fired: set[tuple[str, str]] = set()

    rule = rules.get("MULTI_HEAD")
    if rule:
        p = rule.params
        recent = CreditInquiry.objects.filter(
            line=line, occurred_at__gt=now - timedelta(days=p["window_days"]), occurred_at__lte=now
        )
        if (
            recent.count() >= p["min_inquiries"]
            and recent.values("institution").distinct().count() >= p["min_institutions"]
        ):
            fired.add((rule.code, rule.severity))

    rule = rules.get("OVERDUE")
    if rule:
        p = rule.params
        today = timezone.localdate(now)
        worst = 0
        for installment in Installment.objects.filter(line=line, paid_at__isnull=True, due_date__lt=today):
            worst = max(worst, (today - installment.due_date).days)
        if worst >= p["min_days_past_due"]:
            fired.add((rule.code, rule.severity))
        elif worst >= p["reminder_min_days_past_due"]:
            fired.add((rule.code, Severity.LOW))

    rule = rules.get("ABNORMAL_USE")
    if rule:
        p = rule.params
        window = timedelta(days=p["window_days"])
        share = Decimal(p["min_share"])
        drawdowns = Drawdown.objects.filter(
            line=line, occurred_at__gt=now - timedelta(days=p["lookback_days"]), occurred_at__lte=now
        )
        for drawdown in drawdowns:
            risky = Transfer.objects.filter(
                line=line,
                occurred_at__gte=drawdown.occurred_at,
                occurred_at__lte=min(drawdown.occurred_at + window, now),
                counterparty_category__in=p["categories"],
            )
            amounts = [t.amount for t in risky]
            if amounts and sum(amounts) >= drawdown.amount * share:
                fired.add((rule.code, rule.severity))
                break

    rule = rules.get("PROFILE_STALE")
    if rule:
        p = rule.params
        borrower = line.borrower
        floor = (borrower.declared_monthly_income or Decimal(0)) * (1 - Decimal(p["min_income_drop"]))
        records = ExternalIncomeRecord.objects.filter(
            line=line,
            occurred_at__lte=now - timedelta(days=p["grace_days"]),
            occurred_at__gt=now - timedelta(days=p["lookback_days"]),
        )
        for record in records:
            changed = record.employer != borrower.employer or record.monthly_income <= floor
            if (
                changed
                and not ProfileUpdate.objects.filter(
                    line=line, occurred_at__gte=record.occurred_at, occurred_at__lte=now
                ).exists()
            ):
                fired.add((rule.code, rule.severity))
                break
    return fired


# --- the floor: the rule queries alone


def rule_queries_floor(now: datetime, batch_size: int) -> tuple[int, float]:
    """The engine's rule queries alone over every open line, batch by batch in one pass: each batch's four finders
    (their SQL and the findings built from its rows), without locking the lines, reading the current signals,
    diffing or writing anything. What a re-evaluation cannot do with less."""
    rules = active_rules()
    evaluated = 0
    started = time.monotonic()
    for ids in line_id_batches(batch_size):
        for code, rule in rules.items():
            for _finding in FINDERS[RuleCode(code)](rule, ids, now):
                pass
        evaluated += len(ids)
    return evaluated, time.monotonic() - started


# --- database state


def count(table: str, where: str = "") -> int:
    with connection.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table} {where}")  # noqa: S608 - table names from the models, values bound
        return cur.fetchone()[0]


def is_pristine() -> bool:
    """No engine output yet: nothing frozen, no signals, cases, history, notifications or audit events."""
    return count("accounts_creditline", "WHERE status = 'frozen'") == 0 and all(count(t) == 0 for t in ENGINE_OUTPUT)


def snapshot_lines() -> None:
    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_lines")
        cur.execute(
            "CREATE TEMP TABLE bench_lines AS "
            "SELECT id, status, frozen_since, available, updated_at FROM accounts_creditline"
        )


def restore_lines() -> None:
    """Undo what the engine wrote so the next run starts from the seeded data again (its audit events through the
    audit trail's maintenance procedure, on this bench's own database)."""
    with audit_maintenance(), connection.cursor() as cur:
        cur.execute(f"TRUNCATE {', '.join(ENGINE_OUTPUT)} RESTART IDENTITY CASCADE")
        cur.execute(
            """
            UPDATE accounts_creditline l
            SET status = b.status, frozen_since = b.frozen_since, available = b.available, updated_at = b.updated_at
            FROM bench_lines b
            WHERE b.id = l.id
              AND (l.status, l.frozen_since, l.available, l.updated_at)
                  IS DISTINCT FROM (b.status, b.frozen_since, b.available, b.updated_at)
            """
        )
        cur.execute("DROP TABLE bench_lines")
        cur.execute("VACUUM ANALYZE accounts_creditline")


def active_signals(line_ids: list[int]) -> set[tuple[int, str, str]]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT line_id, code, severity FROM accounts_signal WHERE line_id = ANY(%s::bigint[]) AND status = 'active'",
            [line_ids],
        )
        return {(r[0], r[1], r[2]) for r in cur.fetchall()}


def sample_ids(size: int) -> list[int]:
    """Evenly spaced open lines: deterministic and spread over the whole id range."""
    with connection.cursor() as cur:
        cur.execute("SELECT id FROM accounts_creditline WHERE status <> 'closed' ORDER BY id")
        ids = [r[0] for r in cur.fetchall()]
    step = max(1, len(ids) // max(1, size))
    return ids[::step][:size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--naive-sample", type=int, default=5_000)
    parser.add_argument("--batch-size", type=int, default=settings.ENGINE_BATCH_SIZE)
    parser.add_argument("--reset", action="store_true", help="allow reseeding a database whose name lacks 'bench'")
    args = parser.parse_args()
    if args.accounts < 1 or args.naive_sample < 1 or args.batch_size < 1:
        parser.error("--accounts, --naive-sample and --batch-size must be positive")
    now = datetime.fromisoformat(BENCH_NOW)
    ensure_database()
    db_name = connection.settings_dict["NAME"]
    print(f"database {db_name}; {os.cpu_count()} cores; batch size {args.batch_size}")

    seed_seconds = None
    existing = count("accounts_creditline")
    if existing == args.accounts and is_pristine():
        print(f"reusing the {existing:,} seeded accounts")
    else:
        if existing and "bench" not in db_name and not args.reset:
            sys.exit(
                f"{db_name} holds {existing:,} accounts (or engine output); reseeding would delete them. "
                "Use a database whose name contains 'bench', or pass --reset."
            )
        print(f"seeding {args.accounts:,} accounts (seed {BENCH_SEED}, now {BENCH_NOW}) ...")
        started = time.monotonic()
        call_command(
            "seed_demo",
            "--accounts",
            str(args.accounts),
            "--seed",
            str(BENCH_SEED),
            "--now",
            BENCH_NOW,
            "--reset",
            "--no-engine",
            verbosity=0,
        )
        seed_seconds = time.monotonic() - started
        print(f"seeded in {seed_seconds:.1f} s")

    snapshot_lines()
    try:
        started = time.monotonic()
        first = evaluate_all(now=now, batch_size=args.batch_size)
        first_seconds = time.monotonic() - started
        print(
            f"first pass: {first.evaluated:,} accounts in {first_seconds:.2f} s "
            f"({first.evaluated / first_seconds:,.0f}/s); fired {first.fired:,}, frozen {first.frozen:,}, "
            f"cut {first.cut:,}, cases opened {first.cases_opened:,}"
        )
        # What autovacuum does after such a write burst in production (it is off on this host): statistics for
        # the new signals and cases, hint bits and the visibility map for the rows just written.
        with connection.cursor() as cur:
            for table in ("accounts_signal", "accounts_case", "accounts_creditline", "accounts_notification"):
                cur.execute(f"VACUUM ANALYZE {table}")
        # The re-evaluation and its floor take turns, five passes each: this machine's speed drifts by 10-20%
        # over a minute. Each rate is its fastest pass; the ratio is the median of the five pairs' ratios (a pass
        # and the floor right after it ran at about the same speed of the machine).
        steady_runs, floor_runs = [], []
        for _ in range(5):
            started = time.monotonic()
            steady = evaluate_all(now=now, batch_size=args.batch_size)
            steady_runs.append(time.monotonic() - started)
            floor_runs.append(rule_queries_floor(now, args.batch_size))
        steady_seconds = min(steady_runs)
        print(
            f"re-evaluation: {steady.evaluated:,} accounts in {steady_seconds:.2f} s "
            f"({steady.evaluated / steady_seconds:,.0f}/s); fired {steady.fired}, cleared {steady.cleared}"
        )
        floor_evaluated, floor_seconds = min(floor_runs, key=lambda run: run[1])
        pairs = [floor[1] / engine for engine, floor in zip(steady_runs, floor_runs, strict=True)]
        print(
            f"rule queries alone: {floor_evaluated:,} accounts in {floor_seconds:.2f} s "
            f"({floor_evaluated / floor_seconds:,.0f}/s)"
        )

        sample = sample_ids(args.naive_sample)
        rules = active_rules()
        started = time.monotonic()
        naive = {(line_id, code, severity) for line_id in sample for code, severity in naive_fired(line_id, rules, now)}
        naive_seconds = time.monotonic() - started
        engine_view = active_signals(sample)
        mismatches = sorted(naive ^ engine_view)
        print(
            f"naive: {len(sample):,} accounts in {naive_seconds:.2f} s ({len(sample) / naive_seconds:,.0f}/s); "
            f"{len(naive):,} (account, rule) pairs fire; {len(mismatches)} differ from the engine"
        )
        for line_id, code, severity in mismatches[:10]:
            side = "naive only" if (line_id, code, severity) in naive else "engine only"
            print(f"  mismatch: line {line_id} {code}/{severity} ({side})")
    finally:
        restore_lines()

    engine_rate = steady.evaluated / steady_seconds
    naive_rate = len(sample) / naive_seconds
    figures: dict[str, Any] = {
        "accounts": args.accounts,
        "evaluated": steady.evaluated,
        "engine_accounts_per_s": round(engine_rate),
        "rule_queries_floor_accounts_per_s": round(floor_evaluated / floor_seconds),
        "engine_vs_floor": round(statistics.median(pairs), 3),
        "engine_vs_floor_pairs": [round(pair, 3) for pair in pairs],
        "target_engine_vs_floor": 0.8,
        "first_pass_accounts_per_s": round(first.evaluated / first_seconds),
        "naive_accounts_per_s": round(naive_rate),
        "speedup": round(engine_rate / naive_rate, 1),
        "naive_sample": len(sample),
        "batch_size": args.batch_size,
        "agree": not mismatches,
        "mismatches": len(mismatches),
        "first_pass_seconds": round(first_seconds, 2),
        "engine_seconds": round(steady_seconds, 2),
        "naive_seconds": round(naive_seconds, 2),
        "fired": first.fired,
        "frozen": first.frozen,
        "seed_seconds": round(seed_seconds, 1) if seed_seconds is not None else None,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
