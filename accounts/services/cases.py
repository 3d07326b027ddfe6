"""Every change of cases: open or raise them (the engine), keep their exposure, lock, claim, assign, release, note.

Decisions on cases are in `accounts.services.decisions`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Case, CaseStatus, CreditLine, Note, Signal
from riskops.core.audit import Actor, Change, audit_write
from riskops.core.errors import ConflictError, DomainError, NotAllowed, NotFound
from riskops.core.roles import APPROVE_DECISION, ASSIGN_CASE, DECIDE_CASE, holders, may, operator_id, require
from riskops.core.sql import id_array, id_range

_CASE = Case._meta.db_table


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
        # ON CONFLICT on the partial unique index (one unresolved case per line): not expressible with the ORM.
        cur.execute(
            f"""
            INSERT INTO {_CASE}
                (line_id, status, severity_rank, exposure, opened_at, updated_at, sla_due_at, outcome, version,
                 signal_codes)
            SELECT v.line_id, 'open', v.rank, l.outstanding, %(at)s, %(at)s, %(due)s, '', 1, '{{}}'
            FROM unnest(%(lines)s::bigint[], %(ranks)s::int[]) AS v(line_id, rank)
            JOIN {CreditLine._meta.db_table} l ON l.id = v.line_id
            ON CONFLICT (line_id) WHERE status <> 'resolved' DO NOTHING
            RETURNING id, line_id, severity_rank
            """,  # noqa: S608 - table names from the models, values bound
            {"at": at, "due": at + timedelta(hours=settings.CASE_SLA_HOURS), "lines": line_ids, "ranks": ranks},
        )
        opened = cur.fetchall()
        cur.execute(
            f"""
            WITH v AS (SELECT * FROM unnest(%(lines)s::bigint[], %(ranks)s::int[]) AS v(line_id, rank)),
            old AS (
                SELECT c.id, c.severity_rank, v.rank FROM {_CASE} c JOIN v ON v.line_id = c.line_id
                WHERE c.status <> 'resolved' AND c.severity_rank < v.rank ORDER BY c.id FOR UPDATE OF c
            )
            UPDATE {_CASE} c SET severity_rank = old.rank, updated_at = %(at)s, version = c.version + 1
            FROM old WHERE c.id = old.id
            RETURNING c.id, c.line_id, old.severity_rank, c.severity_rank
            """,  # noqa: S608 - table names from the models, values bound
            {"at": at, "lines": line_ids, "ranks": ranks},
        )
        raised = cur.fetchall()
        signal_ids = [sid for ids in signal_ids_by_line.values() for sid in ids]
        if signal_ids:
            _link_signals(signal_ids)
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


def _link_signals(signal_ids: list[int]) -> None:
    """Link new signals to their line's open case, and keep the case's signal families (the queue's filter)."""
    signal_t = Signal._meta.db_table
    with connection.cursor() as cur:
        # Driven from the signals' side: from the cases' side the planner read every open case when the table had
        # no statistics yet (quadratic over a first pass).
        cur.execute(
            f"""
            UPDATE {signal_t} s
            SET case_id = (SELECT c.id FROM {_CASE} c WHERE c.line_id = s.line_id AND c.status <> 'resolved')
            WHERE s.id = ANY(%(ids)s::bigint[]) AND s.case_id IS NULL
            """,  # noqa: S608 - table names from the models, values bound
            {"ids": id_array(signal_ids)},
        )
        cur.execute(
            f"""
            UPDATE {_CASE} c SET signal_codes = f.codes
            FROM (
                SELECT case_id, array_agg(DISTINCT code ORDER BY code)::varchar(20)[] AS codes
                FROM {signal_t}
                WHERE case_id IN (SELECT case_id FROM {signal_t} WHERE id = ANY(%(ids)s::bigint[]))
                GROUP BY case_id
            ) f
            WHERE c.id = f.case_id AND c.signal_codes IS DISTINCT FROM f.codes
            """,  # noqa: S608 - table names from the models, values bound
            {"ids": id_array(signal_ids)},
        )


def refresh_exposure_cte(locked: str, line_ids: list[int]) -> str:
    """Keep the queue's exposure (outstanding principal) of unresolved cases in step with their lines: a
    data-modifying CTE over `locked`, a relation of (id, outstanding) of lines among `line_ids` the statement has
    locked, with the time `%(at)s`. The batch's range lets the planner hash-join the cases' range scan. Only cases whose exposure changed are touched; the queue order follows through queue_key. The
    engine runs it in the statement that locks a batch (a statement less a batch)."""
    return f"""
        UPDATE {_CASE} c SET exposure = {locked}.outstanding, updated_at = %(at)s, version = c.version + 1
        FROM {locked}
        WHERE c.line_id = {locked}.id AND {id_range("c.line_id", line_ids)} AND c.status <> 'resolved'
          AND c.exposure IS DISTINCT FROM {locked}.outstanding
    """  # noqa: S608 - table names from the models, values bound


def resolve_ctes(line_ids: list[int], *, keep_proposals: bool = False) -> str:
    """A job's unfreeze resolves the lines' unresolved cases in the statement that unfreezes them (`lines._write`):
    CTEs over `l` (the unfrozen lines among `line_ids`), with the outcome `%(outcome)s`; `RESOLVE_AUDIT` is the
    source of their audit events. The batch's range lets the planner read the cases through their line index.
    `keep_proposals`: a case whose proposal waits for a second reviewer stays for them (they reject what no longer
    applies)."""
    proposals = f" AND c.status <> '{CaseStatus.AWAITING_APPROVAL.value}'" if keep_proposals else ""
    return f"""
    c_old AS (
        SELECT c.id, c.status FROM {_CASE} c JOIN l ON c.line_id = l.id
        WHERE {id_range("c.line_id", line_ids)} AND c.status <> 'resolved'{proposals} ORDER BY c.id FOR UPDATE OF c
    ), c AS (
        UPDATE {_CASE} c SET status = 'resolved', outcome = %(outcome)s, resolved_at = %(at)s, updated_at = %(at)s,
            version = c.version + 1
        FROM c_old WHERE c.id = c_old.id
        RETURNING c.id, c.line_id, c_old.status AS status_before
    )"""  # noqa: S608 - table names from the models, values bound


RESOLVE_AUDIT = """
    SELECT 'case.update'::text, 'case'::text, c.id, c.line_id, jsonb_build_object('status', c.status_before),
        '{"status": "resolved"}'::jsonb, %(change_reason)s::text
    FROM c"""


# --- One case at a time: locks, claims, assignment, notes


def case_lock(case_id: int) -> Case:
    """Lock the case's line, then the case, and return the case with its line.

    The engine locks a batch's lines and then their cases; taking them in the same order means a decision and an
    evaluation of the same account wait for each other instead of deadlocking.
    """
    if not CreditLine.objects.select_for_update(of=("self",)).filter(cases__id=case_id).values_list("pk", flat=True):
        raise NotFound(_("Case %(id)s does not exist") % {"id": case_id})
    return Case.objects.select_for_update(of=("self", "line")).select_related("line").get(pk=case_id)


def require_senior_for_escalated(case: Case, actor: Actor) -> None:
    if case.status == CaseStatus.ESCALATED and not may(actor, APPROVE_DECISION):
        raise NotAllowed(_("This case was escalated; a senior reviewer decides it"))


def require_may_work(case: Case, actor: Actor) -> None:
    """A case someone else holds is theirs to work: others claim it first (once their claim is idle), unless they
    may assign cases (a senior reviewer steps in)."""
    if case.assignee_id is not None and case.assignee_id != actor.user_id and not may(actor, ASSIGN_CASE):
        raise NotAllowed(
            _("This case is assigned to %(who)s; claim it when their claim goes idle, or ask a senior reviewer")
            % {"who": case.assignee}
        )


def hold_cap(user_id: int, adding: int = 1) -> None:
    """Refuse to give an operator more than MAX_CASES_PER_OPERATOR unresolved cases (claims and assignments).

    Locks the operator's user row first: two claims for one operator at once count one after the other, so
    together they never pass the cap. Callers hold no lock taken after this one.
    """
    cap = settings.MAX_CASES_PER_OPERATOR
    User = get_user_model()
    list(User.objects.select_for_update().filter(pk=user_id).values_list("pk", flat=True))
    held = Case.objects.filter(assignee_id=user_id).exclude(status=CaseStatus.RESOLVED).count()
    if held + adding > cap:
        who = User.objects.filter(pk=user_id).values_list("username", flat=True).first() or user_id
        raise DomainError(
            _(
                "%(who)s already holds %(held)d unresolved cases; one operator holds at most %(cap)d "
                "(MAX_CASES_PER_OPERATOR). Decide or release some first."
            )
            % {"who": who, "held": held, "cap": cap}
        )


def check_version(case: Case, expected_version: int | None) -> None:
    if expected_version is not None and case.version != expected_version:
        raise ConflictError(
            _(
                "This case changed while you were looking at it (someone else acted, or the engine re-evaluated "
                "it). Review the current state below and decide again."
            )
        )


def case_save(case: Case, actor: Actor, at: datetime, fields: list[str]) -> None:
    """Save a locked case's changed `fields`: every change bumps its version; the assignee's action keeps the claim."""
    case.version += 1
    case.updated_at = at
    if case.assignee_id is not None and case.assignee_id == actor.user_id:
        case.last_activity_at = at
        fields.append("last_activity_at")
    case.save(update_fields=[*fields, "version", "updated_at"])


def case_change(action: str, case: Case, before: dict, after: dict, reason: str = "") -> Change:
    return Change(action, "case", case.pk, case.line_id, before, after, reason)


def _claimable(actor: Actor, at: datetime) -> Q:
    idle_since = at - timedelta(minutes=settings.CASE_CLAIM_IDLE_MINUTES)
    statuses = [CaseStatus.OPEN, CaseStatus.ESCALATED] if may(actor, APPROVE_DECISION) else [CaseStatus.OPEN]
    return Q(status__in=statuses) & (Q(assignee__isnull=True) | Q(last_activity_at__lt=idle_since))


def case_claim_next(*, actor: Actor, queue: Q | None = None) -> Case | None:
    """Claim the highest-priority unassigned case (or one whose claim went idle) for this operator.

    `queue` narrows the choice (the queue's current filter). `SKIP LOCKED`: two operators pressing "next" at once
    never get the same case.
    """
    require(actor, DECIDE_CASE, _("Your role cannot claim cases"))
    at = timezone.now()
    with transaction.atomic():
        candidates = Case.objects.select_for_update(skip_locked=True).filter(_claimable(actor, at))
        if queue is not None:
            candidates = candidates.filter(queue)
        row = candidates.order_by("queue_key", "id").values_list("pk", "line_id", "assignee_id").first()
        if row is None:
            return None
        case_id, line_id, previous = row
        hold_cap(operator_id(actor))
        Case.objects.filter(pk=case_id).update(
            assignee_id=actor.user_id, claimed_at=at, last_activity_at=at, updated_at=at, version=F("version") + 1
        )
        audit_write(
            actor=actor,
            at=at,
            changes=[
                Change(
                    "case.claim", "case", case_id, line_id, {"assignee_id": previous}, {"assignee_id": actor.user_id}
                )
            ],
        )
    return Case.objects.select_related("line").get(pk=case_id)


def case_claim(*, case_id: int, actor: Actor, expected_version: int | None = None) -> Case:
    """Claim one case: it must be unassigned, idle, or already mine."""
    require(actor, DECIDE_CASE, _("Your role cannot claim cases"))
    at = timezone.now()
    with transaction.atomic():
        case = case_lock(case_id)
        if case.is_resolved:
            raise DomainError(_("This case is resolved"))
        require_senior_for_escalated(case, actor)
        if case.assignee_id == actor.user_id:
            return case
        idle_since = at - timedelta(minutes=settings.CASE_CLAIM_IDLE_MINUTES)
        if case.assignee_id is not None and (case.last_activity_at or at) >= idle_since:
            raise ConflictError(_("This case is already claimed by %(who)s") % {"who": case.assignee})
        check_version(case, expected_version)
        hold_cap(operator_id(actor))
        before = {"assignee_id": case.assignee_id}
        case.assignee_id, case.claimed_at, case.last_activity_at = actor.user_id, at, at
        case_save(case, actor, at, ["assignee", "claimed_at"])
        audit_write(
            actor=actor, at=at, changes=[case_change("case.claim", case, before, {"assignee_id": actor.user_id})]
        )
    return case


def cases_assign(*, case_ids: Iterable[int], assignee_id: int | None, actor: Actor, reason: str = "") -> list[int]:
    """Assign (or, with assignee_id None, release) unresolved cases; one audit event per case changed.

    Releasing your own cases needs no special role; anything else needs `assign_case`. Cases that this call may
    not change (resolved, or someone else's for a release of your own) are left alone.
    """
    ids = sorted(set(case_ids))
    if not ids:
        return []
    at = timezone.now()
    own_only = assignee_id is None and not may(actor, ASSIGN_CASE)
    if own_only:
        require(actor, DECIDE_CASE, _("Your role cannot release cases"))
    else:
        require(actor, ASSIGN_CASE, _("Your role cannot assign cases to others"))
    if assignee_id is not None and not operator_may_decide(assignee_id):
        raise DomainError(_("operator %(id)s does not exist, is inactive or cannot decide cases") % {"id": assignee_id})
    with transaction.atomic():
        cases = Case.objects.select_for_update().filter(pk__in=ids).exclude(status=CaseStatus.RESOLVED)
        if assignee_id is None:
            cases = cases.filter(assignee__isnull=False)
        else:
            cases = cases.filter(Q(assignee__isnull=True) | ~Q(assignee_id=assignee_id))
        if own_only:
            cases = cases.filter(assignee_id=actor.user_id)
        rows = list(cases.order_by("pk").values_list("pk", "line_id", "assignee_id"))
        if assignee_id is not None and rows:
            hold_cap(assignee_id, adding=len(rows))
        Case.objects.filter(pk__in=[r[0] for r in rows]).update(
            assignee_id=assignee_id,
            claimed_at=None if assignee_id is None else at,
            last_activity_at=at,
            updated_at=at,
            version=F("version") + 1,
        )
        action = "case.assign" if assignee_id is not None else "case.release"
        audit_write(
            actor=actor,
            at=at,
            changes=[
                Change(action, "case", pk, line_id, {"assignee_id": previous}, {"assignee_id": assignee_id}, reason)
                for pk, line_id, previous in rows
            ],
        )
    return [r[0] for r in rows]


def operator_may_decide(user_id: int) -> bool:
    """Whether this user is an active operator in a role that works cases (who a case can be assigned to)."""
    return get_user_model().objects.filter(holders(DECIDE_CASE), pk=user_id, is_active=True).exists()


def cases_release_idle_claims() -> list[int]:
    """Release claims idle for longer than CASE_CLAIM_IDLE_MINUTES (a periodic task)."""
    at = timezone.now()
    idle_since = at - timedelta(minutes=settings.CASE_CLAIM_IDLE_MINUTES)
    with transaction.atomic():
        rows = list(
            Case.objects.select_for_update(skip_locked=True)
            .exclude(status=CaseStatus.RESOLVED)
            .filter(assignee__isnull=False, last_activity_at__lt=idle_since)
            .order_by("pk")
            .values_list("pk", "line_id", "assignee_id")
        )
        Case.objects.filter(pk__in=[r[0] for r in rows]).update(
            assignee_id=None, claimed_at=None, updated_at=at, version=F("version") + 1
        )
        audit_write(
            actor=Actor.system("claim expiry"),
            at=at,
            changes=[
                Change(
                    "case.release", "case", pk, line_id, {"assignee_id": previous}, {"assignee_id": None}, "claim idle"
                )
                for pk, line_id, previous in rows
            ],
        )
    return [r[0] for r in rows]


def note_add(*, case_id: int, actor: Actor, text: str, idempotency_key: str | None = None) -> Note:
    """Append a note to the case's account (notes are never edited or deleted). A form sent twice with the same
    one-time token (a double click) gets the note the first one added."""
    text = text.strip()
    if not text:
        raise DomainError(_("A note cannot be empty"))
    if len(text) > 5000:
        raise DomainError(_("A note is at most 5,000 characters"))
    require(actor, DECIDE_CASE, _("Your role cannot add notes"))
    at = timezone.now()
    with transaction.atomic():
        case = case_lock(case_id)  # the second click waits here for the first
        if idempotency_key:
            earlier = Note.objects.filter(idempotency_key=idempotency_key).first()
            if earlier is not None:
                return earlier
        note = Note.objects.create(
            line_id=case.line_id,
            case=case,
            author_id=operator_id(actor),
            text=text,
            created_at=at,
            idempotency_key=idempotency_key,
        )
        audit_write(
            actor=actor, at=at, changes=[Change("note.add", "note", note.pk, case.line_id, None, {"case_id": case.pk})]
        )
    return note
