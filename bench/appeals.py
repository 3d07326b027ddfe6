#!/usr/bin/env python
"""Appeal intake benchmark: POST /api/v1/appeals/ with one 1 MB PDF, 20 concurrent clients, under gunicorn.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/riskops_appeals_bench .venv/bin/python bench/appeals.py \
        [--accounts 20000] [--appeals 1000] [--warmup 100] [--clients 20] \
        [--worker-class sync|gthread] [--workers CPUS+1] [--threads 4] [--keep-alive S] \
        [--naive-appeals 1000 | --no-naive] [--document-bytes 1048576] [--reset]

Why it is built this way:
- Its own database (riskops_appeals_bench unless DATABASE_URL says otherwise; created and migrated when missing),
  seeded with `seed_demo --accounts N --seed 42` (engine included, so about a sixth of the lines are frozen with an
  open case) and reused while it holds exactly N accounts. Every appeal needs its own frozen line with an unresolved
  case (one open appeal per case), so appeals are cleared before each run and after it: the same lines serve again.
  Clearing and reseeding need a database whose name contains "bench", or --reset.
- The app runs as in production: gunicorn (sync workers, one more than the cores, by default), DEBUG off,
  documents written to a fresh temporary directory, Celery's in-memory broker (the "send notifications" task queued
  after each commit goes nowhere, as in the other benches).
- The clients are threads in this process, each with one http.client connection, kept alive when the server allows
  it (sync workers close it after each response; http.client reconnects). The multipart body is sent from prebuilt
  bytes (fields, then the same 1 MB PDF, then the closing boundary), so the clients cost little of the machine's
  two cores. Each request has its own account and Idempotency-Key and must get 201.
- Latency is per request, from sending the request line to reading the whole response; throughput is the measured
  appeals over the wall time of the measured phase. A warm-up phase (not timed) first loads every worker.
- The floor (`intake_floor_per_s`): the same server (same gunicorn options, the same glibc tunables) and the same
  load against bench/intake_floor.py, a bare view that takes the same 1 MB upload through the same middleware and
  writes it to disk with the intake's own storage, and nothing else (no token, no checks, no database).
  `intake_vs_floor` is the intake's throughput over the floor's (target: at least 0.7).
- Naive side by side: the same load against `gunicorn riskops.wsgi:application` with gunicorn's defaults (one sync
  worker, no keep-alive, no glibc tunables), which is what one gets by not configuring it.
- After each phase the database must hold exactly one appeal and one stored document per request, and the document
  directory exactly as many 1 MB files.
- The CPU each side used during the timed phase is read from /proc (the gunicorn processes, their PostgreSQL
  backends, the client threads, and "other": the rest of the machine, which shows when a run was disturbed).

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import ensure_database, percentile, setup  # noqa: E402

# Measured as production runs: DEBUG off (the servers get the same environment).
setup(default_database="riskops_appeals_bench", allowed_hosts="127.0.0.1,localhost")

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from appeals.models import AppealReason  # noqa: E402
from riskops.core.audit_chain import audit_maintenance  # noqa: E402
from riskops.core.roles import INTEGRATION, ensure_roles  # noqa: E402

BENCH_SEED = "42"
BENCH_NOW = "2026-06-15T12:00:00+08:00"
DOCUMENT_BYTES = 1024 * 1024
TARGET_P95_MS = 200
TARGET_VS_FLOOR = 0.7
GLIBC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864"
APPEAL_TABLES = ("appeals_appealruleoutcome", "appeals_appealalert", "appeals_appealdocument", "appeals_appeal")
STATEMENT = (
    "我在 5 月为比较利率向几家机构申请了贷款，最终只在一家借款，其余申请均已撤销；"
    "附件是该笔借款的结清证明。请核实后恢复我的额度，谢谢。"
)


# --- the document: a real PDF (catalog, one page, a font, cross-reference table) padded to exactly 1 MB


def padded_pdf(size: int = DOCUMENT_BYTES) -> bytes:
    """A valid one-page PDF whose unreferenced padding stream (random bytes, like a scan) makes it `size` bytes."""
    rng = random.Random(42)

    def build(pad: int) -> bytes:
        content = b"BT /F1 18 Tf 72 720 Td (Loan settlement certificate) Tj ET"
        padding = rng.randbytes(pad) if pad else b""
        objects = [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
            b" /Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            b"<< /Length %010d >>\nstream\n" % len(padding) + padding + b"\nendstream",
        ]
        out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for number, body in enumerate(objects, start=1):
            offsets.append(len(out))
            out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
        xref = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
        out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
        # startxref's offset is written with a fixed width so the total does not move with it.
        out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%010d\n%%%%EOF\n" % (len(objects) + 1, xref)
        return bytes(out)

    data = build(size - len(build(0)))
    assert len(data) == size and data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    return data


# --- the database


def scalar(sql: str, params: list[Any] | None = None) -> Any:
    with connection.cursor() as cur:
        cur.execute(sql, params or [])
        return cur.fetchone()[0]


def clear_appeals() -> None:
    """Remove every appeal and what intake wrote for it, so each frozen line with an open case can appeal again
    (the audit events too: through the audit trail's maintenance procedure, on this bench's own database)."""
    with audit_maintenance(), connection.cursor() as cur:
        cur.execute(f"TRUNCATE {', '.join(APPEAL_TABLES)}")
        cur.execute("UPDATE accounts_case SET appeal_state = '', appeal_due_at = NULL WHERE appeal_state <> ''")
        cur.execute("DELETE FROM accounts_notification WHERE kind LIKE 'appeal%'")
        cur.execute("DELETE FROM riskops_auditevent WHERE action LIKE 'appeal.%' OR action = 'document.view'")
        cur.execute("VACUUM ANALYZE accounts_case")


def appealable_accounts(n: int) -> list[str]:
    """Account numbers of frozen lines with an unresolved case and no open appeal, in id order."""
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT l.account_no FROM accounts_case c JOIN accounts_creditline l ON l.id = c.line_id
            WHERE c.status <> 'resolved' AND c.appeal_state = '' AND l.status = 'frozen'
            ORDER BY c.id LIMIT %s
            """,
            [n],
        )
        return [r[0] for r in cur.fetchall()]


