"""Every change of signals: fire, clear, overturn (with the suppression that keeps the same evidence quiet)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import (
    ClearCause,
    ExternalIncomeRecord,
    Installment,
    ProfileUpdate,
    Signal,
    SignalStatus,
    Suppression,
)
from riskops.core.audit import Actor, Change, actor_params, audit_insert, audit_write
from riskops.core.errors import DomainError


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


# Clearing records whether the borrower's own action did it (ClearCause): an OVERDUE signal whose installments are
# all paid now (a repayment), a PROFILE_STALE signal with a profile update since the record it cites.
_CLEAR = f"""
    UPDATE {Signal._meta.db_table} s SET status = '{SignalStatus.CLEARED.value}', cleared_at = %(at)s,
        clear_cause = CASE
            WHEN s.code = 'OVERDUE' AND NOT EXISTS (
                SELECT 1 FROM {Installment._meta.db_table} i
                WHERE i.id IN (SELECT jsonb_array_elements_text(s.evidence -> 'events' -> 'installment')::bigint)
                  AND i.paid_at IS NULL
            ) THEN '{ClearCause.REPAYMENT.value}'
            WHEN s.code = 'PROFILE_STALE' AND EXISTS (
                SELECT 1 FROM {ProfileUpdate._meta.db_table} u
                WHERE u.line_id = s.line_id AND u.occurred_at >= (
                    SELECT max(r.occurred_at) FROM {ExternalIncomeRecord._meta.db_table} r
                    WHERE r.id IN (SELECT jsonb_array_elements_text(s.evidence -> 'events' -> 'income_record')::bigint))
            ) THEN '{ClearCause.PROFILE_UPDATE.value}'
            ELSE '' END
    WHERE s.id = ANY(%(ids)s::bigint[])
"""  # noqa: S608 - table names from the models, values bound


def signals_clear(*, signal_ids: Iterable[int], actor: Actor, at: datetime, reason: str) -> list[int]:
    """Mark active signals as cleared because their condition no longer holds, with the borrower's action that did
    it where there was one (`clear_cause`).

    Clearing never unfreezes a line: a person or a job decides that. A cut may be given back (the engine's
    `restore on clear`, `lines_restore_available(after_clear=True)`).
    """
    ids = sorted(set(signal_ids))
    if not ids:
        return []
    with transaction.atomic(savepoint=False):
        rows = list(
            Signal.objects.select_for_update()
            .filter(pk__in=ids, status=SignalStatus.ACTIVE)
            .order_by("pk")
            .values_list("pk", "line_id", "code", "severity")
        )
        with connection.cursor() as cur:
            cur.execute(_CLEAR, {"ids": [r[0] for r in rows], "at": at})
        audit_write(
            actor=actor,
            at=at,
            changes=(
                Change(
                    action="signal.clear",
                    object_type="signal",
                    object_id=pk,
                    account_id=line_id,
                    before={"status": "active", "code": code, "severity": severity},
                    after={"status": "cleared"},
                    reason=reason,
                )
                for pk, line_id, code, severity in rows
            ),
        )
    return [r[0] for r in rows]


def evidence_event_keys(evidence: dict) -> list[str]:
    """The events a signal cites, as sorted "kind:id" keys: what a suppression records and the engine compares.

    `EVENT_KEYS_SQL` is the same in SQL, for the statement that overturns many signals at once (a bulk unfreeze
    would otherwise read every signal's evidence into Python and send the keys back); a test pins the two together.
    """
    events = evidence.get("events", {})
    return sorted(f"{kind}:{eid}" for kind, ids in events.items() for eid in ids)


# evidence_event_keys in SQL, over a signal's `evidence` column (sorted as Python sorts str: by code point).
EVENT_KEYS_SQL = """COALESCE((
    SELECT jsonb_agg(k ORDER BY k COLLATE "C")
    FROM (SELECT e.key || ':' || v AS k
          FROM jsonb_each({evidence} -> 'events') e, jsonb_array_elements_text(e.value) v) keys
), '[]'::jsonb)"""


def overturn_ctes(which: str, joined: str = "") -> str:
    """Overturning, as CTEs of a statement that may also unfreeze the signals' lines (`accounts.services.lines`):
    the active signals `which` selects (a condition on `s`, and on the relation `joined` names) become overturned,
    each with a suppression of the events it cites, by `%(actor_user)s` for `%(change_reason)s`; `OVERTURN_AUDIT` is
    the source of their audit events."""
    return f"""
    s AS (
        UPDATE {Signal._meta.db_table} s SET status = '{SignalStatus.OVERTURNED.value}', cleared_at = %(at)s
        {f"FROM {joined}" if joined else ""} WHERE {which} AND s.status = '{SignalStatus.ACTIVE.value}'
        RETURNING s.id, s.line_id, s.code, s.evidence
    ), suppressions AS (
        INSERT INTO {Suppression._meta.db_table} (line_id, code, event_ids, signal_id, created_at, created_by_id,
            reason)
        SELECT s.line_id, s.code, {EVENT_KEYS_SQL.format(evidence="s.evidence")}, s.id, %(at)s,
            %(actor_user)s::integer, %(change_reason)s
        FROM s
    )"""  # noqa: S608 - table names from the models, values bound


OVERTURN_AUDIT = """
    SELECT 'signal.overturn'::text, 'signal'::text, s.id, s.line_id, '{"status": "active"}'::jsonb,
        '{"status": "overturned"}'::jsonb, %(change_reason)s::text
    FROM s"""


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
        with connection.cursor() as cur:
            cur.execute(
                f"WITH {overturn_ctes('s.id = %(signal)s')}, audit AS ({audit_insert(OVERTURN_AUDIT)}) SELECT 1",
                {**actor_params(actor, at), "signal": signal.pk, "change_reason": reason},
            )
        signal.refresh_from_db()
    return signal
