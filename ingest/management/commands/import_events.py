"""python manage.py import_events FILE [--kind KIND] [--dry-run] [--all-or-nothing] [--backfill] [--report CSV]

Imports a CSV or JSON-lines file through the same validation and storage as the events API, in chunks of
5,000 rows, each chunk its own ingestion batch. Resumable: a re-run after a crash stores only what is missing
(events are idempotent by upstream id, accounts are updated to what they already are).
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ingest.files import CHUNK, FileError, chunks, file_format, kind_of_file
from ingest.models import BatchMode, BatchSource
from ingest.parsing import KINDS
from ingest.services import events_ingest
from riskops.core.audit import Actor


class Command(BaseCommand):
    help = "Import borrowers, lines and events from a CSV or JSON-lines file (docs/IMPORT.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="a .csv (header row of field names) or .jsonl file")
        parser.add_argument("--kind", choices=list(KINDS), help="the kind of every row of a CSV without a kind column")
        parser.add_argument("--dry-run", action="store_true", help="validate only, against the database too")
        parser.add_argument(
            "--all-or-nothing", action="store_true", help="check the whole file first; import only if it has no error"
        )
        parser.add_argument("--backfill", action="store_true", help="store without the engine reacting")
        parser.add_argument("--report", help="write the errors to this CSV file (line, field, message)")
        parser.add_argument("--chunk", type=int, default=CHUNK, help=f"rows per batch (default {CHUNK})")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        if not 1 <= options["chunk"] <= 10_000:
            raise CommandError("--chunk must be from 1 to 10000")
        try:
            fmt = file_format(path.name)
        except FileError as exc:
            raise CommandError(str(exc)) from None
        actor = Actor.system(f"import_events {path.name}")
        if options["all_or_nothing"] and not options["dry_run"]:
            errors = self._run(path, fmt, options, actor, BatchMode.DRY_RUN, quiet=True)
            if errors:
                self._report(options, errors)
                raise CommandError(f"{len(errors)} errors; nothing was imported (--all-or-nothing)")
        mode = BatchMode.DRY_RUN if options["dry_run"] else BatchMode.PARTIAL
        errors = self._run(path, fmt, options, actor, mode, quiet=False)
        self._report(options, errors)
        if errors:
            raise CommandError(f"{len(errors)} rows have errors" + (" (dry run)" if options["dry_run"] else ""))

    def _run(self, path: Path, fmt: str, options: dict[str, Any], actor: Actor, mode: str, *, quiet: bool) -> list:
        errors: list[dict[str, Any]] = []
        totals = {"rows": 0, "stored": 0, "duplicate": 0, "failed": 0}
        started = time.monotonic()
        try:
            with path.open("rb") as stream:
                kind = options["kind"] or kind_of_file(path.name)
                for first, items in chunks(stream, fmt, kind=kind, size=options["chunk"]):
                    batch = events_ingest(
                        items=items,
                        actor=actor,
                        mode=mode,
                        backfill=options["backfill"],
                        source=BatchSource.FILE,
                        file_name=path.name,
                        first_index=first,
                    )
                    errors.extend(batch.errors)
                    totals["rows"] += len(items)
                    for what in ("stored", "duplicate", "failed"):
                        totals[what] += sum(c[what] for c in batch.counts.values())
                    if not quiet:
                        rate = totals["rows"] / max(time.monotonic() - started, 1e-6)
                        self.stdout.write(
                            f"{path.name}: {totals['rows']:,} rows ({rate:,.0f}/s): {totals['stored']:,} stored, "
                            f"{totals['duplicate']:,} already there, {totals['failed']:,} with errors "
                            f"(batch #{batch.pk})"
                        )
        except FileError as exc:
            raise CommandError(f"{path.name}: {exc}") from None
        return errors

    def _report(self, options: dict[str, Any], errors: list[dict[str, Any]]) -> None:
        for e in errors[:20]:
            self.stderr.write(f"line {e['index']}: {e['field'] or '(row)'}: {e['message']}")
        if len(errors) > 20:
            self.stderr.write(f"... and {len(errors) - 20} more" + ("" if options["report"] else " (--report FILE)"))
        if options["report"]:
            with open(options["report"], "w", newline="", encoding="utf-8") as out:
                writer = csv.writer(out)
                writer.writerow(["line", "field", "message"])
                writer.writerows([e["index"], e["field"], e["message"]] for e in errors)
            self.stderr.write(f"error report: {options['report']}")
        sys.stdout.flush()
