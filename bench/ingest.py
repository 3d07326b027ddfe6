#!/usr/bin/env python
"""Ingestion benchmark: 1M events through POST /api/v1/events/ (batches of 10,000) under gunicorn, the engine
reacting on a real Celery worker; the naive way and the physical floor side by side; event-to-decision latency.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/riskops_ingest_bench .venv/bin/python bench/ingest.py \
        [--accounts 100000] [--events 1000000] [--batch 10000] [--clients 2] [--naive-events 3000] \
        [--stream-rate 2000] [--stream-seconds 20]

How it runs:
- Its own database (riskops_ingest_bench unless DATABASE_URL says otherwise; its name must contain "bench"),
  dropped, created and migrated at the start of every run: the run loads everything itself.
- The console as in production: gunicorn `riskops.wsgi:application`, sync workers (cores + 1), the README's glibc
  tunables, DEBUG off; one Celery worker (concurrency 1) on Redis db 11 (kombu's filesystem broker when no Redis
  answers) reacts to what comes in: each accepted batch asks it to evaluate the touched accounts.
- Data: `--accounts` accounts first (batches of 10,000 account items), then `--events` events, ten per account
  (3 credit inquiries, a drawdown, its 2 installments, 2 transfers, a repayment of the first installment or an
  income record, a profile update or an inquiry), from a fixed seed; about a fifth of the accounts get a flag.
  Every request body is built before the clock starts; `--clients` threads send them.
- `ingest_events_per_s`: the events over the time from the first request to the last 201, with the audit chain on
  (beat's `riskops.tasks.audit_seal` sent every AUDIT_SEAL_SECONDS to the same worker). `reaction_drained_s` is
  how long after that the worker took to evaluate what was still touched; `ingest_with_reaction_events_per_s`
  counts that too; `ingest_sealed_after_s`, how much later the last audit event was chained.
- `ingest_chain_off_events_per_s`: the same with the chain off, as before it existed (no index of unsealed events,
  no sealer). After a warm-up of two batches per gunicorn worker (in neither figure), the events go in four
  rounds, off, on, on, off, each waiting for the engine (and the sealer) before the next, so both ways see the
  same mix of accounts and, on average, the same table sizes; `ingest_chain_on_vs_off` compares them.
- `naive_events_per_s`: the same kinds of events, one POST each through a DRF ModelSerializer
  (bench/ingest_naive.py, the same gunicorn command), `--naive-events` of them, the same number of clients.
- `copy_floor_events_per_s`: the events' rows written by COPY into empty copies of the event tables (same columns,
  indexes and constraints but no foreign keys), on one connection: the least the same rows cost PostgreSQL.
- `event_to_decision_p95_ms`: a stream of `--stream-rate` events/s for `--stream-seconds` (a batch every 100 ms),
  each batch holding an installment 40 days overdue for a new account; from the batch's 201 to that account's
  line being frozen, as a reader of the database sees it (polled every 10 ms).
- `ingest_peak_rss_mb`: the largest resident size of any gunicorn or Celery process during the run.

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import nullcontext, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import (  # noqa: E402
    SealBeat,
    admin_connection,
    audit_chain_off,
    audit_chain_on,
    database_connection,
    group_pids,
    percentile,
    setup,
    vm_rss_kb,
)


def _broker() -> str:
    if os.environ.get("INGEST_BENCH_BROKER_URL"):
        return os.environ["INGEST_BENCH_BROKER_URL"]
    with suppress(OSError), socket.create_connection(("127.0.0.1", 6379), timeout=1):
        return "redis://127.0.0.1:6379/11"
    return "filesystem://"


os.environ["CELERY_BROKER_URL"] = _broker()
os.environ["RISKOPS_VAR_DIR"] = tempfile.mkdtemp(prefix="riskops-ingest-bench-var-")
setup(default_database="riskops_ingest_bench")

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402
from psycopg import sql  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from ingest.services import EVENT_MODELS  # noqa: E402
from riskops.core.roles import INTEGRATION, ensure_roles  # noqa: E402

GLIBC = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864"
INSTITUTIONS = ["招商银行", "平安普惠", "度小满", "微众银行", "京东金融", "马上消费", "中银消费", "捷信"]


# --- data


def _at(now: datetime, days: float) -> str:
    return (now - timedelta(days=days)).isoformat()


def accounts_items(n: int, now: datetime) -> list[dict[str, Any]]:
    rnd = random.Random(42)
    return [
        {
            "kind": "account",
            "account": f"B{i:07d}",
            "occurred_at": _at(now, 400 + rnd.random() * 300),
            "limit": f"{rnd.randrange(20, 400) * 100}.00",
            "phone": f"13{rnd.randrange(10**9):09d}",
            "employer": f"企业{rnd.randrange(5000)}",
            "monthly_income": f"{rnd.randrange(30, 300) * 100}.00",
        }
        for i in range(n)
    ]


def account_events(i: int, rnd: random.Random, now: datetime) -> list[dict[str, Any]]:
    """Ten events of account i, in an order where what an event refers to comes first."""
    ref = f"B{i:07d}"
    burst = rnd.random() < 0.1  # a tenth shop for credit at several lenders within weeks: MULTI_HEAD
    spread = 20 if burst else 200
    ev: list[dict[str, Any]] = [
        {
            "kind": "credit_inquiry",
            "institution": rnd.choice(INSTITUTIONS),
            "occurred_at": _at(now, rnd.random() * spread),
        }
        for _ in range(3)
    ]
    drawn = rnd.randrange(10, 100) * 100
    late = rnd.random() < 0.05  # a twentieth stop paying: the first installment 45 days overdue, OVERDUE
    taken = 75.0 if late else 20 + rnd.random() * 30
    ev.append({"kind": "drawdown", "upstream_id": f"{ref}-d", "occurred_at": _at(now, taken), "amount": f"{drawn}.00",
               "term_months": 2})  # fmt: skip
    today = timezone.localdate(now)
    for k in (1, 2):
        due = today - timedelta(days=int(taken) - 30 * k)
        ev.append({"kind": "installment", "upstream_id": f"{ref}-i{k}", "occurred_at": _at(now, taken),
                   "due_date": due.isoformat(), "amount": f"{drawn // 2}.00", "drawdown": f"{ref}-d"})  # fmt: skip
    risky = rnd.random() < 0.05  # a twentieth move 60% of the loan to a broker within two days: ABNORMAL_USE
    for k in range(2):
        ev.append({"kind": "transfer", "occurred_at": _at(now, taken - 1 - k), "amount": f"{drawn * 3 // 10}.00",
                   "counterparty": "某证券" if risky else "商户", "counterparty_category": "securities" if risky else "consumption"})  # fmt: skip
    if not late:  # the first installment paid on its due date, or early
        ev.append({"kind": "repayment", "installment": f"{ref}-i1", "amount": f"{drawn // 2}.00",
                   "occurred_at": _at(now, max(0.5, taken - 30))})  # fmt: skip
    else:  # and an income record at a new employer, a tenth of the declared income
        ev.append({"kind": "income_record", "source": "tax", "employer": "新公司", "monthly_income": "300.00",
                   "occurred_at": _at(now, 100)})  # fmt: skip
    if rnd.random() < 0.5:
        ev.append({"kind": "profile_update", "monthly_income": f"{rnd.randrange(30, 300) * 100}.00",
                   "occurred_at": _at(now, rnd.random() * 300)})  # fmt: skip
    else:
        ev.append(
            {
                "kind": "credit_inquiry",
                "institution": rnd.choice(INSTITUTIONS),
                "occurred_at": _at(now, rnd.random() * spread),
            }
        )
    for n, e in enumerate(ev):
        e.setdefault("upstream_id", f"{ref}-{n}")
        e["account"] = ref
    return ev


def events_items(accounts: int, events: int, now: datetime) -> list[dict[str, Any]]:
    """Ten events per account, account after account (a batch of 10,000 holds 1,000 accounts' events whole, so no
    batch refers to a drawdown or an installment of another batch), up to `events`."""
    rnd = random.Random(7)
    items: list[dict[str, Any]] = []
    for i in range(accounts):
        if len(items) >= events:
            break
        items.extend(account_events(i, rnd, now))
    return items[:events]


def bodies(items: list[dict[str, Any]], batch: int) -> list[bytes]:
    return [json.dumps({"items": items[k : k + batch]}).encode() for k in range(0, len(items), batch)]


# --- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, app: str, workers: int, log: Path) -> None:
        self.port = free_port()
        env = {**os.environ, "GLIBC_TUNABLES": GLIBC, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "gunicorn", app, "--worker-class", "sync", "--workers", str(workers),
               "--bind", f"127.0.0.1:{self.port}", "--timeout", "300", "--log-level", "warning"]  # fmt: skip
        self.command = " ".join(cmd[2:])
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while True:
            with suppress(OSError):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/login/")
                if conn.getresponse().status == 200:
                    break
            if self.popen.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"gunicorn {app} did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=30)


class Worker:
    def __init__(self, log: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "celery", "-A", "riskops", "worker", "--concurrency", "1", "--loglevel", "INFO",
               "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"ingest-{secrets.token_hex(3)}@%h"]  # fmt: skip
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while " ready." not in log.read_text(errors="replace"):
            if self.popen.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the Celery worker did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=30)


def _stat(pid: int) -> list[str]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()  # from the state on: ppid is [1], utime [11], stime [12]


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU the processes have used so far."""
    total = 0
    for pid in pids:
        with suppress(OSError, ValueError, IndexError):
            fields = _stat(pid)
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    found.append(int(entry.name))
    return found