def integration_token() -> str:
    """The lending app's API user (group `integration`: may submit appeals) and its DRF token."""
    ensure_roles()
    user, _created = User.objects.get_or_create(username="bench-lending-app")
    user.set_unusable_password()
    user.save()
    user.groups.set([Group.objects.get(name=INTEGRATION)])
    token, _created = Token.objects.get_or_create(user=user)
    return str(token.key)


# --- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (Linux /proc); 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float:
    """CPU time the whole machine spent not idle (all cores), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _children(parent: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def _postgres_backends() -> list[int]:
    """The server processes of the connections to the benchmark's database (the gunicorn threads' connections)."""
    with connection.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        pids = [r[0] for r in cur.fetchall()]
    connection.close()
    return pids


class Server:
    """gunicorn serving riskops.wsgi on a free loopback port, with a document directory of its own."""

    def __init__(
        self, label: str, gunicorn_args: list[str], documents: Path, log: Path, *, app: str, tuned: bool
    ) -> None:
        self.label = label
        self.port = free_port()
        self.documents = documents
        env = {
            **os.environ,
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "APPEAL_DOCUMENTS_DIR": str(documents),
            "CELERY_BROKER_URL": "memory://",
            "LOG_LEVEL": "WARNING",
        }
        if tuned:  # glibc's malloc tuned for uploads, as the README's production command runs it
            env["GLIBC_TUNABLES"] = GLIBC_TUNABLES
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            app,
            "--bind",
            f"127.0.0.1:{self.port}",
            "--chdir",
            str(ROOT),
            "--log-level",
            "warning",
            *gunicorn_args,
        ]
        self.command = ("GLIBC_TUNABLES=... " if tuned else "") + " ".join(command[2:])
        self.log = log.open("w")
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.process.returncode}; see {self.log.name}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/login/")
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.label} did not answer within {timeout:.0f} s; see {self.log.name}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# --- the clients


@dataclass
class Phase:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Load:
    """`clients` threads, each with a keep-alive connection, POSTing appeals for the accounts handed to them."""

    def __init__(self, port: int, token: str, document: bytes, run: str) -> None:
        self.port = port
        self.token = token
        self.document = document
        self.run = run
        self.boundary = "bench" + secrets.token_hex(12)
        self.suffix = f"\r\n--{self.boundary}--\r\n".encode()
        self.reasons = list(AppealReason.values)

    def _prefix(self, n: int, account_no: str) -> bytes:
        b = self.boundary
        fields = {"account_no": account_no, "reason": self.reasons[n % len(self.reasons)], "statement": STATEMENT}
        parts = [f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()]
        parts.append(
            f'--{b}\r\nContent-Disposition: form-data; name="documents"; filename="结清证明-{n}.pdf"\r\n'
            "Content-Type: application/pdf\r\n\r\n"
        )
        return "".join(parts).encode()

    def _post(self, conn: http.client.HTTPConnection, n: int, account_no: str) -> tuple[int, bytes]:
        prefix = self._prefix(n, account_no)
        conn.putrequest("POST", "/api/v1/appeals/")
        conn.putheader("Authorization", f"Token {self.token}")
        conn.putheader("Idempotency-Key", f"{self.run}-{n}")
        conn.putheader("Content-Type", f"multipart/form-data; boundary={self.boundary}")
        conn.putheader("Content-Length", str(len(prefix) + len(self.document) + len(self.suffix)))
        conn.putheader("Accept", "application/json")
        conn.endheaders()
        conn.send(prefix)
        conn.send(self.document)
        conn.send(self.suffix)
        response = conn.getresponse()
        return response.status, response.read()

    def run_phase(self, jobs: list[tuple[int, str]], clients: int) -> Phase:
        phase = Phase()
        lock = threading.Lock()
        queue = iter(jobs)
        start = threading.Barrier(clients + 1)

        def client() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            start.wait()
            while True:
                with lock:
                    job = next(queue, None)
                if job is None:
                    break
                n, account_no = job
                began = time.perf_counter()
                try:
                    status, body = self._post(conn, n, account_no)
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()  # reconnects on the next request
                    status, body = -1, repr(exc).encode()
                elapsed = (time.perf_counter() - began) * 1000
                with lock:
                    phase.latencies_ms.append(elapsed)
                    phase.statuses[status] = phase.statuses.get(status, 0) + 1
                    if status != 201 and len(phase.errors) < 5:
                        phase.errors.append(f"{account_no}: {status} {body[:200]!r}")
            conn.close()

        threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
        for t in threads:
            t.start()
        start.wait()
        began = time.perf_counter()
        for t in threads:
            t.join()
        phase.seconds = time.perf_counter() - began
        return phase


def run_server(
    label: str,
    gunicorn_args: list[str],
    accounts: list[str],
    warmup: int,
    clients: int,
    token: str,
    document: bytes,
    *,
    tuned: bool = True,
    floor: bool = False,
) -> dict[str, Any]:
    """Start the server, warm it up, time `len(accounts) - warmup` appeals, check what was stored, clean up.

    `floor`: the floor's bare view (bench/intake_floor.py) instead of the intake; only its files are checked."""
    clear_appeals()
    workdir = Path(tempfile.mkdtemp(prefix="riskops-appeals-bench-"))
    documents = workdir / "appeal-documents"
    app = "bench.intake_floor:application" if floor else "riskops.wsgi:application"
    server = Server(label, gunicorn_args, documents, workdir / "server.log", app=app, tuned=tuned)
    print(f"{label}: {server.command}")
    try:
        load = Load(server.port, token, document, run=f"{label}-{secrets.token_hex(4)}")
        jobs = list(enumerate(accounts))
        warm = load.run_phase(jobs[:warmup], clients)
        # CPU spent during the timed phase: the gunicorn processes, their PostgreSQL backends, these clients.
        cpu_pids = {"server": [server.process.pid, *_children(server.process.pid)], "postgres": _postgres_backends()}
        cpu_before = {k: sum(map(_proc_cpu_seconds, pids)) for k, pids in cpu_pids.items()}
        client_before, busy_before = time.process_time(), _machine_busy_seconds()
        timed = load.run_phase(jobs[warmup:], clients)
        client_cpu, busy = time.process_time() - client_before, _machine_busy_seconds() - busy_before
        cpu = {k: sum(map(_proc_cpu_seconds, pids)) - cpu_before[k] for k, pids in cpu_pids.items()}
        cpu["client"] = client_cpu
        # Anything else the machine did meanwhile (PostgreSQL's WAL writer, the kernel, other people's work):
        # when this is large, the run was disturbed.
        cpu["other"] = max(0.0, busy - sum(cpu.values()))
    finally:
        server.stop()
    try:
        for name, phase in (("warm-up", warm), ("timed", timed)):
            if phase.statuses != {201: len(phase.latencies_ms)}:
                log_tail = (workdir / "server.log").read_text(errors="replace")[-2000:]
                sys.exit(f"{label} {name}: statuses {phase.statuses}; {phase.errors}\nserver log:\n{log_tail}")
        sent = len(accounts)
        files = [p for p in documents.iterdir() if p.is_file()] if documents.exists() else []
        full_files = sum(1 for p in files if p.stat().st_size == len(document))
        if floor:
            stored_appeals = stored_documents = sent  # the floor writes no row; its files are checked
        else:
            stored_appeals = scalar("SELECT count(*) FROM appeals_appeal")
            stored_documents = scalar(
                "SELECT count(*) FROM appeals_appealdocument WHERE size = %s AND content_type = 'application/pdf'",
                [len(document)],
            )
        if not (stored_appeals == stored_documents == len(files) == full_files == sent):
            sys.exit(
                f"{label}: sent {sent} appeals, stored {stored_appeals} appeals, {stored_documents} document rows, "
                f"{len(files)} files ({full_files} of {len(document)} bytes)"
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        clear_appeals()
    lat = timed.latencies_ms
    result: dict[str, Any] = {
        "p50_ms": round(statistics.median(lat), 1),
        "p95_ms": round(percentile(lat, 0.95), 1),
        "p99_ms": round(percentile(lat, 0.99), 1),
        "max_ms": round(max(lat), 1),
        "per_s": round(len(lat) / timed.seconds, 1),
        "appeals": len(lat),
        "stored": sent,
        "command": server.command,
        "cpu_ms_per_appeal": {k: round(v * 1000 / len(lat), 1) for k, v in cpu.items()},
    }
    print(
        f"{label}: {len(lat)} appeals in {timed.seconds:.2f} s ({result['per_s']}/s); p50 {result['p50_ms']} ms, "
        f"p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms; "
        f"{sent} appeals, documents and files stored (warm-up included), all 201"
    )
    print(f"{label}: CPU per appeal (ms): " + ", ".join(f"{k} {v}" for k, v in result["cpu_ms_per_appeal"].items()))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=20_000, help="accounts to seed (about 1 in 6 is appealable)")
    parser.add_argument("--appeals", type=int, default=1000, help="timed appeals per server")
    parser.add_argument("--warmup", type=int, default=100, help="appeals sent first, not timed")
    parser.add_argument("--clients", type=int, default=20)
    # Sync workers, one more than the cores: see bench/README.md for why (and for the gthread figures).
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"])
    parser.add_argument("--workers", type=int, default=(os.cpu_count() or 2) + 1, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (gthread only)")
    parser.add_argument(
        "--document-bytes", type=int, default=DOCUMENT_BYTES, help="size of the PDF (1 MB; smaller to diagnose)"
    )
    parser.add_argument("--keep-alive", type=int, default=None, help="gunicorn --keep-alive seconds (0: off)")
    parser.add_argument("--naive-appeals", type=int, default=None, help="timed appeals for the naive server")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive server")
    parser.add_argument("--reset", action="store_true", help="allow clearing/reseeding a database lacking 'bench'")
    args = parser.parse_args()
    if min(args.accounts, args.appeals, args.clients, args.workers, args.threads) < 1 or args.warmup < 0:
        parser.error("--accounts, --appeals, --clients, --workers and --threads must be positive")
    naive_appeals = args.naive_appeals if args.naive_appeals is not None else args.appeals

    db_name = str(settings.DATABASES["default"]["NAME"])
    if "bench" not in db_name and not args.reset:
        sys.exit(
            f"{db_name}: this benchmark deletes appeals (and may reseed); use a database named *bench*, or --reset"
        )
    ensure_database()
    have = scalar("SELECT count(*) FROM accounts_creditline")
    print(f"database {db_name}; {have:,} accounts; {os.cpu_count()} cores")
    seed_seconds = None
    if have != args.accounts:
        print(f"seeding {args.accounts:,} accounts (seed {BENCH_SEED}, now {BENCH_NOW}, engine included) ...")
        clear_appeals()
        started = time.monotonic()
        call_command("seed_demo", "--accounts", str(args.accounts), "--seed", BENCH_SEED, "--now", BENCH_NOW, "--reset")
        seed_seconds = round(time.monotonic() - started, 1)
        with connection.cursor() as cur:
            cur.execute("ANALYZE")
    clear_appeals()

    needed = args.warmup + max(args.appeals, 0 if args.no_naive else naive_appeals)
    accounts = appealable_accounts(needed)
    if len(accounts) < needed:
        sys.exit(f"only {len(accounts):,} frozen lines with an open case; {needed:,} needed: raise --accounts")
    token = integration_token()
    document = padded_pdf(args.document_bytes)
    connection.close()  # the servers and this process's clients do the work from here
    load_before = round(os.getloadavg()[0], 2)
    print(f"load average before the run: {load_before} (the figures need a quiet machine)")

    configured = (
        ["--worker-class", args.worker_class, "--workers", str(args.workers)]
        + (["--threads", str(args.threads)] if args.worker_class == "gthread" else [])
        + (["--keep-alive", str(args.keep_alive)] if args.keep_alive is not None else [])
    )
    served = run_server(
        "gunicorn", configured, accounts[: args.warmup + args.appeals], args.warmup, args.clients, token, document
    )
    # The floor: the same server and load, a view that only takes the upload and writes it to disk.
    floor = run_server(
        "floor",
        configured,
        accounts[: args.warmup + args.appeals],
        args.warmup,
        args.clients,
        token,
        document,
        floor=True,
    )
    naive = None
    if not args.no_naive:
        naive = run_server(
            "naive",
            [],
            accounts[: args.warmup + naive_appeals],
            args.warmup,
            args.clients,
            token,
            document,
            tuned=False,
        )

    figures: dict[str, Any] = {
        "intake_p95_ms": served["p95_ms"],
        "intake_p50_ms": served["p50_ms"],
        "intake_p99_ms": served["p99_ms"],
        "intake_max_ms": served["max_ms"],
        "intake_per_s": served["per_s"],
        "target_p95_ms": TARGET_P95_MS,
        "meets_target": served["p95_ms"] <= TARGET_P95_MS,
        "intake_floor_per_s": floor["per_s"],
        "intake_floor_p95_ms": floor["p95_ms"],
        "intake_vs_floor": round(served["per_s"] / floor["per_s"], 3),
        "target_intake_vs_floor": TARGET_VS_FLOOR,
        "floor_cpu_ms_per_appeal": floor["cpu_ms_per_appeal"],
        "appeals": served["appeals"],
        "warmup": args.warmup,
        "clients": args.clients,
        "document_bytes": len(document),
        "server": served["command"],
        "workers": args.workers,
        "worker_class": args.worker_class,
        "threads": args.threads if args.worker_class == "gthread" else 1,
        "cpu_ms_per_appeal": served["cpu_ms_per_appeal"],
        "naive_server": naive["command"] if naive else None,
        "naive_p95_ms": naive["p95_ms"] if naive else None,
        "naive_p50_ms": naive["p50_ms"] if naive else None,
        "naive_per_s": naive["per_s"] if naive else None,
        "per_s_vs_naive": round(served["per_s"] / naive["per_s"], 1) if naive else None,
        "p95_vs_naive": round(naive["p95_ms"] / served["p95_ms"], 1) if naive else None,
        "accounts": args.accounts,
        "seed_seconds": seed_seconds,
        "cpus": os.cpu_count(),
        "loadavg_1m_before": load_before,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
