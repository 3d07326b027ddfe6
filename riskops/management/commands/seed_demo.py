"""`manage.py seed_demo --accounts N [--seed S] [--now ISO] [--no-engine] [--reset]`.

Loads deterministic demo data (see `accounts.demo`) in one transaction, then runs the engine over it at the times
the data was generated for (each flagged account when its last events came, the others at "now"), so the numbers it
prints are the ones the console shows. With `--appeals`, the story goes on until "now" (`appeals.demo`).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from io import StringIO
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from accounts import demo
from accounts.models import CreditLine, Guidance, Rule, RuleSet, Signal
from riskops.core.audit_chain import audit_maintenance
from riskops.dashboard.services import dashboard_forget, dashboard_refresh

MAX_ACCOUNTS = 5_000_000


def parse_accounts(raw: Any) -> int:
    try:
        value = int(str(raw).replace("_", ""))
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_ACCOUNTS:
        raise CommandError(f"--accounts must be an integer between 1 and {MAX_ACCOUNTS:,}; got {raw!r}")
    return value


def parse_seed(raw: Any) -> int:
    try:
        return int(str(raw))
    except ValueError:
        raise CommandError(f"--seed must be an integer; got {raw!r}") from None


def parse_now(raw: Any) -> datetime:
    try:
        value = datetime.fromisoformat(str(raw))
    except ValueError:
        raise CommandError(
            f"--now must be an ISO 8601 datetime such as 2026-06-15T12:00:00+08:00; got {raw!r}"
        ) from None
    return timezone.make_aware(value) if timezone.is_naive(value) else value


def parse_chunk_size(raw: Any) -> int:
    try:
        value = int(str(raw))
    except ValueError:
        value = 0
    if not 100 <= value <= 100_000:
        raise CommandError(f"--chunk-size must be an integer between 100 and 100,000; got {raw!r}")
    return value


def demo_tables() -> list[str]:
    """Everything the demo owns: the accounts app without its rulesets and the borrowers' guidance texts (the
    migrations' rows, and what risk managers wrote), plus the audit log."""
    keep = {RuleSet, Rule, Guidance}
    models = [m for m in apps.get_app_config("accounts").get_models() if m not in keep]
    audit = [apps.get_model("riskops", name)._meta.db_table for name in ("AuditEvent", "AuditCheckpoint")]
    return [m._meta.db_table for m in models] + audit


def reset_demo_data() -> None:
    """Empty the demo tables. CASCADE also empties tables that point at them (appeals); users and rulesets stay."""
    qn = connection.ops.quote_name
    # The audit trail starts afresh with the demo: a maintenance operation (docs/AUDIT.md), for the owner only.
    with audit_maintenance(), connection.cursor() as cur:
        cur.execute(f"TRUNCATE {', '.join(qn(t) for t in demo_tables())} RESTART IDENTITY CASCADE")


