"""`python manage.py verify_audit`: walk the audit chain, name the first event that does not match."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from riskops.core.audit_chain import audit_verify, os_user


class Command(BaseCommand):
    help = (
        "Seal the audit events not chained yet, then check every checkpoint's signature and walk the chain (content "
        "hashes, links, checkpoints) in bounded memory. Records the verification; exits 1 at the first mismatch."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--by", default="", help="who verifies (recorded; default: the operating-system user)")
        parser.add_argument("--no-seal", action="store_true", help="check only what is sealed; seal nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        by = options["by"] or os_user()
        verification = audit_verify(by=by, seal=not options["no_seal"])
        if not verification.ok:
            raise CommandError(
                f"Audit chain broken after {verification.events_checked} good events: {verification.problem}"
            )
        self.stdout.write(
            f"Audit chain intact: {verification.events_checked} events, "
            f"{verification.checkpoints_checked} checkpoints checked (verification #{verification.pk})."
        )
