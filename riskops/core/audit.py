"""Audit events: one row per state change, written by the service in the changing transaction.

Every writer goes through `audit_insert`, so the audit table's columns are named in one place: `audit_write` for a
service that has its changes in Python, and a data-modifying CTE built with `audit_insert` for a set-based
statement that writes them with the change itself (a bulk unfreeze, the appeal intake).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from riskops.core.sql import to_json
from riskops.models import ActorKind, AuditEvent


@dataclass(frozen=True)
class Actor:
    """Who or what causes a change: an operator, the engine, a job, a borrower or the system."""

    kind: str
    user: Any = None  # the operator (a User) or None for the engine, jobs and the system
    label: str = ""
    address: str | None = None  # the client's address when a request causes the change

    @classmethod
    def engine(cls, label: str = "engine") -> Actor:
        return cls(ActorKind.ENGINE, None, label)

    @classmethod
    def job(cls, job_id: int) -> Actor:
        return cls(ActorKind.JOB, None, f"job #{job_id}")

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(ActorKind.SYSTEM, None, label)

    @classmethod
    def borrower(cls, label: str, address: str | None = None) -> Actor:
        return cls(ActorKind.BORROWER, None, label, address)

    @classmethod
    def operator(cls, user: Any, address: str | None = None) -> Actor:
        return cls(ActorKind.OPERATOR, user, user.get_username(), address)

    @property
    def user_id(self) -> int | None:
        return getattr(self.user, "pk", None) if self.user is not None else None


@dataclass(frozen=True)
class Change:
    action: str
    object_type: str
    object_id: int
    account_id: int | None
    before: Any = None
    after: Any = None
    reason: str = ""


def actor_params(actor: Actor, at: datetime) -> dict[str, Any]:
    """The parameters `audit_insert` reads for who and when (and any other insert of the same change)."""
    return {
        "at": at,
        "actor_kind": actor.kind,
        "actor_user": actor.user_id,
        "actor_label": actor.label[:100],
        "actor_address": actor.address[:45] if actor.address else None,
    }


def audit_insert(source: str) -> str:
    """SQL inserting audit events from `source`: SQL returning rows of (action, object_type, object_id, account_id,
    before, after, reason). Who and when are the named parameters of `actor_params`."""
    return f"""
        INSERT INTO {AuditEvent._meta.db_table} (at, actor_kind, actor_user_id, actor_label, client_address, action,
            object_type, object_id, account_id, before, after, reason)
        SELECT %(at)s, %(actor_kind)s, %(actor_user)s::integer, %(actor_label)s, %(actor_address)s::varchar, e.action,
            e.object_type, e.object_id, e.account_id, e.before, e.after, e.reason
        FROM ({source}) AS e(action, object_type, object_id, account_id, before, after, reason)
    """  # noqa: S608 - table names from the models, values bound


# The rows of `audit_json`, read by PostgreSQL (a JSON null becomes an SQL NULL).
AUDIT_JSON_SOURCE = (
    "SELECT * FROM jsonb_to_recordset(%(audit)s::jsonb) AS a(action text, object_type text, object_id bigint,"
    " account_id bigint, before jsonb, after jsonb, reason text)"
)


def audit_json(changes: Iterable[Change]) -> str:
    return to_json(
        [
            {
                "action": c.action,
                "object_type": c.object_type,
                "object_id": c.object_id,
                "account_id": c.account_id,
                "before": c.before,
                "after": c.after,
                "reason": c.reason,
            }
            for c in changes
        ]
    )


def audit_write(*, actor: Actor, at: datetime, changes: Iterable[Change]) -> int:
    """Write one audit event per change in one INSERT; return how many were written."""
    changes = list(changes)
    if not changes:
        return 0
    with connection.cursor() as cur:
        cur.execute(audit_insert(AUDIT_JSON_SOURCE), {**actor_params(actor, at), "audit": audit_json(changes)})
    return len(changes)
