"""What every benchmark does first: production-like settings, Django set up, its own database created and migrated.

    from bench.common import setup
    setup(default_database="riskops_bench")   # before any Django import

DEBUG is off unless the environment says otherwise (with DEBUG on, Django keeps the text of every query), the
secret key is random, the broker is Celery's in-memory one unless the benchmark asks for another.
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def setup(
    *, default_database: str, broker: str = "memory://", allowed_hosts: str = "testserver,127.0.0.1,localhost"
) -> None:
    """Settle the environment and set Django up; the database is DATABASE_URL's, or `default_database` on the
    embedded PostgreSQL server when DATABASE_URL is not set (or empty, as `make bench` passes it)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if not os.environ.get("DATABASE_URL"):
        # As the console does without DATABASE_URL: the project's embedded server (started if need be), here with a
        # database of the benchmark's own, never the console's.
        from riskops.embedded_db import ensure_running

        os.environ["DATABASE_URL"] = ensure_running(default_database)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "riskops.settings")
    os.environ.setdefault("DEBUG", "false")
    # Pages are measured without their static files (WhiteNoise would warn that collectstatic has not run).
    os.environ.setdefault("STATIC_COLLECTED", "false")
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(32))
    os.environ.setdefault("CELERY_BROKER_URL", broker)
    # Served over plain HTTP on the loopback, as the console is behind the TLS-terminating proxy of a deployment:
    # without these, DEBUG off answers every request with a redirect to https:// (riskops/settings.py).
    for name in ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"):
        os.environ.setdefault(name, "false")
    # One token sends everything a benchmark measures: the per-token throttle (600 requests a minute by default)
    # would measure the policy, not the capacity.
    os.environ.setdefault("API_THROTTLE_RATE", "1000000/min")
    os.environ["ALLOWED_HOSTS"] = allowed_hosts
    import django

    django.setup()


def admin_connection() -> Any:
    """A psycopg connection to the server's `postgres` database (to create and drop databases)."""
    return database_connection("postgres", autocommit=True)


def database_connection(name: str | None = None, **options: Any) -> Any:
    """A psycopg connection of its own to the benchmark's database, or to `name` on the same server."""
    from django.conf import settings
    from psycopg import connect

    db = settings.DATABASES["default"]
    params: dict[str, Any] = {
        "host": db["HOST"] or None,
        "port": db["PORT"] or None,
        "user": db["USER"] or None,
        "password": db["PASSWORD"] or None,
        "dbname": name or db["NAME"],
        **options,
    }
    return connect(**{k: v for k, v in params.items() if v is not None})


def ensure_database() -> None:
    """Create the benchmark's database if it does not exist, then migrate it (a fresh machine has neither)."""
    from django.conf import settings
    from django.core.management import call_command
    from psycopg import sql

    name = str(settings.DATABASES["default"]["NAME"])
    with admin_connection() as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            print(f"creating database {name}")
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    call_command("migrate", verbosity=0)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def timings(call: Callable[[int], object], n: int) -> dict[str, float]:
    """`call(i)` n times: the 50th and 95th percentiles of its wall-clock time, in ms."""
    times = []
    for i in range(n):
        started = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - started) * 1000)
    return {"p50": round(statistics.median(times), 1), "p95": round(percentile(times, 0.95), 1)}


def measure(client: Any, urls: Callable[[int], str], n: int) -> dict[str, float]:
    """A page through Django's full stack (the test client): 3 warm-up requests, then `timings` over n."""
    for i in range(3):
        assert client.get(urls(i)).status_code == 200

    def get(i: int) -> None:
        response = client.get(urls(i))
        assert response.status_code == 200, (urls(i), response.status_code)

    return timings(get, n)


def queries(client: Any, url: str) -> int:
    """How many queries one request of the page costs."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        client.get(url)
    return len(ctx)


def seeded_book(accounts: int, *, reset: bool) -> tuple[int, float | None]:
    """The pages benchmarks' book (`seed_demo --accounts N --seed 42`, engine included) in the current database:
    reused when it holds N accounts, else reseeded (which needs `reset` unless the database's name contains "bench"
    or "pages"). Returns the accounts and the seconds seeding took (None when reused)."""
    from django.conf import settings
    from django.core.management import call_command

    from accounts.models import CreditLine

    name = str(settings.DATABASES["default"]["NAME"])
    ensure_database()
    have = CreditLine.objects.count()
    print(f"database {name}; {have:,} accounts")
    if have == accounts:
        return have, None
    if not (reset or "bench" in name or "pages" in name):
        sys.exit(f"database {name} holds {have:,} accounts, not {accounts:,}; pass --reset to reseed it")
    started = time.monotonic()
    call_command("seed_demo", accounts=str(accounts), seed="42", reset=True)
    return accounts, round(time.monotonic() - started, 1)


def group_pids(leader: int) -> list[int]:
    """The processes of the process group `leader` leads (a server or worker started with start_new_session)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[2]) == leader:  # the process group
                    found.append(int(entry.name))
    return found


def vm_rss_kb(pid: int) -> int:
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# --- the audit chain on and off (bench/jobs.py, bench/ingest.py: the same work with the chain on, then as before it)


def _unsealed_index() -> Any:
    from riskops.models import AuditEvent

    return next(index for index in AuditEvent._meta.indexes if index.name == "audit_unsealed")


def audit_chain_off() -> None:
    """The write path as it was before the chain (riskops 0010): without the partial index of unsealed events, its
    only cost there (writers only INSERT; the append-only triggers fire on UPDATE, DELETE and TRUNCATE). With no
    sealer running, that is all the chain changed for a writer. Needs the table's owner (the benchmarks' default)."""
    from django.db import connection

    from riskops.models import AuditEvent

    with connection.schema_editor() as editor:
        editor.remove_index(AuditEvent, _unsealed_index())


def audit_chain_on() -> float:
    """Put the index back and seal what was written meanwhile: the seconds it took (not part of any figure)."""
    import time

    from django.db import connection

    from riskops.core.audit_chain import audit_seal
    from riskops.models import AuditEvent

    started = time.monotonic()
    with connection.schema_editor() as editor:
        editor.add_index(AuditEvent, _unsealed_index())
    audit_seal()
    return time.monotonic() - started


def unsealed() -> int:
    from riskops.models import AuditEvent

    return AuditEvent.objects.filter(chain_seq__isnull=True).count()


class SealBeat:
    """Beat's part of the chain while a phase runs: `riskops.tasks.audit_seal` sent to the workers every
    AUDIT_SEAL_SECONDS, as `make run`'s beat does, so the sealing shares the workers and cores with the work."""

    def __init__(self) -> None:
        import threading

        from django.conf import settings

        self.interval = float(settings.CELERY_BEAT_SCHEDULE["audit-seal"]["schedule"])
        self.sent = 0
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from riskops.celery import app

        while not self._halt.wait(self.interval):
            app.send_task("riskops.tasks.audit_seal")
            self.sent += 1

    def __enter__(self) -> SealBeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._halt.set()
        self._thread.join(timeout=5)

    def wait_sealed(self, timeout: float = 600) -> float:
        """Seconds until every event is chained, beat still sending every AUDIT_SEAL_SECONDS."""
        import time

        started = time.monotonic()
        while unsealed():
            if time.monotonic() - started > timeout:
                sys.exit(f"the audit events were not sealed within {timeout:.0f} s")
            time.sleep(0.1)
        return time.monotonic() - started
