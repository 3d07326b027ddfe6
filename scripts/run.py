"""`make run`: database, migrations, demo data, demo operators, then a Celery worker, beat and the web server.

Ctrl-C stops everything this script started, including the embedded PostgreSQL; the next run
reuses the data under var/.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "riskops.settings")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1 or value > 5_000_000:
        raise argparse.ArgumentTypeError(f"{value} is out of range 1..5000000")
    return value


def wait_until_serving(url: str, seconds: float = 30) -> bool:
    """Wait for the console at `url` (ending in /) to answer its health check; False if it has not in `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "healthz", timeout=1)  # noqa: S310 - our own local server  # nosec B310
            return True
        except OSError:
            time.sleep(0.2)
    return False


def _interrupt(*_args: object) -> None:
    raise KeyboardInterrupt


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("RISKOPS_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=positive_int, default=int(os.environ.get("RISKOPS_PORT", "8000")))
    parser.add_argument(
        "--accounts",
        type=positive_int,
        default=int(os.environ.get("DEMO_ACCOUNTS", "20000")),
        help="demo accounts to load on the first start (default 20000)",
    )
    parser.add_argument("--seed", type=int, default=42)
    return parser.parse_args()


def environment(args: argparse.Namespace, embedded: bool) -> dict[str, str]:
    env = dict(os.environ)
    # Borrower SMS go to a file in the demo rather than flooding the console.
    env.setdefault("NOTIFICATION_SENDER", "accounts.notifications.FileSender")
    var_dir = Path(os.environ.get("RISKOPS_VAR_DIR", str(ROOT / "var")))
    env.setdefault("NOTIFICATION_FILE_PATH", str(var_dir / "notifications.log"))
    # The links in borrowers' messages point at this console.
    env.setdefault("PUBLIC_BASE_URL", f"http://{args.host}:{args.port}")
    if embedded:
        from riskops.embedded_db import ensure_running

        env["DATABASE_URL"] = ensure_running()
        print("PostgreSQL: embedded server under var/pg (set DATABASE_URL to use another)")
    else:
        print("PostgreSQL: DATABASE_URL")
    return env


def runtime_database_url(env: dict[str, str]) -> str:
    """The URL the worker, beat and web server use: DATABASE_URL when DATABASE_OWNER_URL names the owner apart, else
    DATABASE_URL's server and database as the runtime role (DATABASE_APP_ROLE, docs/AUDIT.md)."""
    if env.get("DATABASE_OWNER_URL"):
        return env["DATABASE_URL"]
    parts = urlsplit(env["DATABASE_URL"])
    user = quote(env.get("DATABASE_APP_ROLE", "riskops_app"), safe="")
    password = env.get("DATABASE_APP_PASSWORD")
    auth = user + (":" + quote(password, safe="") if password else "")
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{auth}@{host}", parts.path, parts.query, parts.fragment))


def can_connect(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5):
            return True
    except psycopg.OperationalError as exc:
        print(f"The runtime role cannot connect ({str(exc).strip()}); using the owner's URL.", file=sys.stderr)
        return False


def as_runtime_role(manage: list[str], env: dict[str, str]) -> dict[str, str]:
    """Grant the runtime role least privilege (as the owner, after migrate), then the environment that uses it."""
    owner = dict(env, DATABASE_URL=env.get("DATABASE_OWNER_URL") or env["DATABASE_URL"])
    role = ["--role", env["DATABASE_APP_ROLE"]] if env.get("DATABASE_APP_ROLE") else []
    subprocess.run([*manage, "setup_db_roles", *role], env=owner, check=True)
    runtime = runtime_database_url(env)
    if not can_connect(runtime):
        return owner
    print("PostgreSQL: the worker, beat and web server connect as the runtime role (docs/AUDIT.md)")
    return dict(env, DATABASE_URL=runtime)


def prepare(manage: list[str], env: dict[str, str], args: argparse.Namespace) -> None:
    """Migrate, load the demo data on the first start, create the demo operators: as the owner."""
    if env.get("DATABASE_OWNER_URL"):
        env = dict(env, DATABASE_URL=env["DATABASE_OWNER_URL"])
    subprocess.run([*manage, "migrate", "--no-input", "-v", "0"], env=env, check=True)
    has_data = (
        subprocess.run(
            [*manage, "shell", "-c", "from accounts.models import CreditLine; print(CreditLine.objects.exists())"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .endswith("True")
    )
    if not has_data:
        print(f"Loading {args.accounts} demo accounts (first start only)...")
        subprocess.run(
            [*manage, "seed_demo", "--accounts", str(args.accounts), "--seed", str(args.seed), "--appeals", "60"],
            env=env,
            check=True,
        )
    subprocess.run([*manage, "create_demo_operators"], env=env, check=True)


def stop_all(children: list[subprocess.Popen], embedded: bool) -> None:
    # A second Ctrl-C while shutting down must not leave PostgreSQL running.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    if embedded:
        from riskops.embedded_db import stop

        stop()
        print("Stopped the worker, beat, the web server and the embedded PostgreSQL.")
    else:
        print("Stopped the worker, beat and the web server.")


def serve(manage: list[str], env: dict[str, str], args: argparse.Namespace, children: list[subprocess.Popen]) -> int:
    """Start the worker, beat and the web server; return when one of them stops (1) or on Ctrl-C."""
    celery = [sys.executable, "-m", "celery", "-A", "riskops"]
    children.append(subprocess.Popen([*celery, "worker", "--loglevel", "INFO", "--concurrency", "2"], env=env))
    children.append(subprocess.Popen([*celery, "beat", "--loglevel", "INFO"], env=env))
    children.append(subprocess.Popen([*manage, "runserver", "--noreload", f"{args.host}:{args.port}"], env=env))
    url = f"http://{args.host}:{args.port}/"
    wait_until_serving(url)
    print(f"\nRiskOps console: {url}  (log in with a demo operator above; Ctrl-C stops everything)")
    print(f"Borrower notifications are written to {env['NOTIFICATION_FILE_PATH']}\n")
    signal.signal(signal.SIGTERM, _interrupt)
    # Also when started from a script, where SIGINT may arrive ignored: Ctrl-C always stops everything.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    while all(child.poll() is None for child in children):
        time.sleep(0.5)
    print("A process stopped unexpectedly; stopping the rest.", file=sys.stderr)
    return 1


def main() -> int:
    args = parse_args()
    embedded = not os.environ.get("DATABASE_URL")
    manage = [sys.executable, str(ROOT / "manage.py")]
    env = environment(args, embedded)
    children: list[subprocess.Popen] = []
    try:
        prepare(manage, env, args)
        return serve(manage, as_runtime_role(manage, env), args, children)
    except KeyboardInterrupt:
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"`{' '.join(map(str, exc.cmd[1:3]))}` failed with exit code {exc.returncode}", file=sys.stderr)
        return exc.returncode or 1
    finally:
        stop_all(children, embedded)


if __name__ == "__main__":
    sys.exit(main())