def postgres_cpu_seconds() -> float:
    """CPU PostgreSQL has used so far, backends that ended included: the live processes' own time, plus the time
    of the children each postmaster has reaped (cutime, cstime). Backends and autovacuum workers come and go during
    a phase; summing only the live ones loses those that ended (and went negative)."""
    pids = set(postgres_pids())
    total = 0
    for pid in pids:
        with suppress(OSError, ValueError, IndexError):
            fields = _stat(pid)
            total += int(fields[11]) + int(fields[12])
            if int(fields[1]) not in pids:  # a postmaster
                total += int(fields[13]) + int(fields[14])
    return total / os.sysconf("SC_CLK_TCK")


class RssSampler(threading.Thread):
    def __init__(self, leaders: list[int]) -> None:
        super().__init__(daemon=True)
        self.leaders = leaders
        self.peak_kb = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.2):
            for leader in self.leaders:
                for pid in group_pids(leader):
                    self.peak_kb = max(self.peak_kb, vm_rss_kb(pid))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


# --- load


def post_all(port: int, path: str, token: str, payloads: list[bytes], clients: int, expect: set[int]) -> float:
    """POST every payload, `clients` at a time; the wall time from the first request to the last answer."""
    lock = threading.Lock()
    queue = list(reversed(payloads))
    failures: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        while True:
            with lock:
                if not queue or failures:
                    return
                body = queue.pop()
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
            if response.status not in expect:
                with lock:
                    failures.append(f"{response.status}: {answer[:500]!r}")

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        sys.exit(f"POST {path} failed: {failures[0]}")
    return time.monotonic() - started


