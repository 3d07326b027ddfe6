#!/usr/bin/env python
"""Jobs benchmark: re-evaluation and bulk unfreeze as jobs on real Celery workers over 1M accounts, against the
usual one Celery task per account.

    .venv/bin/python bench/jobs.py [--template riskops_pages] [--accounts 1000000] [--batch-size 2000] \
        [--per-account-sample 5000] [--unfreeze 100000] [--unfreeze-chain-off 50000] [--broker redis://127.0.0.1:6379/12] [--keep]

Why it is built this way:
- Data: a database of its own, riskops_jobs_bench (DATABASE_URL may name another; its name must contain "bench"),
  made afresh on every run as a file copy of the template (`CREATE DATABASE ... TEMPLATE riskops_pages`), the
  1M-account database of bench/pages.py, which is only read. PostgreSQL needs no other connection to the template
  for the moment of the copy: the script waits for that, it never ends anyone's connection. When the template does
  not exist it is made the way bench/pages.py makes it (`seed_demo --accounts 1000000 --seed 42`, engine
  included: about a sixth of the lines frozen with an open case), so bench/pages.py reuses it afterwards. The copy
  is migrated, and dropped at the end (unless --keep): the bulk unfreeze phase leaves it changed.
- Workers: real `celery -A riskops worker` processes (prefork, --concurrency 1 each, DEBUG off) on a real broker
  (Redis db 12, flushed at the start), consuming a queue named for this run. This process asks for the jobs with
  the services (`riskops.jobs.job_request` / `job_approve`), which send the batches after commit, and plays beat:
  `jobs_dispatch()` once a second while it waits. JOB_REDISPATCH_SECONDS is an hour here: no worker is lost, so no
  batch is sent twice.
- What is timed: wall-clock from the request (or the approval) until the job's status is succeeded, polled every
  0.1 s; so the selection's freezing into batches, the dispatch and the broker round trips are included.
- Phases, on the same data and the same worker processes:
  1. settle: a re-evaluation of every open line with two workers. The template was evaluated when it was seeded;
     the clock has moved since, so this pass fires and clears what the days in between changed (reported as
     `settle_*`). Then VACUUM ANALYZE, as autovacuum would (it is off on this host).
  2. `reevaluate_accounts_per_s_1_worker`: the same job with one worker process (concurrency 1).
  3. `reevaluate_accounts_per_s_2_workers`: again with two worker processes.
  4. `per_account_tasks_accounts_per_s`: one `accounts.tasks.engine_evaluate_lines([id])` task per account, the
     usual way, over --per-account-sample evenly spaced open lines, on the same two workers; done when their logs
     show that many tasks succeeded. `speedup_vs_per_account` compares it with phase 3 (same workers).
  5. `bulk_unfreeze_per_s`: a bulk unfreeze of --unfreeze frozen lines (lowest ids), asked for by one senior
     reviewer and approved by another, on the two workers; every line gets its history row, audit events (line,
     overturned signals, resolved case), suppressions and one notification row. The notification *sending* tasks
     that unfreezing schedules go to the workers' default queue, which no bench worker consumes: SMS sending is the
     gateway's throughput, not the job's, and would otherwise take the same two cores.
     The audit chain is on (riskops 0010): this process plays beat's `riskops.tasks.audit_seal` every
     AUDIT_SEAL_SECONDS on the same workers, and `bulk_unfreeze_sealed_after_s` is how long after the job ended
     its last audit event was chained. Just before it, `bulk_unfreeze_chain_off_per_s` is the same job over the
     next --unfreeze-chain-off frozen lines with the chain off as before it existed (no index of unsealed events,
     no sealer); `bulk_unfreeze_chain_on_vs_off` compares the two rates.
- `worker_peak_rss_mb`: the largest resident set of one worker (its main process plus its pool process, VmRSS from
  /proc every 0.2 s) over all phases; `worker_peak_rss_process_mb` is the largest single process.

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import (  # noqa: E402
    SealBeat,
    admin_connection,
    audit_chain_off,
    audit_chain_on,
    database_connection,
    group_pids,
    setup,
    vm_rss_kb,
)


def _broker() -> str:
    """JOBS_BENCH_BROKER_URL, else Redis db 12 on this machine, else (a fresh machine, no Redis) kombu's filesystem
    transport in the benchmark's own folder, which the workers share."""
    if os.environ.get("JOBS_BENCH_BROKER_URL"):
        return os.environ["JOBS_BENCH_BROKER_URL"]
    with suppress(OSError), socket.create_connection(("127.0.0.1", 6379), timeout=1):
        return "redis://127.0.0.1:6379/12"
    return "filesystem://"


