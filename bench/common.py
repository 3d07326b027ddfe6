"""What every benchmark does first: production-like settings, Django set up, its own database created and migrated.

    from bench.common import setup
    setup(default_database="riskops_bench")   # before any Django import

DEBUG is off unless the environment says otherwise (with DEBUG on, Django keeps the text of every query), the
secret key is random, the broker is Celery's in-memory one unless the benchmark asks for another.
"""

from __future__ import annotations

import os
import secrets
import sys
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
