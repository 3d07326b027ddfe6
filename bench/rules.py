#!/usr/bin/env python
"""Rule tuning benchmark: simulating a draft over 1M accounts and backtesting it over 90 days, as jobs on real
Celery workers, against their floor and the naive way.

    .venv/bin/python bench/rules.py [--template riskops_pages] [--accounts 1000000] [--days 90] \
        [--naive-sample 100] [--keep]

Why it is built this way:
- Data: a database of its own, riskops_rules_bench (DATABASE_URL may name another; its name must contain "bench"),
  a fresh file copy of bench/pages.py's 1M-account template (`seed_demo --accounts 1000000 --seed 42`, engine
  included), which is seeded first when it does not exist; migrated; dropped at the end unless --keep. The helpers
  are bench/jobs.py's (template, copy, workers, waiting for a job while playing beat).
- The draft: a copy of the live version with MULTI_HEAD's inquiry threshold raised by 2 (the browser test's change),
  made by a risk manager through the services.
- `rule_queries_floor_accounts_per_s`: the draft's four rule queries alone (`accounts.rule_queries.FINDERS`, their
  SQL and the findings built from their rows) over every open account in batches of JOB_BATCH_SIZE, one pass, no
  reading of signals, no diff, no writes, split between two processes as the job is between two workers.
- `simulate_accounts_per_s`: `riskops.tuning.services.simulation_request`, the job, on two worker processes
  (concurrency 1 each), from the request until the job succeeded; `simulate_accounts_per_s_1_worker` on one.
  `simulate_vs_floor` compares the two-worker figures.
- `backtest_90d_seconds`: `backtest_request(days=90)`, the job, on the two workers, request to success.
- `naive_backtest_90d_seconds_estimate`: `accounts.backtest.freezing_on`, both versions' freezing rules evaluated
  for one account as of the end of one day, for --naive-sample evenly spaced open accounts and every day of the
  window, timed and scaled to every open account (the tests check the two ways agree on a random history).

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
if not os.environ.get("DATABASE_URL"):
    from riskops.embedded_db import ensure_running

    os.environ["DATABASE_URL"] = ensure_running("riskops_rules_bench")

# bench/jobs.py's helpers; importing it sets Django up (on the database above).
from bench.jobs import QUEUE, Worker, copy_template, drop, run_job, scalar, seed_template, seeded  # noqa: E402

# isort: split
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.backtest import freezing_on  # noqa: E402
from accounts.models import RuleCode, RuleSet  # noqa: E402
from accounts.rule_queries import FINDERS, version_rules  # noqa: E402
from accounts.services.rulesets import rule_change, ruleset_draft  # noqa: E402
from riskops.celery import app as celery_app  # noqa: E402
from riskops.core.audit import Actor  # noqa: E402
from riskops.core.roles import RISK_MANAGER, ensure_roles  # noqa: E402
from riskops.models import Job  # noqa: E402
from riskops.tuning.services import backtest_request, simulation_request  # noqa: E402


def manager(username: str) -> Actor:
    ensure_roles()
    user, _ = User.objects.get_or_create(username=username)
    user.groups.add(Group.objects.get(name=RISK_MANAGER))
    return Actor.operator(User.objects.get(pk=user.pk))


def draft_of(actor: Actor) -> RuleSet:
    live = RuleSet.objects.get(is_active=True)
    draft = ruleset_draft(source=live, actor=actor, note="bench: MULTI_HEAD inquiry threshold + 2")
    rule = draft.rules.get(code="MULTI_HEAD")
    rule_change(
        rule_id=rule.pk,
        actor=actor,
        params={**rule.params, "min_inquiries": rule.params["min_inquiries"] + 2},
        severity=rule.severity,
        action=rule.action,
        enabled=rule.enabled,
        restore_on_clear=rule.restore_on_clear,
    )
    return draft


def open_ids() -> list[int]:
    with connection.cursor() as cur:
        cur.execute("SELECT id FROM accounts_creditline WHERE status IN ('active', 'frozen') ORDER BY id")
        return [r[0] for r in cur.fetchall()]


def _floor_part(args: tuple[int, list[int], int]) -> int:
    """One process's share of the floor: the draft's rule queries over its ids, batch by batch."""
    version, ids, batch = args
    connection.close()  # a connection of its own, not the parent's
    rules = version_rules(RuleSet.objects.get(version=version).pk)
    now = timezone.now()
    found = 0
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        for code, rule in rules.items():
            found += len(list(FINDERS[RuleCode(code)](rule, chunk, now)))
    connection.close()
    return found


def floor(version: int, ids: list[int], processes: int = 2) -> tuple[float, int]:
    half = (len(ids) + processes - 1) // processes
    parts = [(version, ids[i * half : (i + 1) * half], settings.JOB_BATCH_SIZE) for i in range(processes)]
    connection.close()
    started = time.monotonic()
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        found = sum(pool.map(_floor_part, parts))
    return time.monotonic() - started, found


def naive_backtest(live: RuleSet, draft: RuleSet, ids: list[int], sample: int, days: int) -> tuple[float, int]:
    """Seconds for both versions' freezing rules, one account and one day at a time, over the sample's accounts
    and the window's days; and the evaluations made."""
    versions = [version_rules(v.pk) for v in (live, draft)]
    step = max(1, len(ids) // sample)
    picked = ids[::step][:sample]
    last = timezone.localdate() - timedelta(days=1)
    window = [last - timedelta(days=k) for k in range(days)]
    started = time.monotonic()
    for line_id in picked:
        for day in window:
            for rules in versions:
                freezing_on(rules, line_id, day)
    return time.monotonic() - started, len(picked) * len(window)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", default="riskops_pages", help="the seeded database to copy (only read)")
    parser.add_argument("--accounts", type=int, default=1_000_000, help="accounts when the template must be seeded")
    parser.add_argument("--days", type=int, default=90, help="the backtest's window (days)")
    parser.add_argument("--naive-sample", type=int, default=100, help="accounts the naive backtest replays")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's database afterwards")
    args = parser.parse_args()
    if not 1 <= args.days <= 400:
        parser.error("--days must be from 1 to 400")
    if args.naive_sample < 1:
        parser.error("--naive-sample must be at least 1")
    name = str(settings.DATABASES["default"]["NAME"])
    if "bench" not in name or name == args.template:
        sys.exit(f"{name}: the benchmark drops and recreates its database; use one whose name contains 'bench'")
    broker = os.environ["CELERY_BROKER_URL"]
    celery_app.conf.task_default_queue = QUEUE
    print(f"database {name} (copy of {args.template}); broker {broker}, queue {QUEUE}; {os.cpu_count()} cores")
    seed_seconds = None
    if not seeded(args.template):
        seed_seconds = seed_template(args.template, args.accounts)
    copy_seconds = copy_template(args.template, name)
    print(f"copied {args.template} to {name} in {copy_seconds:.1f} s")
    call_command("migrate", verbosity=0)
    accounts = scalar("SELECT count(*) FROM accounts_creditline")
    ids = open_ids()
    print(f"{accounts:,} accounts, {len(ids):,} open")
    if broker.startswith("redis"):
        import redis

        redis.Redis.from_url(broker).flushdb()
    author, approver = manager("bench-manager-1"), manager("bench-manager-2")
    del approver  # the approval is the browser test's; here only the evidence is timed
    draft = draft_of(author)
    live = RuleSet.objects.get(is_active=True)

    floor_seconds, floor_found = floor(draft.version, ids)
    floor_rate = len(ids) / floor_seconds
    print(f"floor: the draft's rule queries over {len(ids):,} accounts in {floor_seconds:.1f} s = {floor_rate:,.0f}/s")

    log_dir = Path(tempfile.mkdtemp(prefix="riskops-rules-bench-"))
    print(f"worker logs in {log_dir}")
    workers: list[Worker] = []
    figures: dict[str, Any] = {}
    try:
        workers.append(Worker("w1", log_dir, broker))
        one, one_seconds = run_job("simulate, 1 worker", lambda: Job.objects.get(pk=sim_job(draft, author)))
        workers.append(Worker("w2", log_dir, broker))
        two, two_seconds = run_job("simulate, 2 workers", lambda: Job.objects.get(pk=sim_job(draft, author)))
        backtest, backtest_seconds = run_job(
            f"backtest {args.days} days, 2 workers",
            lambda: Job.objects.get(pk=backtest_request(version=draft.version, actor=author, days=args.days).job_id),
        )
        figures["simulated"] = simulated_figures(two.pk)
        figures["backtest"] = backtest_figures(backtest.pk)
    finally:
        for worker in workers:
            worker.stop()
    naive_seconds, evaluations = naive_backtest(live, draft, ids, args.naive_sample, args.days)
    per_evaluation = naive_seconds / evaluations
    naive_estimate = per_evaluation * len(ids) * args.days
    print(
        f"naive backtest: {evaluations:,} account-days in {naive_seconds:.1f} s "
        f"({per_evaluation * 1000:.2f} ms each): {naive_estimate:,.0f} s estimated for {len(ids):,} x {args.days}"
    )
    simulate_rate = two.selected / two_seconds
    result = {
        "accounts": accounts,
        "open_accounts": len(ids),
        "simulate_accounts_per_s": round(simulate_rate),
        "simulate_accounts_per_s_1_worker": round(one.selected / one_seconds),
        "rule_queries_floor_accounts_per_s": round(floor_rate),
        "floor_processes": 2,
        "floor_findings": floor_found,
        "simulate_vs_floor": round(simulate_rate / floor_rate, 3),
        "target_simulate_accounts_per_s": 50_000,
        "target_simulate_vs_floor": 0.8,
        "backtest_days": args.days,
        "backtest_90d_seconds": round(backtest_seconds, 1),
        "naive_backtest_90d_seconds_estimate": round(naive_estimate),
        "naive_sample_accounts": min(args.naive_sample, len(ids)),
        "naive_ms_per_account_day": round(per_evaluation * 1000, 3),
        "backtest_speedup": round(naive_estimate / backtest_seconds, 1),
        "target_backtest_seconds": 600,
        "target_backtest_speedup": 50,
        "batch_size": settings.JOB_BATCH_SIZE,
        "seed_seconds": round(seed_seconds, 1) if seed_seconds is not None else None,
        **figures,
    }
    if not args.keep:
        drop(name)
    print(json.dumps(result))


def sim_job(draft: RuleSet, actor: Actor) -> int:
    return simulation_request(version=draft.version, actor=actor).job_id


def simulated_figures(job_id: int) -> dict[str, int]:
    from accounts.models import Simulation, SimulationLine

    simulation = Simulation.objects.get(job_id=job_id)
    lines = SimulationLine.objects.filter(simulation=simulation)
    return {
        "evaluated": simulation.evaluated,
        "newly_frozen": lines.filter(outcome="freeze").count(),
        "newly_released": lines.filter(outcome="release").count(),
    }


def backtest_figures(job_id: int) -> dict[str, int]:
    from accounts.models import Backtest, BacktestLine

    backtest = Backtest.objects.get(job_id=job_id)
    lines = BacktestLine.objects.filter(backtest=backtest)
    return {
        "replayed": backtest.evaluated,
        "spared_accounts": lines.filter(spared_days__gt=0).count(),
        "caught_accounts": lines.filter(caught_days__gt=0).count(),
    }


if __name__ == "__main__":
    main()
