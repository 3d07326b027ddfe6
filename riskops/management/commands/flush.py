"""Django's `flush`, under the audit trail's maintenance procedure.

Emptying every table empties the audit trail too, which its triggers refuse outside maintenance (docs/AUDIT.md).
Only the tables' owner can make maintenance effective, so the runtime role still cannot flush. pytest-django's
transactional tests flush at teardown through this command.
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands import flush

from riskops.core.audit_chain import audit_maintenance


class Command(flush.Command):
    def handle(self, **options: Any) -> None:
        with audit_maintenance(using=options["database"]):
            super().handle(**options)