@dataclass
class Round:
    """What the rounds of one way (audit chain on or off) add up to."""

    cpu: dict[str, float]
    events: int = 0
    post: float = 0.0
    drained: float = 0.0
    sealed_after: float = 0.0


def touched() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM accounts_touchedline")
        return int(cur.fetchone()[0])


def wait_drained(timeout: float = 1800) -> float:
    started = time.monotonic()
    while touched():
        if time.monotonic() - started > timeout:
            sys.exit("the engine did not evaluate the touched accounts in time")
        time.sleep(0.05)
    return time.monotonic() - started


def stream(port: int, token: str, rate: int, seconds: int, now: datetime, accounts: int) -> list[float]:
    """Batches every 100 ms of rate/10 events, each with an installment 40 days overdue for a new account; the
    latency from each batch's 201 to that account's freeze being visible."""
    per_batch = max(2, rate // 10)
    rnd = random.Random(11)
    answered: dict[str, float] = {}
    lock = threading.Lock()
    done = threading.Event()
    latencies: list[float] = []
    today = timezone.localdate(now)

    def poller() -> None:
        with database_connection() as conn:
            while not (done.is_set() and not answered):
                with lock:
                    waiting = list(answered)
                if waiting:
                    rows = conn.execute(
                        "SELECT account_no FROM accounts_creditline WHERE account_no = ANY(%s) AND status = 'frozen'",
                        [waiting],
                    ).fetchall()
                    seen = time.monotonic()
                    with lock:
                        for (ref,) in rows:
                            latencies.append(seen - answered.pop(ref))
                time.sleep(0.01)

    watcher = threading.Thread(target=poller, daemon=True)
    watcher.start()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    started = time.monotonic()
    for n in range(rate * seconds // per_batch):
        ref = f"S{n:07d}"
        items: list[dict[str, Any]] = [
            {"kind": "account", "account": ref, "occurred_at": _at(now, 300), "limit": "10000.00", "phone": "13800000000"},
            {"kind": "installment", "upstream_id": f"{ref}-late", "account": ref, "occurred_at": _at(now, 70),
             "due_date": (today - timedelta(days=40)).isoformat(), "amount": "500.00"},
        ]  # fmt: skip
        base = rnd.randrange(accounts)
        items += [
            {"kind": "credit_inquiry", "upstream_id": f"{ref}-q{k}", "account": f"B{(base + k) % accounts:07d}",
             "occurred_at": _at(now, 100 + rnd.random()), "institution": "背景银行"}
            for k in range(per_batch - 2)
        ]  # fmt: skip
        conn.request("POST", "/api/v1/events/", body=json.dumps({"items": items}).encode(), headers=headers)
        response = conn.getresponse()
        answer = response.read()
        if response.status != 201:
            sys.exit(f"stream: {response.status} {answer[:500]!r}")
        with lock:
            answered[ref] = time.monotonic()
        delay = started + (n + 1) * 0.1 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    done.set()
    watcher.join(timeout=60)
    if answered:
        sys.exit(f"stream: {len(answered)} accounts were never frozen")
    return latencies


def naive_items(events: list[dict[str, Any]], n: int) -> list[bytes]:
    """Kinds as in the main stream, on accounts the main stream loaded, with upstream ids of their own (those the
    main stream used are taken); references to drawdowns and installments the main stream stored."""
    picked = [e for e in events if e["kind"] not in ("installment", "drawdown", "repayment")][:n]
    return [json.dumps({**e, "upstream_id": f"naive-{k}"}).encode() for k, e in enumerate(picked)]


def copy_floor(events: list[dict[str, Any]]) -> float:
    """COPY the same events' rows into empty copies of the event tables; seconds."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_kind.setdefault(e["kind"], []).append(e)
    with connection.cursor() as cur:
        cur.execute("SELECT account_no, id FROM accounts_creditline")
        lines = dict(cur.fetchall())
        cur.execute("SELECT upstream_id, id FROM accounts_drawdown")
        drawdowns = dict(cur.fetchall())
        cur.execute("SELECT upstream_id, id FROM accounts_installment")
        installments = dict(cur.fetchall())
    prepared: list[tuple[str, list[str], list[tuple[Any, ...]]]] = []
    for kind, rows in by_kind.items():
        model = EVENT_MODELS[kind]
        fields = [f for f in model._meta.concrete_fields if not f.primary_key]
        keys = [{"line": "account"}.get(f.name, f.name) for f in fields]
        refs = {"account": lines, "drawdown": drawdowns, "installment": installments}
        values = [
            tuple(
                refs[k].get(e[k])
                if k in refs and e.get(k) is not None
                else e.get(k, None if f.null else f.get_default())
                for k, f in zip(keys, fields, strict=True)
            )
            for e in rows
        ]
        prepared.append((model._meta.db_table, [str(f.column) for f in fields], values))
    with database_connection() as conn:
        for table, _columns, _values in prepared:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(f"floor_{table}")))
            conn.execute(
                sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(
                    sql.Identifier(f"floor_{table}"), sql.Identifier(table)
                )
            )
        conn.commit()
        started = time.monotonic()
        for table, columns, values in prepared:
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(f"floor_{table}"), sql.SQL(", ").join(map(sql.Identifier, columns))
            )
            with conn.cursor().copy(statement) as copy:
                for row in values:
                    copy.write_row(row)
        conn.commit()
        seconds = time.monotonic() - started
        for table, _columns, _values in prepared:
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(f"floor_{table}")))
        conn.commit()
    return seconds


# --- main


def recreate_database() -> str:
    name = str(settings.DATABASES["default"]["NAME"])
    if "bench" not in name:
        sys.exit(f"refusing to drop {name!r}: the benchmark's database name must contain 'bench'")
    connection.close()
    with admin_connection() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    call_command("migrate", verbosity=0)
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--workers", type=int, default=(os.cpu_count() or 2) + 1, help="gunicorn workers")
    parser.add_argument("--naive-events", type=int, default=3000)
    parser.add_argument("--stream-rate", type=int, default=2000)
    parser.add_argument("--stream-seconds", type=int, default=20)
    args = parser.parse_args()
    if not 1 <= args.batch <= 10_000:
        sys.exit("--batch must be from 1 to 10000")
    if args.accounts < 1 or args.events < 1 or args.clients < 1:
        sys.exit("--accounts, --events and --clients must be at least 1")

    name = recreate_database()
    broker = os.environ["CELERY_BROKER_URL"]
    if broker.startswith("redis://"):
        import redis

        redis.Redis.from_url(broker).flushdb()
    ensure_roles()
    user = User.objects.create_user("bench-feed")
    user.groups.add(Group.objects.get(name=INTEGRATION))
    token = Token.objects.create(user=user).key
    print(f"database {name}, broker {broker}, {os.cpu_count()} cores")

    now = timezone.now()
    started = time.monotonic()
    account_list = accounts_items(args.accounts, now)
    event_list = events_items(args.accounts, args.events, now)
    account_bodies, event_bodies = bodies(account_list, args.batch), bodies(event_list, args.batch)
    naive_bodies = naive_items(event_list, args.naive_events)
    print(f"built {len(account_list):,} accounts and {len(event_list):,} events in {time.monotonic() - started:.1f} s")

    logs = Path(os.environ["RISKOPS_VAR_DIR"])
    server = Server("riskops.wsgi:application", args.workers, logs / "gunicorn.log")
    worker = Worker(logs / "worker.log")
    sampler = RssSampler([server.popen.pid, worker.popen.pid])
    sampler.start()
    try:
        seconds = post_all(server.port, "/api/v1/events/", token, account_bodies, args.clients, {201})
        print(f"accounts: {len(account_list):,} in {seconds:.1f} s = {len(account_list) / seconds:,.0f}/s")
        wait_drained()
        groups = {
            "web": group_pids(server.popen.pid),
            "worker": group_pids(worker.popen.pid),
        }
        # First a warm-up (two batches per gunicorn worker, counted in neither way: each worker's first requests pay
        # for its imports and prepared statements), then the rest in four rounds, the audit chain off (as before
        # riskops 0010: no index of unsealed events, no sealer), on (beat's seal task every AUDIT_SEAL_SECONDS on the
        # same worker), on, off: both ways over the same mix of accounts and, on average, the same table sizes. Each
        # round waits for the engine and the sealer to finish.
        warm = event_bodies[: 2 * args.workers]
        if len(event_bodies) < len(warm) + 4:
            sys.exit(f"--events must make at least {len(warm) + 4} batches: a warm-up, then two rounds each way")
        warm_seconds = post_all(server.port, "/api/v1/events/", token, warm, args.clients, {201})
        wait_drained()
        print(f"  warm-up: {len(warm)} batches in {warm_seconds:.1f} s")
        rest = event_bodies[len(warm) :]
        size = -(-len(rest) // 4)
        per = {mode: Round(cpu=dict.fromkeys([*groups, "postgres"], 0.0)) for mode in ("on", "off")}
        for n, mode in enumerate(("off", "on", "on", "off")):
            part = rest[n * size : (n + 1) * size]
            if mode == "off":
                audit_chain_off()
            elif n == 1:
                audit_chain_on()
            cpu_before = {**{g: cpu_seconds(v) for g, v in groups.items()}, "postgres": postgres_cpu_seconds()}
            with SealBeat() if mode == "on" else nullcontext() as beat:
                seconds = post_all(server.port, "/api/v1/events/", token, part, args.clients, {201})
                drained = wait_drained()
                sealed_after = beat.wait_sealed() if beat else 0.0
            events = sum(len(json.loads(b)["items"]) for b in part)
            total = per[mode]
            total.events += events
            total.post += seconds
            total.drained += drained
            total.sealed_after = max(total.sealed_after, sealed_after)
            for g, v in groups.items():
                total.cpu[g] += cpu_seconds(v) - cpu_before[g]
            total.cpu["postgres"] += postgres_cpu_seconds() - cpu_before["postgres"]
            print(
                f"  round {n + 1}, audit chain {mode}: {events:,} events in {seconds:.1f} s = "
                f"{events / seconds:,.0f}/s; the engine done {drained:.1f} s later"
                + (f", the audit events chained {sealed_after:.1f} s after that" if mode == "on" else "")
            )
        audit_chain_on()
        on, off = per["on"], per["off"]
        cpu_us = {g: round(c / on.events * 1e6, 1) for g, c in on.cpu.items()}
        cpu_us_off = {g: round(c / off.events * 1e6, 1) for g, c in off.cpu.items()}
        print(f"  CPU per event, chain on: {cpu_us} µs, off: {cpu_us_off} µs (web = gunicorn, worker = the engine)")
        rate, rate_off = on.events / on.post, off.events / off.post
        seconds, drained = on.post, on.drained
        print(
            f"events, audit chain on: {on.events:,} in {on.post:.1f} s = {rate:,.0f}/s; "
            f"off: {off.events:,} in {off.post:.1f} s = {rate_off:,.0f}/s (on / off {rate / rate_off:.3f})"
        )
        with connection.cursor() as cur:
            cur.execute("SELECT count(*) FILTER (WHERE status = 'frozen'), count(*) FROM accounts_creditline")
            frozen, lines = cur.fetchone()
            cur.execute(
                "SELECT code, count(*) FROM accounts_signal WHERE status = 'active' GROUP BY code ORDER BY code"
            )
            signals = dict(cur.fetchall())
        print(f"  {frozen:,} of {lines:,} lines frozen; active signals {signals}")

        latencies = stream(server.port, token, args.stream_rate, args.stream_seconds, timezone.now(), args.accounts)
        p95 = percentile(latencies, 0.95) * 1000
        print(f"stream of {args.stream_rate:,} events/s: event to freeze p50 {percentile(latencies, 0.5) * 1000:.0f} ms,"
              f" p95 {p95:.0f} ms, max {max(latencies) * 1000:.0f} ms ({len(latencies)} freezes)")  # fmt: skip
    finally:
        sampler.stop()
        worker.stop()
        server.stop()

    naive = Server("bench.ingest_naive:application", args.workers, logs / "naive.log")
    try:
        naive_seconds = post_all(naive.port, "/naive/events/", token, naive_bodies, args.clients, {201})
    finally:
        naive.stop()
    naive_rate = len(naive_bodies) / naive_seconds
    print(
        f"naive (a ModelSerializer create per event): {len(naive_bodies):,} in {naive_seconds:.1f} s = {naive_rate:,.0f}/s"
    )

    floor_seconds = copy_floor(event_list)
    floor_rate = len(event_list) / floor_seconds
    print(f"COPY floor: {len(event_list):,} rows in {floor_seconds:.1f} s = {floor_rate:,.0f}/s")

    figures = {
        "ingest_events_per_s": round(rate),
        "ingest_with_reaction_events_per_s": round(on.events / (seconds + drained)),
        "reaction_drained_s": round(drained, 2),
        "ingest_chain_off_events_per_s": round(rate_off),
        "ingest_chain_off_with_reaction_events_per_s": round(off.events / (off.post + off.drained)),
        "ingest_chain_on_vs_off": round(rate / rate_off, 3),
        "ingest_sealed_after_s": round(on.sealed_after, 2),
        "cpu_us_per_event_chain_off": cpu_us_off,
        "naive_events_per_s": round(naive_rate, 1),
        "speedup_vs_naive": round(rate / naive_rate, 1),
        "copy_floor_events_per_s": round(floor_rate),
        "ingest_vs_copy_floor": round(rate / floor_rate, 3),
        "event_to_decision_p50_ms": round(percentile(latencies, 0.5) * 1000),
        "event_to_decision_p95_ms": round(p95),
        "event_to_decision_max_ms": round(max(latencies) * 1000),
        "ingest_peak_rss_mb": round(sampler.peak_kb / 1024),
        "cpu_us_per_event": cpu_us,
        "targets": {
            "ingest_events_per_s": 50_000,
            "speedup_vs_naive": 20,
            "event_to_decision_p95_ms": 2000,
            "ingest_peak_rss_mb": 300,
        },
        "events": len(event_list),
        "accounts": len(account_list),
        "batch": args.batch,
        "clients": args.clients,
        "server": server.command,
        "frozen": frozen,
        "signals": signals,
        "stream_rate": args.stream_rate,
        "stream_freezes": len(latencies),
        "naive_events": len(naive_bodies),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
