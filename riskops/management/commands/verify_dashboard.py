"""`python manage.py verify_dashboard`: every figure the dashboard shows equals a direct count over the base tables."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts.figures import MAX_FIGURE_DAYS
from riskops.dashboard.selectors import counted_days, dashboard_drift


class Command(BaseCommand):
    help = (
        "Compare the dashboard's daily figures (kept closed days, and today) with the same figures counted from the "
        "base tables, over the last --days days. Exits 1 and names the differences when any figure differs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", default="90", help=f"how many days back, today included (1 to {MAX_FIGURE_DAYS})")

    def handle(self, *args: Any, **options: Any) -> None:
        raw = str(options["days"]).strip()
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_FIGURE_DAYS:
            raise CommandError(f"--days must be a whole number from 1 to {MAX_FIGURE_DAYS}; got {raw[:20]!r}")
        end = timezone.localdate()
        start = end - timedelta(days=int(raw) - 1)
        compared, drifts = dashboard_drift(start, end)
        kept = len(counted_days(start, end))
        if drifts:
            lines = [
                f"  {d.day} {d.figure} {d.key or '-'}: dashboard {d.shown}, tables {d.direct}" for d in drifts[:20]
            ]
            more = f"\n  ... and {len(drifts) - 20} more" if len(drifts) > 20 else ""
            raise CommandError(
                f"{len(drifts)} of {compared} dashboard figures differ from the base tables "
                f"({start} to {end}; refresh with the dashboard-refresh task):\n" + "\n".join(lines) + more
            )
        self.stdout.write(
            f"Dashboard figures match the base tables: {compared} figures over {int(raw)} days "
            f"({start} to {end}; {kept} closed days read from the daily figures, the rest counted now)."
        )