# Nothing is lost in this benchmark: a batch waiting in the queue behind a million accounts is not re-sent.
os.environ["JOB_REDISPATCH_SECONDS"] = "3600"
os.environ["CELERY_BROKER_URL"] = _broker()
# Beat's schedule, notification files and a filesystem broker's folders: this run's own, for it and its workers.
os.environ["RISKOPS_VAR_DIR"] = tempfile.mkdtemp(prefix="riskops-jobs-bench-var-")
setup(default_database="riskops_jobs_bench")

import psycopg  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from psycopg import sql  # noqa: E402

from accounts.models import Case  # noqa: E402
from accounts.services import case_decide, decision_review  # noqa: E402
from accounts.tasks import engine_evaluate_lines  # noqa: E402
from riskops import jobs  # noqa: E402
from riskops.celery import app as celery_app  # noqa: E402
from riskops.core.audit import Actor  # noqa: E402
from riskops.core.roles import SENIOR_REVIEWER, ensure_roles  # noqa: E402
from riskops.models import AuditEvent, Job, JobKind, JobSelection  # noqa: E402

BENCH_SEED = "42"
QUEUE = f"riskops-jobs-bench-{uuid.uuid4().hex[:8]}"


# --- databases


def database_url(name: str) -> str:
    """DATABASE_URL naming another database. Its path, not its last "/": the embedded server's URL carries the socket
    directory in its query (`postgresql://postgres@/riskops_jobs_bench?host=/.../var/pg`), and the template was
    looked for under var/riskops_pages."""
    return urlunsplit(urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{name}"))


def exists(conn: Any, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def seeded(template: str) -> bool:
    """Whether the template holds seeded accounts (a seed that failed half way left an empty database behind, which
    the next run copied: 0 accounts, and a job refused for an empty selection)."""
    with admin_connection() as conn:
        if not exists(conn, template):
            return False
    with psycopg.connect(database_url(template), autocommit=True) as conn:
        table = conn.execute("SELECT to_regclass('accounts_creditline')").fetchone()
        if not table or table[0] is None:
            return False
        row = conn.execute("SELECT EXISTS (SELECT 1 FROM accounts_creditline WHERE status = 'frozen')").fetchone()
        return bool(row and row[0])


def seed_template(template: str, accounts: int) -> float:
    """Make the template database the way bench/pages.py does: migrate, then seed_demo with the engine. A seed that
    fails drops what it made, so the next run seeds again."""
    print(f"{template} is missing or not seeded: seeding {accounts:,} accounts into it (as bench/pages.py does) ...")
    with admin_connection() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(template)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(template)))
    env = {**os.environ, "DATABASE_URL": database_url(template), "CELERY_BROKER_URL": "memory://"}
    started = time.monotonic()
    manage = [sys.executable, str(ROOT / "manage.py")]
    try:
        subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)
        subprocess.run(
            [*manage, "seed_demo", "--accounts", str(accounts), "--seed", BENCH_SEED, "--reset"], env=env, check=True
        )
    except BaseException:
        with admin_connection() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(template)))
        raise
    return time.monotonic() - started