class Command(BaseCommand):
    help = "Load deterministic demo borrowers, credit lines and a year of events, then run the risk engine."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--accounts", required=True, help="how many accounts (1 to 5,000,000)")
        parser.add_argument("--seed", default="42", help="random seed; the same seed gives the same rows (42)")
        parser.add_argument(
            "--now", help="ISO datetime the data is generated and evaluated for (default: the current time)"
        )
        parser.add_argument("--no-engine", action="store_true", help="load only; do not run the engine")
        parser.add_argument(
            "--appeals",
            type=int,
            default=0,
            help="after the engine, this many frozen borrowers appeal with demo documents (0 to 1,000; default 0)",
        )
        parser.add_argument(
            "--reset", action="store_true", help="first delete all accounts, events, signals, cases and audit events"
        )
        parser.add_argument(
            "--chunk-size", default=str(demo.DEFAULT_CHUNK_SIZE), help="accounts generated per COPY round"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        accounts = parse_accounts(options["accounts"])
        seed = parse_seed(options["seed"])
        now = parse_now(options["now"]) if options.get("now") else timezone.now()
        chunk_size = parse_chunk_size(options["chunk_size"])
        reset = options["reset"]
        appeals = options["appeals"]
        if not 0 <= appeals <= 1000:
            raise CommandError(f"--appeals must be from 0 to 1,000; got {appeals}")
        verbose = options["verbosity"] >= 1
        started = time.monotonic()

        def progress(done: int) -> None:
            if verbose and accounts > chunk_size:
                self.stdout.write(f"  {done:,} / {accounts:,} accounts ({time.monotonic() - started:.1f} s)")

        with transaction.atomic():
            # The demo writes history into past days: the dashboard's kept days are counted again at the end.
            dashboard_forget()
            if reset:
                reset_demo_data()
            else:
                existing = CreditLine.objects.count()
                if existing:
                    raise CommandError(
                        f"The database already holds {existing:,} credit lines; nothing was loaded. Run again with "
                        "--reset to replace them (this deletes all accounts, events, signals, cases and audit events)."
                    )
            with connection.cursor() as cur:
                # Deferred foreign keys would queue one check per row until commit; checking as rows arrive keeps
                # the server's memory flat at a million accounts.
                cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
            stats = demo.load(
                accounts=accounts, seed=seed, now=now, chunk_size=chunk_size, freeze=reset, on_progress=progress
            )
            demo.sync_sequences()
            demo.analyze()
        loaded = time.monotonic() - started
        if verbose:
            self.stdout.write(
                f"Loaded {stats.accounts:,} accounts and {stats.events:,} events "
                f"(seed {seed}, now {now.isoformat()}) in {loaded:.1f} s"
            )
        if options["no_engine"]:
            self._dashboard(verbose)
            return

        engine_started = time.monotonic()
        result = demo.evaluate(now=now, as_of=stats.as_of)
        engine_seconds = time.monotonic() - engine_started
        fired = {
            (row["code"], row["severity"]): row["n"]
            for row in Signal.objects.filter(fired_at__lte=now).values("code", "severity").annotate(n=Count("id"))
        }
        if verbose:
            parts = []
            for family in demo.FAMILIES:
                high = sum(n for (code, severity), n in fired.items() if code == family and severity != "low")
                low = fired.get((family, "low"), 0)
                parts.append(f"{family} {high:,}" + (f" (+{low:,} reminders)" if low else ""))
            self.stdout.write(
                f"Engine: evaluated {result.evaluated:,} accounts in {engine_seconds:.1f} s; signals fired: "
                + ", ".join(parts)
            )
            self.stdout.write(
                f"Frozen {result.frozen:,}, cut {result.cut:,}, reminded {result.reminded:,}, "
                f"cases opened {result.cases_opened:,}. Total {time.monotonic() - started:.1f} s"
            )
        if appeals:
            from appeals.demo import seed_demo_appeals  # the demo spans both apps: this command is the project's

            self._reviewers(now, verbose)
            made = seed_demo_appeals(appeals, now=now)
            if verbose:
                self.stdout.write(f"Appeals: {made:,} demo borrowers appealed with documents")
        self._dashboard(verbose)

    def _dashboard(self, verbose: bool) -> None:
        started = time.monotonic()
        days = dashboard_refresh()
        if verbose:
            self.stdout.write(f"Dashboard: counted {days} closed days in {time.monotonic() - started:.1f} s")

    def _reviewers(self, now: datetime, verbose: bool) -> None:
        """The appeals' story needs reviewers who were there before it: in development, the demo operators.

        `make run` creates them after seeding; they are created here first (by the same command, which then finds
        them), and as the demo's staff they joined a month before its now. With DEBUG off the operators there are
        review; with no senior reviewer yet, the breaches wait for the aging job to alert the seniors there are then.
        """
        from appeals.demo import seniors_on_duty

        if seniors_on_duty(now) or not settings.DEBUG:
            return
        created_after = timezone.now()
        call_command("create_demo_operators", stdout=StringIO())
        get_user_model().objects.filter(date_joined__gte=created_after).update(date_joined=now - timedelta(days=30))
        if verbose:
            self.stdout.write("Demo operators created to review the appeals (see create_demo_operators)")
