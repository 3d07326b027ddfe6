"""`python manage.py setup_db_roles`: the application's runtime role, least privilege (docs/AUDIT.md).

Run as the owner of the tables (the role `migrate` runs as), after every `migrate`: it grants what the runtime role
needs on the tables there are now. The runtime role is no superuser and owns nothing; it reads and writes the
application's tables, but may only INSERT and SELECT the audit tables (plus the sealer's one-time fill of an event's
chain columns, which the trigger also checks), and cannot create anything in the schema.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from psycopg import sql

from riskops.models import AuditCheckpoint, AuditEvent, AuditVerification

AUDIT_TABLES = tuple(m._meta.db_table for m in (AuditEvent, AuditCheckpoint, AuditVerification))
SEALER_COLUMNS = ("content_hash", "chain_seq", "prev_hash", "chain_hash")
PASSWORD_ENV = "DATABASE_APP_PASSWORD"  # noqa: S105 - the name of a variable, not a password


def grant_statements(role: str, schema: str, database: str) -> list[sql.Composable]:
    r, s, audit = sql.Identifier(role), sql.Identifier(schema), sql.SQL(", ").join(map(sql.Identifier, AUDIT_TABLES))
    return [
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(sql.Identifier(database), r),
        # Before PostgreSQL 15 every role could create tables in `public`: only the owner may.
        sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC").format(s),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(s, r),
        sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(s, r),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}").format(s, r),
        sql.SQL("REVOKE UPDATE, DELETE ON {} FROM {}").format(audit, r),
        sql.SQL("GRANT UPDATE ({}) ON {} TO {}").format(
            sql.SQL(", ").join(map(sql.Identifier, SEALER_COLUMNS)), sql.Identifier(AuditEvent._meta.db_table), r
        ),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(s, r),
    ]


class Command(BaseCommand):
    help = (
        "Create (if missing) the application's runtime database role and grant it least privilege: no superuser, "
        "owns nothing, only INSERT and SELECT on the audit tables. Run as the tables' owner after every migrate."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--role", default="riskops_app", help="the runtime role (default riskops_app)")
        parser.add_argument(
            "--no-create", action="store_true", help="the role exists already (made by a DBA): only grant"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        role = options["role"]
        password = os.environ.get(PASSWORD_ENV) or None
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("SELECT current_database(), current_schema(), current_user")
            database, schema, owner = cur.fetchone()
            if role == owner:
                raise CommandError(f"The runtime role must not be the owner ({owner}) that runs this command")
            cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [role])
            row = cur.fetchone()
            if row is None:
                if options["no_create"]:
                    raise CommandError(f"The role {role} does not exist")
                cur.execute(
                    sql.SQL(
                        "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
                    ).format(sql.Identifier(role))
                )
            elif row[0]:
                raise CommandError(f"The role {role} is a superuser; the runtime role must not be")
            else:
                cur.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", [role, owner])
                if cur.fetchone()[0]:
                    raise CommandError(
                        f"The role {role} is a member of the owner {owner}; the runtime role must not be"
                    )
            if password is not None:
                cur.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
            for statement in grant_statements(role, schema, database):
                cur.execute(statement)
        self.stdout.write(f"Runtime role {role}: granted on {database}.{schema}; audit tables insert and select only.")
