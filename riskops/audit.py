"""Writing audit events. Services call these inside their own transaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from riskops.models import ActorKind, AuditEvent


@dataclass(frozen=True)
class Actor:
    """Who or what causes a change: an operator, the engine, a job, a borrower or the system."""

    kind: str
    user: Any = None  # the operator (a User) or None for the engine, jobs and the system
    label: str = ""

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
    def operator(cls, user: Any) -> Actor:
        return cls(ActorKind.OPERATOR, user, user.get_username())

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


def audit_write(*, actor: Actor, at: datetime, changes: Iterable[Change]) -> int:
    """Write one audit event per change in one INSERT; return how many were written."""
    rows = audit_rows(actor=actor, at=at, changes=changes)
    if rows:
        AuditEvent.objects.bulk_create(rows, batch_size=5000)
    return len(rows)


def audit_rows(*, actor: Actor, at: datetime, changes: Iterable[Change]) -> list[AuditEvent]:
    """The unsaved audit events for `changes` (for a service that writes them in a statement of its own)."""
    return [
        AuditEvent(
            at=at,
            actor_kind=actor.kind,
            actor_user_id=actor.user_id,
            actor_label=actor.label[:100],
            action=c.action,
            object_type=c.object_type,
            object_id=c.object_id,
            account_id=c.account_id,
            before=c.before,
            after=c.after,
            reason=c.reason,
        )
        for c in changes
    ]
