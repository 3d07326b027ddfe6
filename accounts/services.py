"""Every state change of lines, signals and cases goes through this module.

Each function locks its rows, changes only what is in the expected state (a conditional UPDATE,
so a second call changes nothing), writes its audit events and line history in the same
transaction, and queues side effects (notifications) for after commit. The functions are
set-based: they take many ids and cost a fixed number of queries whatever their number; the
single-account entry points call them with one id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import (
    LineChange,
    LineStatus,
    NotificationKind,
    Signal,
    SignalStatus,
    Suppression,
)
from accounts.notifications import REASON_ZH, Outgoing, notifications_queue
from riskops.audit import Actor, Change, audit_write


class DomainError(Exception):
    """A change that is not allowed in the current state; the message is shown to the user."""


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


@dataclass(frozen=True)
class LineUpdate:
    line_id: int
    status_before: str
    limit_before: Decimal
    available_before: Decimal
    status_after: str
    limit_after: Decimal
    available_after: Decimal


def _record_line_changes(
    updates: list[LineUpdate],
    *,
    kind: str,
    action: str,
    actor: Actor,
    at: datetime,
    reasons: Mapping[int, str],
    signal_by_line: Mapping[int, int] | None = None,
) -> None:
    signal_by_line = signal_by_line or {}
    LineChange.objects.bulk_create(
        [
            LineChange(
                line_id=u.line_id,
                at=at,
                actor_kind=actor.kind,
                actor_user_id=actor.user_id,
                kind=kind,
                status_before=u.status_before,
                status_after=u.status_after,
                limit_before=u.limit_before,
                limit_after=u.limit_after,
                available_before=u.available_before,
                available_after=u.available_after,
                reason=reasons.get(u.line_id, ""),
                signal_id=signal_by_line.get(u.line_id),
            )
            for u in updates
        ],
        batch_size=5000,
    )
    audit_write(
        actor=actor,
        at=at,
        changes=(
            Change(
                action=action,
                object_type="credit_line",
                object_id=u.line_id,
                account_id=u.line_id,
                before={
                    "status": u.status_before,
                    "limit": _money(u.limit_before),
                    "available": _money(u.available_before),
                },
                after={
                    "status": u.status_after,
                    "limit": _money(u.limit_after),
                    "available": _money(u.available_after),
                },
                reason=reasons.get(u.line_id, ""),
            )
            for u in updates
        ),
    )


def lines_freeze(
    *,
    line_ids: Iterable[int],
    actor: Actor,
    reasons: Mapping[int, str],
    codes: Mapping[int, str] | None = None,
    signal_by_line: Mapping[int, int] | None = None,
    at: datetime | None = None,
) -> list[int]:
    """Freeze the active lines among `line_ids`; lines already frozen or closed are left alone.

    Returns the ids actually frozen. Each gets a history row, an audit event and one freeze
    notification.
    """
    ids = sorted(set(line_ids))
    if not ids:
        return []
    at = at or timezone.now()
    codes = codes or {}
    with transaction.atomic(savepoint=False), connection.cursor() as cur:
        cur.execute(
            """
            WITH old AS (
                SELECT id, status, "limit", available FROM accounts_creditline
                WHERE id = ANY(%s::bigint[]) AND status = 'active' ORDER BY id FOR UPDATE
            )
            UPDATE accounts_creditline l SET status = 'frozen', frozen_since = %s, updated_at = %s
            FROM old WHERE l.id = old.id
            RETURNING l.id, old.status, old."limit", old.available
            """,
            [ids, at, at],
        )
        updates = [LineUpdate(r[0], r[1], r[2], r[3], LineStatus.FROZEN, r[2], r[3]) for r in cur.fetchall()]
        _record_line_changes(
            updates,
            kind="freeze",
            action="line.freeze",
            actor=actor,
            at=at,
            reasons=reasons,
            signal_by_line=signal_by_line,
        )
        notifications_queue(
            [
                Outgoing(
                    u.line_id,
                    NotificationKind.FREEZE,
                    f"freeze:{u.line_id}:{at.isoformat()}",
                    {"reason": REASON_ZH.get(codes.get(u.line_id, ""), "风险核查")},
                )
                for u in updates
            ],
            at=at,
        )
    return [u.line_id for u in updates]


def lines_cut_available(
    *,
    cuts: Mapping[int, Decimal],
    actor: Actor,
    reasons: Mapping[int, str],
    codes: Mapping[int, str] | None = None,
    signal_by_line: Mapping[int, int] | None = None,
    at: datetime | None = None,
) -> list[int]:
    """Cut the available amount of each line by its ratio (0.5 = by half); closed lines are skipped.

    Returns the ids whose available amount changed.
    """
    if not cuts:
        return []
    at = at or timezone.now()
    codes = codes or {}
    ids = sorted(cuts)
    keep = [Decimal(1) - cuts[i] for i in ids]
    if any(k < 0 or k > 1 for k in keep):
        raise DomainError("a cut ratio must be between 0 and 1")
    with transaction.atomic(savepoint=False), connection.cursor() as cur:
        cur.execute(
            """
            WITH v AS (SELECT unnest(%s::bigint[]) AS id, unnest(%s::numeric[]) AS keep),
            old AS (
                SELECT l.id, l.status, l."limit", l.available, v.keep FROM accounts_creditline l
                JOIN v ON v.id = l.id
                WHERE l.status <> 'closed' AND l.available > 0 ORDER BY l.id FOR UPDATE OF l
            )
            UPDATE accounts_creditline l SET available = round(old.available * old.keep, 2), updated_at = %s
            FROM old WHERE l.id = old.id
            RETURNING l.id, old.status, old."limit", old.available, l.available
            """,
            [ids, keep, at],
        )
        updates = [LineUpdate(r[0], r[1], r[2], r[3], r[1], r[2], r[4]) for r in cur.fetchall()]
        _record_line_changes(
            updates,
            kind="cut_available",
            action="line.cut_available",
            actor=actor,
            at=at,
            reasons=reasons,
            signal_by_line=signal_by_line,
        )
        notifications_queue(
            [
                Outgoing(
                    u.line_id,
                    NotificationKind.LIMIT_CUT,
                    f"cut:{u.line_id}:{at.isoformat()}",
                    {
                        "available": f"{u.available_after:,.2f}",
                        "reason": REASON_ZH.get(codes.get(u.line_id, ""), "风险核查"),
                    },
                )
                for u in updates
            ],
            at=at,
        )
    return [u.line_id for u in updates]


def account_freeze(*, line_id: int, actor: Actor, reason: str) -> bool:
    """Freeze one line by hand; returns False when it was not active."""
    if not reason.strip():
        raise DomainError("a reason is required to freeze a line")
    return bool(lines_freeze(line_ids=[line_id], actor=actor, reasons={line_id: reason}))


# --- Signals


@dataclass(frozen=True)
class NewSignal:
    line_id: int
    rule_id: int
    code: str
    severity: str
    action: str
    ruleset_version: int
    evidence: dict


def signals_fire(*, signals: list[NewSignal], actor: Actor, at: datetime) -> list[Signal]:
    """Record fired signals (one INSERT) with their audit events.

    A signal that is already active for the same (line, code, severity) is not duplicated: the
    partial unique index makes a concurrent duplicate fail loudly; evaluate_lines prevents that
    by locking the batch's lines first.
    """
    if not signals:
        return []
    objs = [
        Signal(
            line_id=s.line_id,
            rule_id=s.rule_id,
            code=s.code,
            severity=s.severity,
            action=s.action,
            ruleset_version=s.ruleset_version,
            status=SignalStatus.ACTIVE,
            fired_at=at,
            evidence=s.evidence,
        )
        for s in signals
    ]
    with transaction.atomic(savepoint=False):
        created = Signal.objects.bulk_create(objs, batch_size=5000)
        audit_write(
            actor=actor,
            at=at,
            changes=(
                Change(
                    action="signal.fire",
                    object_type="signal",
                    object_id=s.pk,
                    account_id=s.line_id,
                    after={
                        "code": s.code,
                        "severity": s.severity,
                        "ruleset_version": s.ruleset_version,
                        "values": s.evidence.get("values"),
                    },
                )
                for s in created
            ),
        )
    return created


def signals_clear(*, signal_ids: Iterable[int], actor: Actor, at: datetime, reason: str) -> list[int]:
    """Mark active signals as cleared because their condition no longer holds.

    Clearing never unfreezes a line: a person or a job decides that.
    """
    ids = sorted(set(signal_ids))
    if not ids:
        return []
    with transaction.atomic(savepoint=False), connection.cursor() as cur:
        cur.execute(
            """
            UPDATE accounts_signal SET status = 'cleared', cleared_at = %s
            WHERE id = ANY(%s::bigint[]) AND status = 'active'
            RETURNING id, line_id, code, severity
            """,
            [at, ids],
        )
        rows = cur.fetchall()
        audit_write(
            actor=actor,
            at=at,
            changes=(
                Change(
                    action="signal.clear",
                    object_type="signal",
                    object_id=r[0],
                    account_id=r[1],
                    before={"status": "active", "code": r[2], "severity": r[3]},
                    after={"status": "cleared"},
                    reason=reason,
                )
                for r in rows
            ),
        )
    return [r[0] for r in rows]


def signal_overturn(*, signal_id: int, actor: Actor, reason: str) -> Signal:
    """A person overturns a signal: it stops counting, and the same evidence cannot fire it again.

    The suppression lasts until an event that is not in this signal's evidence qualifies.
    """
    if not reason.strip():
        raise DomainError("a reason is required to overturn a signal")
    at = timezone.now()
    with transaction.atomic():
        signal = Signal.objects.select_for_update().get(pk=signal_id)
        if signal.status != SignalStatus.ACTIVE:
            raise DomainError(f"signal {signal_id} is {signal.status}, not active; nothing to overturn")
        signal.status = SignalStatus.OVERTURNED
        signal.cleared_at = at
        signal.save(update_fields=["status", "cleared_at"])
        Suppression.objects.create(
            line_id=signal.line_id,
            code=signal.code,
            event_ids=evidence_event_keys(signal.evidence),
            signal=signal,
            created_at=at,
            created_by_id=actor.user_id,
            reason=reason,
        )
        audit_write(
            actor=actor,
            at=at,
            changes=[
                Change(
                    action="signal.overturn",
                    object_type="signal",
                    object_id=signal.pk,
                    account_id=signal.line_id,
                    before={"status": "active"},
                    after={"status": "overturned"},
                    reason=reason,
                )
            ],
        )
    return signal


def evidence_event_keys(evidence: dict) -> list[str]:
    """The events a signal cites, as sorted "kind:id" keys (what suppression compares)."""
    events = evidence.get("events", {})
    return sorted(f"{kind}:{eid}" for kind, ids in events.items() for eid in ids)


# --- Cases


def cases_open_or_raise(
    *,
    severity_by_line: Mapping[int, int],
    signal_ids_by_line: Mapping[int, list[int]],
    actor: Actor,
    at: datetime,
    reason: str,
) -> dict[str, list[int]]:
    """Open a case for each flagged line without an open one; raise the severity of open ones.

    Links the given signals to the line's open case. Returns {"opened": [...], "raised": [...]}
    as case ids.
    """
    if not severity_by_line:
        return {"opened": [], "raised": []}
    line_ids = sorted(severity_by_line)
    ranks = [severity_by_line[i] for i in line_ids]
    with transaction.atomic(savepoint=False), connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO accounts_case (line_id, status, severity_rank, opened_at, updated_at, outcome)
            SELECT v.line_id, 'open', v.rank, %s, %s, ''
            FROM unnest(%s::bigint[], %s::int[]) AS v(line_id, rank)
            ON CONFLICT (line_id) WHERE status = 'open' DO NOTHING
            RETURNING id, line_id, severity_rank
            """,
            [at, at, line_ids, ranks],
        )
        opened = cur.fetchall()
        cur.execute(
            """
            WITH v AS (SELECT * FROM unnest(%s::bigint[], %s::int[]) AS v(line_id, rank)),
            old AS (
                SELECT c.id, c.severity_rank, v.rank FROM accounts_case c JOIN v ON v.line_id = c.line_id
                WHERE c.status = 'open' AND c.severity_rank < v.rank ORDER BY c.id FOR UPDATE OF c
            )
            UPDATE accounts_case c SET severity_rank = old.rank, updated_at = %s
            FROM old WHERE c.id = old.id
            RETURNING c.id, c.line_id, old.severity_rank, c.severity_rank
            """,
            [line_ids, ranks, at],
        )
        raised = cur.fetchall()
        signal_ids = [sid for ids in signal_ids_by_line.values() for sid in ids]
        if signal_ids:
            cur.execute(
                """
                UPDATE accounts_signal s
                SET case_id = (SELECT c.id FROM accounts_case c WHERE c.line_id = s.line_id AND c.status = 'open')
                WHERE s.id = ANY(%s::bigint[]) AND s.case_id IS NULL
                """,
                [signal_ids],
            )
        audit_write(
            actor=actor,
            at=at,
            changes=[
                Change("case.open", "case", r[0], r[1], None, {"status": "open", "severity_rank": r[2]}, reason)
                for r in opened
            ]
            + [
                Change("case.update", "case", r[0], r[1], {"severity_rank": r[2]}, {"severity_rank": r[3]}, reason)
                for r in raised
            ],
        )
    return {"opened": [r[0] for r in opened], "raised": [r[0] for r in raised]}