def copy_template(template: str, name: str) -> float:
    """Drop the benchmark's database and copy it afresh from the template (which must have no other connection)."""
    with admin_connection() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        deadline = time.monotonic() + 600
        while True:
            (others,) = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [template]).fetchone()
            if not others:
                break
            if time.monotonic() > deadline:
                sys.exit(f"{template} kept {others} connection(s) open for 10 minutes; cannot copy it")
            print(f"waiting for {others} connection(s) to {template} to close ...")
            time.sleep(5)
        started = time.monotonic()
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    return time.monotonic() - started


def drop(name: str) -> None:
    connection.close()
    with admin_connection() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def scalar(query: str, params: list[Any] | None = None) -> Any:
    with connection.cursor() as cur:
        cur.execute(query, params or [])
        return cur.fetchone()[0]


# --- workers


class Worker:
    """A `celery worker` process group (its main process and its pool process) with its log file."""

    def __init__(self, name: str, log_dir: Path, broker: str) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        env = {
            **os.environ,
            "CELERY_BROKER_URL": broker,
            "PYTHONPATH": str(ROOT),
        }
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                [
                    *(sys.executable, "-m", "celery", "-A", "riskops", "worker", "-Q", QUEUE, "--concurrency", "1"),
                    *("--loglevel", "INFO", "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h"),
                    *("--without-gossip", "--without-mingle", "--without-heartbeat"),
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._offset = 0
        self.succeeded: dict[str, int] = {}
        deadline = time.monotonic() + 60
        while " ready." not in self.log.read_text(errors="replace"):
            if self.popen.poll() is not None or time.monotonic() > deadline:
                self.stop()
                sys.exit(f"{name} did not start:\n{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)

    def pids(self) -> list[int]:
        return group_pids(self.popen.pid)

    def count_succeeded(self, task: str) -> int:
        """How many `task` runs this worker logged as succeeded (reads the log incrementally)."""
        with self.log.open("rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.decode(errors="replace").splitlines():
            if "] succeeded in " in line and "Task " in line:
                name = line.split("Task ", 1)[1].split("[", 1)[0]
                self.succeeded[name] = self.succeeded.get(name, 0) + 1
        return self.succeeded.get(task, 0)

    def stop(self) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


class RssSampler(threading.Thread):
    """Peak resident memory of each worker (main + pool processes summed) and of any single worker process."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.workers: list[Worker] = []
        self.peak_worker_kb = 0
        self.peak_process_kb = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.2):
            for worker in list(self.workers):
                sizes = [vm_rss_kb(pid) for pid in worker.pids()]
                if sizes:
                    self.peak_worker_kb = max(self.peak_worker_kb, sum(sizes))
                    self.peak_process_kb = max(self.peak_process_kb, max(sizes))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


# --- jobs


def run_job(label: str, start: Any) -> tuple[Job, float]:
    """Call `start()` (which asks for or approves a job), then wait for the job, playing beat meanwhile."""
    started = time.monotonic()
    job = start()
    next_dispatch = time.monotonic() + 1
    last_print = 0.0
    while True:
        job = Job.objects.get(pk=job.pk)
        now = time.monotonic()
        if job.status not in ("queued", "running"):
            break
        if now >= next_dispatch:
            jobs.jobs_dispatch()
            next_dispatch = now + 1
        if now - last_print >= 10:
            print(f"  {label}: {job.done:,} / {job.selected:,} ({now - started:.0f} s)")
            last_print = now
        time.sleep(0.1)
    seconds = time.monotonic() - started
    if job.status != "succeeded" or job.done != job.selected:
        sys.exit(f"{label}: job #{job.pk} ended {job.status} with {job.done:,} of {job.selected:,} done: {job.error}")
    rate = job.selected / seconds
    print(
        f"{label}: {job.selected:,} accounts in {seconds:.1f} s = {rate:,.0f}/s "
        f"(changed {job.changed:,}, unchanged {job.unchanged:,}, failed {job.failed:,}; "
        f"{job.batches_total} batches of {job.batch_size})"
    )
    return job, seconds


def reevaluate_all(actor: Actor) -> Job:
    return jobs.job_request(
        kind=JobKind.REEVALUATE, selection_kind=JobSelection.ALL, selection={}, actor=actor, reason="bench"
    )


def bulk_unfreeze(label: str, line_ids: list[int], requester: Actor, approver: Actor) -> tuple[Job, float]:
    """A bulk unfreeze of these lines asked for by one senior reviewer and approved (timed) by another."""
    asked = jobs.job_request(
        kind=JobKind.BULK_UNFREEZE,
        selection_kind=JobSelection.IDS,
        selection={"line_ids": line_ids},
        actor=requester,
        reason=f"bench, {label}",
    )
    checkpoint()
    return run_job(f"bulk unfreeze, {label}, 2 workers", lambda: jobs.job_approve(job_id=asked.pk, actor=approver))


def senior(username: str) -> Actor:
    ensure_roles()
    user, _ = User.objects.get_or_create(username=username)
    user.groups.add(Group.objects.get(name=SENIOR_REVIEWER))
    return Actor.operator(User.objects.get(pk=user.pk))


def per_account_tasks(workers: list[Worker], ids: list[int]) -> float:
    task = "accounts.tasks.engine_evaluate_lines"
    before = sum(w.count_succeeded(task) for w in workers)
    started = time.monotonic()
    for line_id in ids:
        engine_evaluate_lines.delay([line_id])
    while sum(w.count_succeeded(task) for w in workers) - before < len(ids):
        if time.monotonic() - started > 3600:
            sys.exit("the per-account tasks did not finish within an hour")
        time.sleep(0.05)
    return time.monotonic() - started


# --- the two ways of doing a bulk unfreeze's work that it is measured against


def in_threads(work: Any, chunks: list[list[int]]) -> float:
    """Run `work(chunk)` for each chunk in a thread of its own (its own database connection); wall-clock seconds."""
    errors: list[BaseException] = []

    def run(chunk: list[int]) -> None:
        try:
            work(chunk)
        except BaseException as exc:  # noqa: BLE001 - reported below, after the threads
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(chunk,)) for chunk in chunks]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.monotonic() - started


def reviewer_unfreezes(line_ids: list[int], proposer: Actor, approver: Actor) -> float:
    """The per-account way: a reviewer's unfreeze of each line in a loop, through the services, on two threads (as
    the job has two workers). The lines have high-severity signals, so each is a proposal and a second senior
    reviewer's approval: two transactions per account, as on the case page."""

    def work(chunk: list[int]) -> None:
        for line_id in chunk:
            case_id = Case.objects.filter(line_id=line_id).exclude(status="resolved").values_list("pk", flat=True)[0]
            outcome = case_decide(
                case_id=case_id,
                actor=proposer,
                kind="unfreeze",
                reason_code="income_verified",
                expected_version=None,
                idempotency_key=uuid.uuid4().hex,
            )
            if not outcome.applied:
                decision_review(decision_id=outcome.decision.pk, actor=approver, approve=True)

    return in_threads(work, [line_ids[0::2], line_ids[1::2]])


# table: (columns written, what is staged for them, the account's column, which rows the job wrote)
WRITE_FLOOR_TABLES = {
    "accounts_linechange": (
        "line_id, at, actor_kind, actor_user_id, kind, status_before, status_after, limit_before, limit_after,"
        " available_before, available_after, reason, signal_id",
        "line_id, at, actor_kind, actor_user_id, kind, status_before, status_after, limit_before, limit_after,"
        " available_before, available_after, reason, signal_id",
        "line_id",
        "reason = %(reason)s",
    ),
    "accounts_suppression": (
        "line_id, code, event_ids, signal_id, created_at, created_by_id, reason",
        "line_id, code, event_ids, signal_id, created_at, created_by_id, reason",
        "line_id",
        "reason = %(reason)s",
    ),
    "riskops_auditevent": (
        "at, actor_kind, actor_user_id, actor_label, action, object_type, object_id, account_id, before, after, reason",
        "at, actor_kind, actor_user_id, actor_label, action, object_type, object_id, account_id, before, after, reason",
        "account_id",
        "actor_label = %(label)s",
    ),
    "accounts_notification": (
        "line_id, kind, channel, dedupe_key, body, created_at, sent_at, attempts, last_error",
        "line_id, kind, channel, dedupe_key || ':floor' AS dedupe_key, body, created_at, sent_at, attempts, last_error",
        "line_id",
        "kind = 'unfreeze' AND created_at >= %(since)s",
    ),
}


def checkpoint() -> None:
    """Flush the server's dirty pages before a timed write, so that neither the job nor its floor pays for a
    checkpoint the other caused (one falling inside a phase cost it a third of its rate here). Needs a superuser
    or the pg_checkpoint role; without it the phases run as they are and the script says so."""
    with database_connection() as conn:
        try:
            conn.execute("CHECKPOINT")
        except psycopg.Error as exc:
            print(f"  (no CHECKPOINT before the timed write: {exc.diag.message_primary})")


def write_floor(job: Job, line_ids: list[int], batch_size: int) -> float:
    """The floor of the bulk unfreeze: the rows it wrote, written again by plain statements into the same tables
    (same indexes, same foreign keys), in the same batches of consecutive accounts, on two threads with
    synchronous_commit off as the batches run. Copies of the history, suppression, audit and notification rows the
    job wrote, and the ids of the lines, signals and cases it changed, are staged beforehand in unlogged tables
    keyed by batch; per batch the floor runs one UPDATE each of the lines, signals and cases and one
    INSERT ... SELECT per table from the staged rows. Nothing is computed, decided or formatted while it runs."""
    params = {"reason": f"job #{job.pk}: bulk unfreeze", "label": f"job #{job.pk}", "since": job.started_at}
    batches = [line_ids[i : i + batch_size] for i in range(0, len(line_ids), batch_size)]
    batch_of = [(line_id, index) for index, batch in enumerate(batches) for line_id in batch]
    with database_connection() as conn:
        conn.execute("DROP TABLE IF EXISTS bench_floor_batch")
        conn.execute("CREATE UNLOGGED TABLE bench_floor_batch (line_id bigint PRIMARY KEY, batch int NOT NULL)")
        with conn.cursor().copy("COPY bench_floor_batch (line_id, batch) FROM STDIN") as copy:
            for row in batch_of:
                copy.write_row(row)
        staged = {
            "lines": "SELECT b.batch, l.id FROM accounts_creditline l JOIN bench_floor_batch b ON b.line_id = l.id",
            "signals": "SELECT b.batch, s.id FROM accounts_signal s JOIN bench_floor_batch b ON b.line_id = s.line_id"
            " WHERE s.id IN (SELECT object_id FROM riskops_auditevent WHERE actor_label = %(label)s"
            " AND action = 'signal.overturn')",
            "cases": "SELECT b.batch, c.id FROM accounts_case c JOIN bench_floor_batch b ON b.line_id = c.line_id"
            " WHERE c.id IN (SELECT object_id FROM riskops_auditevent WHERE actor_label = %(label)s"
            " AND action = 'case.update')",
        }
        for name, select in staged.items():
            conn.execute(f"DROP TABLE IF EXISTS bench_floor_{name}")
            conn.execute(f"CREATE UNLOGGED TABLE bench_floor_{name} AS {select}", params)
            conn.execute(f"CREATE INDEX ON bench_floor_{name} (batch)")
        for table, (_columns, read, line_column, where) in WRITE_FLOOR_TABLES.items():
            conn.execute(f"DROP TABLE IF EXISTS bench_floor_{table}")
            conn.execute(
                f"CREATE UNLOGGED TABLE bench_floor_{table} AS SELECT b.batch, t.* FROM"  # noqa: S608 - the bench's own tables
                f" (SELECT {line_column} AS floor_line, {read} FROM {table} WHERE {where}) t"
                " JOIN bench_floor_batch b ON b.line_id = t.floor_line",
                params,
            )
            conn.execute(f"CREATE INDEX ON bench_floor_{table} (batch)")
        for name in ["batch", "lines", "signals", "cases", *WRITE_FLOOR_TABLES]:
            conn.execute(f"ANALYZE bench_floor_{name}")

    def work(mine: list[int]) -> None:
        with database_connection() as conn:
            for index in mine:
                with conn.transaction():
                    conn.execute("SET LOCAL synchronous_commit = off")
                    conn.execute(
                        "UPDATE accounts_creditline SET status = 'active', frozen_since = NULL, updated_at = now()"
                        " WHERE id IN (SELECT id FROM bench_floor_lines WHERE batch = %s)",
                        [index],
                    )
                    conn.execute(
                        "UPDATE accounts_signal SET cleared_at = now()"
                        " WHERE id IN (SELECT id FROM bench_floor_signals WHERE batch = %s)",
                        [index],
                    )
                    conn.execute(
                        "UPDATE accounts_case SET updated_at = now()"
                        " WHERE id IN (SELECT id FROM bench_floor_cases WHERE batch = %s)",
                        [index],
                    )
                    for table, (columns, _read, _line, _where) in WRITE_FLOOR_TABLES.items():
                        conn.execute(
                            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM bench_floor_{table}"  # noqa: S608 - the bench's own tables
                            " WHERE batch = %s",
                            [index],
                        )

    indexes = list(range(len(batches)))
    checkpoint()
    try:
        started = time.monotonic()
        in_threads(work, [indexes[0::2], indexes[1::2]])
        return time.monotonic() - started
    finally:
        with database_connection() as conn:
            for name in ["batch", "lines", "signals", "cases", *WRITE_FLOOR_TABLES]:
                conn.execute(f"DROP TABLE IF EXISTS bench_floor_{name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", default="riskops_pages", help="the seeded database to copy (only read)")
    parser.add_argument("--accounts", type=int, default=1_000_000, help="accounts when the template must be seeded")
    parser.add_argument("--batch-size", type=int, default=settings.JOB_BATCH_SIZE)
    parser.add_argument("--per-account-sample", type=int, default=5_000)
    parser.add_argument("--unfreeze", type=int, default=100_000, help="frozen lines in the bulk unfreeze job")
    parser.add_argument(
        "--per-account-unfreeze", type=int, default=2_000, help="frozen lines a reviewer unfreezes one by one"
    )
    parser.add_argument(
        "--unfreeze-chain-off",
        type=int,
        default=50_000,
        help="frozen lines in the bulk unfreeze run before it with the audit chain off",
    )
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's database afterwards")
    args = parser.parse_args()
    if not 1 <= args.batch_size <= 5000:
        parser.error("--batch-size must be from 1 to 5000")
    if not 1 <= args.unfreeze <= jobs.MAX_EXPLICIT_IDS:
        parser.error(f"--unfreeze must be from 1 to {jobs.MAX_EXPLICIT_IDS:,}")
    if not 1 <= args.unfreeze_chain_off <= jobs.MAX_EXPLICIT_IDS:
        parser.error(f"--unfreeze-chain-off must be from 1 to {jobs.MAX_EXPLICIT_IDS:,}")
    name = str(settings.DATABASES["default"]["NAME"])
    if "bench" not in name or name == args.template:
        sys.exit(f"{name}: the benchmark drops and recreates its database; use one whose name contains 'bench'")
    settings.JOB_BATCH_SIZE = args.batch_size
    broker = os.environ["CELERY_BROKER_URL"]
    celery_app.conf.task_default_queue = QUEUE  # before the first send: batches and per-account tasks go there
    print(f"database {name} (copy of {args.template}); broker {broker}, queue {QUEUE}; {os.cpu_count()} cores")

    seed_seconds = None
    if not seeded(args.template):
        seed_seconds = seed_template(args.template, args.accounts)
    copy_seconds = copy_template(args.template, name)
    print(f"copied {args.template} to {name} in {copy_seconds:.1f} s")
    call_command("migrate", verbosity=0)
    accounts = scalar("SELECT count(*) FROM accounts_creditline")
    open_lines = scalar("SELECT count(*) FROM accounts_creditline WHERE status IN ('active', 'frozen')")
    frozen = scalar("SELECT count(*) FROM accounts_creditline WHERE status = 'frozen'")
    print(f"{accounts:,} accounts, {open_lines:,} open, {frozen:,} frozen")

    if broker.startswith("redis"):
        import redis

        redis.Redis.from_url(broker).flushdb()
    log_dir = Path(tempfile.mkdtemp(prefix="riskops-jobs-bench-"))  # worker logs, kept for a look afterwards
    print(f"worker logs in {log_dir}")
    requester, approver = senior("bench-senior-1"), senior("bench-senior-2")
    sampler = RssSampler()
    sampler.start()
    workers: list[Worker] = []
    figures: dict[str, Any] = {}
    try:
        workers.append(Worker("w1", log_dir, broker))
        workers.append(Worker("w2", log_dir, broker))
        sampler.workers = list(workers)
        settle, settle_seconds = run_job("settle (2 workers)", lambda: reevaluate_all(requester))
        with connection.cursor() as cur:
            for table in ("accounts_creditline", "accounts_signal", "accounts_case", "riskops_jobitem"):
                cur.execute(f"VACUUM ANALYZE {table}")

        workers.pop().stop()  # one worker left
        sampler.workers = list(workers)
        one, one_seconds = run_job("re-evaluate, 1 worker", lambda: reevaluate_all(requester))
        workers.append(Worker("w2b", log_dir, broker))
        sampler.workers = list(workers)
        two, two_seconds = run_job("re-evaluate, 2 workers", lambda: reevaluate_all(requester))

        with connection.cursor() as cur:
            cur.execute("SELECT id FROM accounts_creditline WHERE status IN ('active', 'frozen') ORDER BY id")
            all_ids = [r[0] for r in cur.fetchall()]
        step = max(1, len(all_ids) // args.per_account_sample)
        sample = all_ids[::step][: args.per_account_sample]
        per_account_seconds = per_account_tasks(workers, sample)
        per_account_rate = len(sample) / per_account_seconds
        print(
            f"per-account tasks, 2 workers: {len(sample):,} accounts in {per_account_seconds:.1f} s "
            f"= {per_account_rate:,.0f}/s"
        )

        with connection.cursor() as cur:
            cur.execute(
                """
                SELECT id FROM accounts_creditline l WHERE status = 'frozen'
                  AND NOT EXISTS (SELECT 1 FROM appeals_appeal a WHERE a.line_id = l.id
                                  AND a.status IN ('open', 'awaiting_info', 'awaiting_approval'))
                ORDER BY id LIMIT %s
                """,
                [args.unfreeze + args.unfreeze_chain_off],
            )
            candidates = [r[0] for r in cur.fetchall()]
        to_unfreeze, chain_off_lines = candidates[: args.unfreeze], candidates[args.unfreeze :]

        # The previous way first, on the next frozen lines: the same bulk unfreeze with the audit chain off (its
        # index dropped, no sealer), as the write path was before riskops 0010.
        audit_chain_off()
        chain_off, chain_off_seconds = bulk_unfreeze("audit chain off", chain_off_lines, requester, approver)
        catch_up = audit_chain_on()
        print(f"  chain back on: index rebuilt and the chain-off job's events sealed in {catch_up:.1f} s")

        with SealBeat() as beat:
            unfreeze, unfreeze_seconds = bulk_unfreeze("audit chain on", to_unfreeze, requester, approver)
            seal_lag = beat.wait_sealed()
        audit_events = AuditEvent.objects.filter(actor_label=f"job #{unfreeze.pk}").count()
        print(
            f"  {audit_events:,} audit events written by the bulk unfreeze, all chained {seal_lag:.1f} s after it "
            f"ended ({beat.sent} seal tasks sent by beat); chain on / off: "
            f"{unfreeze.selected / unfreeze_seconds / (chain_off.selected / chain_off_seconds):.3f}"
        )

        floor_seconds = write_floor(unfreeze, to_unfreeze, args.batch_size)
        floor_rate = len(to_unfreeze) / floor_seconds
        print(f"write floor, 2 threads: the same rows again in {floor_seconds:.1f} s = {floor_rate:,.0f} accounts/s")

        with connection.cursor() as cur:
            cur.execute("SELECT id FROM accounts_creditline WHERE status = 'frozen' ORDER BY id")
            still_frozen = [r[0] for r in cur.fetchall()]
        step = max(1, len(still_frozen) // max(1, args.per_account_unfreeze))
        one_by_one = still_frozen[::step][: args.per_account_unfreeze]
        reviewer_seconds = reviewer_unfreezes(one_by_one, requester, approver)
        reviewer_rate = len(one_by_one) / reviewer_seconds
        print(
            f"a reviewer's unfreeze per account, 2 threads: {len(one_by_one):,} accounts in {reviewer_seconds:.1f} s "
            f"= {reviewer_rate:,.1f}/s"
        )
    finally:
        for worker in workers:
            worker.stop()
        sampler.stop()
        if not args.keep:
            drop(name)

    rate_2 = two.selected / two_seconds
    figures = {
        "reevaluate_accounts_per_s_1_worker": round(one.selected / one_seconds),
        "reevaluate_accounts_per_s_2_workers": round(rate_2),
        "per_account_tasks_accounts_per_s": round(per_account_rate),
        "speedup_vs_per_account": round(rate_2 / per_account_rate, 1),
        "bulk_unfreeze_per_s": round(unfreeze.selected / unfreeze_seconds),
        "bulk_unfreeze_chain_off_per_s": round(chain_off.selected / chain_off_seconds),
        "bulk_unfreeze_chain_on_vs_off": round(
            unfreeze.selected / unfreeze_seconds / (chain_off.selected / chain_off_seconds), 3
        ),
        "bulk_unfreeze_sealed_after_s": round(seal_lag, 1),
        "bulk_unfreeze_with_sealing_per_s": round(unfreeze.selected / (unfreeze_seconds + seal_lag)),
        "unfreeze_write_floor_per_s": round(floor_rate),
        "bulk_unfreeze_vs_write_floor": round(unfreeze.selected / unfreeze_seconds / floor_rate, 3),
        "target_bulk_unfreeze_vs_write_floor": 0.5,
        "per_account_unfreeze_per_s": round(reviewer_rate, 1),
        "bulk_unfreeze_vs_per_account": round(unfreeze.selected / unfreeze_seconds / reviewer_rate, 1),
        "target_bulk_unfreeze_vs_per_account": 20,
        "per_account_unfreeze_sample": len(one_by_one),
        "worker_peak_rss_mb": round(sampler.peak_worker_kb / 1024),
        "worker_peak_rss_process_mb": round(sampler.peak_process_kb / 1024),
        "accounts": accounts,
        "reevaluated": two.selected,
        "reevaluate_seconds_1_worker": round(one_seconds, 1),
        "reevaluate_seconds_2_workers": round(two_seconds, 1),
        "reevaluate_changed": two.changed,
        "settle_accounts_per_s_2_workers": round(settle.selected / settle_seconds),
        "settle_changed": settle.changed,
        "per_account_sample": len(sample),
        "per_account_seconds": round(per_account_seconds, 1),
        "bulk_unfreeze_accounts": unfreeze.selected,
        "bulk_unfreeze_changed": unfreeze.changed,
        "bulk_unfreeze_failed": unfreeze.failed,
        "bulk_unfreeze_seconds": round(unfreeze_seconds, 1),
        "bulk_unfreeze_audit_events": audit_events,
        "bulk_unfreeze_chain_off_accounts": chain_off.selected,
        "bulk_unfreeze_chain_off_seconds": round(chain_off_seconds, 1),
        "batch_size": args.batch_size,
        "worker_concurrency": 1,
        "copy_seconds": round(copy_seconds, 1),
        "seed_seconds": round(seed_seconds, 1) if seed_seconds is not None else None,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
