"""Every state change of appeals: intake, more information, decisions, SLA aging.

What an appeal does to the line goes through `accounts.services.case_decide` and `decision_review`, so the
four-eyes rules, the version checks and the suppression of overturned signals are exactly those of case review.
Each function locks the line, then the case, then the appeal (the engine's order), writes its audit events in
the same transaction and queues the borrower's message in the outbox.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import (
    Case,
    CaseStatus,
    CreditLine,
    Decision,
    DecisionKind,
    DecisionStatus,
    LineStatus,
    NotificationKind,
    ReasonCode,
    Signal,
    SignalStatus,
)
from accounts.notifications import Outgoing, notification_rows, notifications_queue, notifications_send_after_commit
from accounts.services import (
    ConflictError,
    DomainError,
    NotAllowed,
    case_decide,
    case_lock,
    require_senior_for_escalated,
)
from appeals import replies
from appeals.documents import CheckedDocument, DocumentRejected, check_documents, store
from appeals.links import more_info_link
from appeals.models import (
    CLOCK_STATES,
    OPEN_STATES,
    Appeal,
    AppealAlert,
    AppealDocument,
    AppealPriority,
    AppealReason,
    AppealRuleOutcome,
    AppealStatus,
    RuleOutcome,
)
from riskops.audit import Actor, Change, audit_rows, audit_write
from riskops.prepared import execute_prepared
from riskops.roles import RISK_MANAGER, SENIOR_REVIEWER
from riskops.rows import rows_json, rows_sql

logger = logging.getLogger(__name__)

STATEMENT_MAX = 2000
REPLY_MAX = 500  # it goes out as an SMS
MAX_DOCUMENTS_PER_APPEAL = 15  # the first five and two rounds of more information

# The case-review reason an appeal's reason becomes when it is approved.
REASON_CODES: dict[str, str] = {
    AppealReason.REPAID: ReasonCode.REPAID,
    AppealReason.LOANS_CLOSED: ReasonCode.LOANS_CLOSED,
    AppealReason.INCOME_PROOF: ReasonCode.INCOME_VERIFIED,
    AppealReason.TRANSFER_EXPLAINED: ReasonCode.TRANSFER_EXPLAINED,
    AppealReason.PROFILE_UPDATED: ReasonCode.PROFILE_UPDATED,
    AppealReason.OTHER: ReasonCode.OTHER,
}


@dataclass(frozen=True)
class SubmitOutcome:
    appeal: Appeal
    replayed: bool = False
    # The documents just written (None on a replay), so the caller need not read them back.
    documents: list[AppealDocument] | None = None


def documents_root() -> Path:
    return Path(settings.APPEAL_DOCUMENTS_DIR)


def _priority(due: datetime, now: datetime) -> int:
    if due < now:
        return AppealPriority.BREACHED
    if due < now + timedelta(hours=settings.APPEAL_DUE_SOON_HOURS):
        return AppealPriority.DUE_SOON
    return AppealPriority.NORMAL


def _checked(files: list[tuple[str, bytes]]) -> list[CheckedDocument]:
    try:
        return check_documents(files)
    except DocumentRejected as exc:
        raise DomainError(str(exc)) from None


def _fingerprint(account: str, reason: str, statement: str, docs: list[CheckedDocument]) -> str:
    h = hashlib.sha256()
    for part in (account, reason, statement, *(d.sha256 for d in docs)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


class _StoredFiles:
    """Files written inside a transaction; removed again if the transaction does not commit."""

    def __init__(self) -> None:
        self.paths: list[Path] = []

    def write(self, appeal_id: int, docs: list[CheckedDocument], at: datetime, round_no: int) -> list[AppealDocument]:
        """Write the files; returns their rows, unsaved."""
        rows = []
        for doc in docs:
            name = store(doc, documents_root())
            self.paths.append(documents_root() / name)
            rows.append(
                AppealDocument(
                    appeal_id=appeal_id,
                    stored_name=name,
                    original_name=doc.original_name,
                    content_type=doc.content_type,
                    size=doc.size,
                    sha256=doc.sha256,
                    uploaded_at=at,
                    round=round_no,
                )
            )
        return rows

    def add(self, appeal: Appeal, docs: list[CheckedDocument], at: datetime, round_no: int) -> list[AppealDocument]:
        rows = self.write(appeal.pk, docs, at, round_no)
        AppealDocument.objects.bulk_create(rows)
        return rows

    def discard(self) -> None:
        for path in self.paths:
            path.unlink(missing_ok=True)


def _set_case_marker(case_id: int, state: str, due: datetime | None) -> None:
    Case.objects.filter(pk=case_id).update(appeal_state=state, appeal_due_at=due)


def appeal_submit(
    *,
    account_no: str = "",
    line_id: int | None = None,
    reason: str,
    statement: str,
    files: list[tuple[str, bytes]],
    channel: str,
    actor: Actor,
    idempotency_key: str = "",
) -> SubmitOutcome:
    """A borrower's appeal against the freeze of their line, with 0-5 documents checked by their content.

    Refused with a clear message, storing nothing (no row, no file): a bad reason, statement or document, an
    unknown, closed or unfrozen account, an account without an open case, a case that already has an open
    appeal. With an `idempotency_key`, a retried request returns the appeal the first one created.
    """
    if reason not in AppealReason.values:
        raise DomainError(
            _("Choose a reason for the appeal (one of: %(reasons)s)") % {"reasons": ", ".join(AppealReason.values)}
        )
    statement = (statement or "").strip()
    if not statement:
        raise DomainError(_("Write a statement: what happened, and why the freeze should be lifted"))
    if len(statement) > STATEMENT_MAX:
        raise DomainError(_("The statement is too long (at most %(max)d characters)") % {"max": STATEMENT_MAX})
    if len(idempotency_key) > 100 or not idempotency_key.isprintable():
        raise DomainError(_("The Idempotency-Key must be at most 100 printable characters"))
    docs = _checked(files)
    key = f"{actor.user_id or actor.kind}:{idempotency_key}" if idempotency_key else None
    fingerprint = _fingerprint(account_no or str(line_id), reason, statement, docs)
    at = timezone.now()
    stored = _StoredFiles()
    try:
        with transaction.atomic():
            target = _intake_target(account_no, line_id, key)
            if target is not None:
                written = _intake_write(
                    target,
                    reason=reason,
                    statement=statement,
                    channel=channel,
                    actor=actor,
                    key=key,
                    fingerprint=fingerprint,
                    at=at,
                    docs=docs,
                    stored=stored,
                )
                if written is not None:
                    return written
                stored.discard()  # another request won a unique index meanwhile: say which below
            return _intake_refused(account_no, line_id, key, fingerprint)
    except BaseException:
        stored.discard()
        raise


@dataclass(frozen=True)
class _IntakeTarget:
    line_id: int
    account_no: str
    case_id: int
    appeal_id: int  # reserved from the appeal sequence


def _intake_target(account_no: str, line_id: int | None, key: str | None) -> _IntakeTarget | None:
    """Lock the frozen line and its open case, in one statement, when an appeal may be taken for them.

    None when it may not (unknown, closed or unfrozen account, no open case, an open appeal, a used
    Idempotency-Key): `_intake_refused` then says why. The checks of appeals are repeated by the unique indexes
    the insert meets, which settle a race with a concurrent request.
    """
    line_t, case_t, appeal_t = CreditLine._meta.db_table, Case._meta.db_table, Appeal._meta.db_table
    with connection.cursor() as cur:
        execute_prepared(
            cur,
            f"appeal_intake_target_{'account' if account_no else 'line'}",
            f"""
            SELECT l.id, l.account_no, c.id, nextval(pg_get_serial_sequence('{appeal_t}', 'id'))
            FROM {line_t} l JOIN {case_t} c ON c.line_id = l.id AND c.status <> %s
            WHERE {"l.account_no" if account_no else "l.id"} = %s AND l.status = %s
              AND NOT EXISTS (SELECT 1 FROM {appeal_t} a WHERE a.case_id = c.id AND a.status = ANY(%s))
              AND NOT EXISTS (SELECT 1 FROM {appeal_t} a WHERE a.idempotency_key = %s)
            FOR UPDATE OF l, c
            """,
            [
                CaseStatus.RESOLVED.value,
                account_no or (line_id or 0),
                LineStatus.FROZEN.value,
                [s.value for s in OPEN_STATES],
                key,
            ],
        )
        row = cur.fetchone()
    return None if row is None else _IntakeTarget(*row)


def _intake_write(
    target: _IntakeTarget,
    *,
    reason: str,
    statement: str,
    channel: str,
    actor: Actor,
    key: str | None,
    fingerprint: str,
    at: datetime,
    docs: list[CheckedDocument],
    stored: _StoredFiles,
) -> SubmitOutcome | None:
    """Write the appeal, its documents, the case's appeal marker, the audit event and the borrower's
    confirmation in one statement (the intake is the API's busiest path). None if a unique index refused the
    appeal, in which case nothing was written."""
    due = at + timedelta(hours=settings.APPEAL_SLA_HOURS)
    appeal = Appeal(
        id=target.appeal_id,
        case_id=target.case_id,
        line_id=target.line_id,
        reason=reason,
        statement=statement,
        channel=channel,
        submitted_at=at,
        updated_at=at,
        sla_due_at=due,
        priority=_priority(due, at),
        idempotency_key=key,
        request_fingerprint=fingerprint,
    )
    documents = stored.write(appeal.pk, docs, at, 0)
    events = audit_rows(
        actor=actor,
        at=at,
        changes=[
            Change(
                "appeal.submit",
                "appeal",
                appeal.pk,
                target.line_id,
                None,
                {"reason": reason, "channel": channel, "documents": len(docs), "case_id": target.case_id},
            )
        ],
    )
    messages = notification_rows(
        [
            Outgoing(
                target.line_id,
                NotificationKind.APPEAL_RECEIVED,
                f"appeal_received:{appeal.pk}",
                {"appeal": appeal.pk, "hours": settings.APPEAL_SLA_HOURS},
            )
        ],
        at=at,
    )
    parts: list[str] = []
    params: list[Any] = []
    table, columns, rows = rows_sql([appeal])
    parts.append(
        f"a AS (INSERT INTO {table} ({columns}) SELECT {columns} FROM {rows} ON CONFLICT DO NOTHING RETURNING id)"
    )
    params.append(rows_json([appeal]))
    if documents:
        table, columns, rows = rows_sql(documents)
        parts.append(
            f"d AS (INSERT INTO {table} ({columns}) SELECT {columns} FROM {rows}"
            " WHERE EXISTS (SELECT FROM a) RETURNING id, stored_name)"
        )
        params.append(rows_json(documents))
    parts.append(
        f"c AS (UPDATE {Case._meta.db_table} SET appeal_state = %s, appeal_due_at = %s"
        " WHERE id = %s AND EXISTS (SELECT FROM a))"
    )
    params += [AppealStatus.OPEN.value, due, target.case_id]
    for name, instances, conflict in (("e", events, ""), ("n", messages, " ON CONFLICT DO NOTHING")):
        table, columns, rows = rows_sql(instances)
        parts.append(
            f"{name} AS (INSERT INTO {table} ({columns}) SELECT {columns} FROM {rows}"
            f" WHERE EXISTS (SELECT FROM a){conflict})"
        )
        params.append(rows_json(instances))
    ids = "(SELECT json_object_agg(stored_name, id) FROM d)" if documents else "NULL"
    with connection.cursor() as cur:
        execute_prepared(
            cur,
            f"appeal_intake_write_{len(documents)}",
            f"WITH {', '.join(parts)} SELECT (SELECT id FROM a), {ids}",
            params,
        )
        appeal_id, document_ids = cur.fetchone()
    if appeal_id is None:
        return None
    for document in documents:
        document.pk = document_ids[document.stored_name]
    for row in (appeal, *documents):
        row._state.adding, row._state.db = False, connection.alias  # saved rows, as if the ORM had written them
    # Only the line's id and number are loaded (what the API's answer shows).
    appeal.line = CreditLine(pk=target.line_id, account_no=target.account_no)
    notifications_send_after_commit()
    return SubmitOutcome(appeal, documents=documents)


def _intake_refused(account_no: str, line_id: int | None, key: str | None, fingerprint: str) -> SubmitOutcome:
    """Why an appeal cannot be taken, in the borrower's words; or the appeal a retried request created."""
    lines = CreditLine.objects.select_for_update()
    line = (lines.filter(account_no=account_no) if account_no else lines.filter(pk=line_id or 0)).first()
    if line is None:
        raise DomainError(_("No account with this reference"))
    if key is not None:
        # Read under the line's lock: a retry racing the first request waits, then finds its appeal.
        replay = Appeal.objects.filter(idempotency_key=key).first()
        if replay is not None:
            if replay.request_fingerprint != fingerprint:
                raise ConflictError(_("This Idempotency-Key was already used for a different appeal"))
            return SubmitOutcome(replay, replayed=True)
    if line.status == LineStatus.CLOSED:
        raise DomainError(_("This account is closed; it cannot be appealed"))
    if line.status != LineStatus.FROZEN:
        raise DomainError(_("This account is not frozen; there is nothing to appeal"))
    case = Case.objects.select_for_update().filter(line=line).exclude(status=CaseStatus.RESOLVED).first()
    if case is None:
        raise DomainError(
            _("No review of this account is open, so it cannot be appealed now; please contact customer service")
        )
    existing = Appeal.objects.filter(case=case, status__in=OPEN_STATES).values_list("pk", flat=True).first()
    if existing is not None:
        raise ConflictError(
            _("An appeal for this account (no. %(id)s) is already being reviewed; we will reply to it")
            % {"id": existing}
        )
    raise ConflictError(_("The account changed while the appeal was being taken; please send it again"))


def _lock_appeal(appeal_id: int) -> tuple[Case, Appeal]:
    case_id = Appeal.objects.filter(pk=appeal_id).values_list("case_id", flat=True).first()
    if case_id is None:
        raise DomainError(_("Appeal %(id)s does not exist") % {"id": appeal_id})
    case = case_lock(case_id)
    return case, Appeal.objects.select_for_update().get(pk=appeal_id)


def appeal_add_documents(*, appeal_id: int, files: list[tuple[str, bytes]], note: str, actor: Actor) -> Appeal:
    """The borrower answers a request for more information; the appeal goes back to review, the clock resumes."""
    note = (note or "").strip()
    if len(note) > STATEMENT_MAX:
        raise DomainError(_("The statement is too long (at most %(max)d characters)") % {"max": STATEMENT_MAX})
    if not files and not note:
        raise DomainError(_("Add at least one document or a few words"))
    docs = _checked(files)
    at = timezone.now()
    stored = _StoredFiles()
    try:
        with transaction.atomic():
            case, appeal = _lock_appeal(appeal_id)
            if appeal.status != AppealStatus.AWAITING_INFO:
                raise ConflictError(_("This appeal is not waiting for more information"))
            rounds = list(appeal.documents.values_list("round", flat=True))
            if len(rounds) + len(docs) > MAX_DOCUMENTS_PER_APPEAL:
                raise DomainError(
                    _("An appeal holds at most %(max)d documents; it has %(n)d")
                    % {"max": MAX_DOCUMENTS_PER_APPEAL, "n": len(rounds)}
                )
            stored.add(appeal, docs, at, max(rounds, default=0) + 1)
            assert appeal.sla_paused_at is not None
            paused_for = at - appeal.sla_paused_at
            appeal.sla_due_at += paused_for
            appeal.sla_paused_at = None
            appeal.priority = _priority(appeal.sla_due_at, at)
            appeal.status = AppealStatus.OPEN
            appeal.info_reply = note
            appeal.version += 1
            appeal.updated_at = at
            appeal.save()
            _set_case_marker(case.pk, AppealStatus.OPEN, appeal.sla_due_at)
            audit_write(
                actor=actor,
                at=at,
                changes=[
                    Change(
                        "appeal.more_info_received",
                        "appeal",
                        appeal.pk,
                        appeal.line_id,
                        {"status": AppealStatus.AWAITING_INFO},
                        {
                            "status": AppealStatus.OPEN,
                            "documents": len(docs),
                            "sla_paused_seconds": int(paused_for.total_seconds()),
                        },
                    )
                ],
            )
    except BaseException:
        stored.discard()
        raise
    return appeal


def appeal_decide(
    *,
    appeal_id: int,
    actor: Actor,
    outcome: str,
    reply: str,
    new_limit: Decimal | None = None,
    expected_version: int | None,
) -> Appeal:
    """Approve (unfreeze at the full limit), approve in part (a lower limit), reject, or ask for more information.

    Approving and rejecting go through `case_decide`: an unfreeze that needs four eyes becomes a proposal and the
    appeal waits for it (`appeal_follow_review`). The reply goes to the borrower when the outcome is final.
    """
    if not (actor.user is not None and actor.user.is_active and actor.user.has_perm("accounts.decide_case")):
        raise NotAllowed(_("Your role cannot decide appeals"))
    if outcome not in replies.OUTCOMES:
        raise DomainError(_("unknown appeal outcome %(outcome)r") % {"outcome": outcome})
    reply = (reply or "").strip()
    if not reply:
        raise DomainError(_("Write the reply the borrower will read"))
    if len(reply) > REPLY_MAX:
        raise DomainError(
            _("The reply is too long for a text message (at most %(max)d characters)") % {"max": REPLY_MAX}
        )
    at = timezone.now()
    with transaction.atomic():
        case, appeal = _lock_appeal(appeal_id)
        if appeal.status != AppealStatus.OPEN:
            if appeal.status == AppealStatus.AWAITING_APPROVAL:
                raise ConflictError(_("This appeal's decision is waiting for a second reviewer"))
            if appeal.status == AppealStatus.AWAITING_INFO:
                raise ConflictError(_("This appeal is waiting for the borrower's documents"))
            raise ConflictError(
                _("This appeal was already decided: %(status)s") % {"status": appeal.get_status_display()}
            )
        if expected_version is not None and appeal.version != expected_version:
            raise ConflictError(_("This appeal changed while you were looking at it; review it again and decide"))
        before = {"status": appeal.status}
        line = case.line
        token = f"appeal:{appeal.pk}:{appeal.version}"
        if outcome == replies.REQUEST_INFO:
            require_senior_for_escalated(case, actor)
            appeal.status = AppealStatus.AWAITING_INFO
            appeal.info_request = reply
            appeal.sla_paused_at = at
            _set_case_marker(case.pk, AppealStatus.AWAITING_INFO, appeal.sla_due_at)
            notifications_queue(
                [
                    Outgoing(
                        line.pk,
                        NotificationKind.APPEAL_MORE_INFO,
                        f"appeal_info:{appeal.pk}:{appeal.version}",
                        {"appeal": appeal.pk, "question": reply, "link": more_info_link(appeal.pk)},
                    )
                ],
                at=at,
            )
        else:
            limit = None
            if outcome == replies.APPROVE_IN_PART:
                if new_limit is None or new_limit <= 0 or new_limit >= line.limit:
                    raise DomainError(
                        _("Approving in part needs a new limit above ¥0.00 and below the current ¥%(limit)s")
                        % {"limit": f"{line.limit:,.2f}"}
                    )
                limit = new_limit
                reply = reply.replace("{limit}", f"{new_limit:,.2f}")
            result = case_decide(
                case_id=case.pk,
                actor=actor,
                kind=DecisionKind.KEEP_FROZEN if outcome == replies.REJECT else DecisionKind.UNFREEZE,
                reason_code=ReasonCode.EVIDENCE_CONFIRMED if outcome == replies.REJECT else REASON_CODES[appeal.reason],
                note=f"appeal #{appeal.pk}",
                new_limit=limit,
                expected_version=None,
                idempotency_key=token,
                appeal_id=appeal.pk,
            )
            appeal.decision = result.decision
            appeal.outcome = outcome
            appeal.reply = reply
            if result.applied:
                _finish(appeal, actor_id=actor.user_id, at=at)
            else:
                appeal.status = AppealStatus.AWAITING_APPROVAL
                _set_case_marker(case.pk, AppealStatus.AWAITING_APPROVAL, appeal.sla_due_at)
        _save(appeal, at)
        audit_write(
            actor=actor,
            at=at,
            changes=[
                Change(
                    "appeal.decide",
                    "appeal",
                    appeal.pk,
                    line.pk,
                    before,
                    {"status": appeal.status, "outcome": outcome, "decision_id": appeal.decision_id},
                    reply,
                )
            ],
        )
    return appeal


def _save(appeal: Appeal, at: datetime) -> None:
    appeal.version += 1
    appeal.updated_at = at
    appeal.save()


def _finish(appeal: Appeal, *, actor_id: int | None, at: datetime) -> None:
    """The outcome is final: record it per rule, tell the borrower, take the appeal off the case."""
    approved = appeal.outcome in (replies.APPROVE, replies.APPROVE_IN_PART)
    if approved:
        appeal.status = AppealStatus.APPROVED if appeal.outcome == replies.APPROVE else AppealStatus.APPROVED_IN_PART
    else:
        appeal.status = AppealStatus.REJECTED
    appeal.decided_by_id = actor_id
    appeal.decided_at = at
    appeal.sla_paused_at = None
    # Each rule the case is about: overturned if this decision overturned it, upheld otherwise.
    signals = Signal.objects.filter(case_id=appeal.case_id, status__in=[SignalStatus.ACTIVE, SignalStatus.OVERTURNED])
    AppealRuleOutcome.objects.bulk_create(
        [
            AppealRuleOutcome(
                appeal=appeal,
                signal_id=s.pk,
                rule_id=s.rule_id,
                code=s.code,
                ruleset_version=s.ruleset_version,
                outcome=RuleOutcome.OVERTURNED
                if approved and s.status == SignalStatus.OVERTURNED
                else RuleOutcome.UPHELD,
                decided_at=at,
            )
            for s in signals
        ],
        ignore_conflicts=True,
    )
    _set_case_marker(appeal.case_id, "", None)
    notifications_queue(
        [
            Outgoing(
                appeal.line_id,
                NotificationKind.APPEAL_APPROVED if approved else NotificationKind.APPEAL_REJECTED,
                f"appeal_outcome:{appeal.pk}",
                {"appeal": appeal.pk, "reply": appeal.reply},
            )
        ],
        at=at,
    )


def appeal_follow_review(*, decision: Decision, limit_before: Decimal, actor: Actor, at: datetime) -> None:
    """Called by `decision_review` in its transaction: the case's open appeal follows the second reviewer's verdict.

    The appeal's own proposal approved: the appeal is decided as the reviewer wrote it. Rejected: back to review.
    A proposal made on the case page before the borrower appealed, approved: the appeal is settled with it (the
    template reply for its reason), so no appeal is left open on a resolved case.
    """
    appeal = Appeal.objects.select_for_update().filter(case_id=decision.case_id, status__in=OPEN_STATES).first()
    if appeal is None:
        return
    approved = decision.status == DecisionStatus.APPROVED
    own = appeal.decision_id == decision.pk
    if not own and not approved:
        return
    before = {"status": appeal.status}
    if approved:
        if not own:
            assert decision.new_limit is not None
            appeal.decision = decision
            appeal.outcome = replies.APPROVE if decision.new_limit >= limit_before else replies.APPROVE_IN_PART
            appeal.reply = replies.reply_template(appeal.reason, appeal.outcome).replace(
                "{limit}", f"{decision.new_limit:,.2f}"
            )
        _finish(appeal, actor_id=decision.proposed_by_id, at=at)
    else:
        # The second reviewer said no: the appeal is back in review, its draft reply kept.
        appeal.status = AppealStatus.OPEN
        appeal.decision = None
        _set_case_marker(appeal.case_id, AppealStatus.OPEN, appeal.sla_due_at)
    _save(appeal, at)
    audit_write(
        actor=actor,
        at=at,
        changes=[Change("appeal.review", "appeal", appeal.pk, appeal.line_id, before, {"status": appeal.status})],
    )


def appeals_age(*, now: datetime | None = None) -> dict[str, int]:
    """Raise the priority of appeals as their deadline nears; alert senior reviewers once per breach.

    Run by celery beat; safe on many workers at once (breaches are claimed with SKIP LOCKED).
    """
    now = now or timezone.now()
    soon = now + timedelta(hours=settings.APPEAL_DUE_SOON_HOURS)
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute(
                """
                WITH p AS (
                    SELECT id, CASE WHEN sla_due_at < %(now)s THEN 2 WHEN sla_due_at < %(soon)s THEN 1 ELSE 0 END AS pr
                    FROM appeals_appeal WHERE status = ANY(%(states)s)
                )
                UPDATE appeals_appeal a SET priority = p.pr FROM p WHERE a.id = p.id AND a.priority <> p.pr
                RETURNING a.id
                """,
                {"now": now, "soon": soon, "states": [str(s) for s in CLOCK_STATES]},
            )
            changed = len(cur.fetchall())
        breached = list(
            Appeal.objects.select_for_update(skip_locked=True)
            .filter(status__in=CLOCK_STATES, sla_due_at__lt=now, breach_notified_at__isnull=True)
            .values_list("pk", "line_id", "sla_due_at")[:1000]
        )
        if breached:
            Appeal.objects.filter(pk__in=[b[0] for b in breached]).update(breach_notified_at=now)
            seniors = list(
                get_user_model()
                .objects.filter(is_active=True, groups__name__in=[SENIOR_REVIEWER, RISK_MANAGER])
                .values_list("pk", flat=True)
                .distinct()
            )
            AppealAlert.objects.bulk_create(
                [AppealAlert(appeal_id=b[0], recipient_id=s, created_at=now) for b in breached for s in seniors],
                ignore_conflicts=True,
            )
            audit_write(
                actor=Actor.system("appeal SLA aging"),
                at=now,
                changes=[
                    Change(
                        "appeal.sla_breach",
                        "appeal",
                        pk,
                        line_id,
                        None,
                        {"sla_due_at": due.isoformat(), "seniors_alerted": len(seniors)},
                    )
                    for pk, line_id, due in breached
                ],
            )
            logger.warning("%d appeals passed their SLA; %d senior reviewers alerted", len(breached), len(seniors))
    expired = _return_unanswered(now)
    return {"priority_changed": changed, "breached": len(breached), "unanswered": expired}


def _return_unanswered(now: datetime) -> int:
    """Appeals whose request for more information went unanswered until its link expired go back to review.

    While an appeal waits for the borrower, only that appeal can settle its case; without this, a borrower who
    never answers would leave the case unsettled forever. The clock resumes where it was paused, and the reviewer
    decides on what the appeal holds.
    """
    cutoff = now - timedelta(days=settings.APPEAL_LINK_DAYS)
    waiting = list(
        Appeal.objects.filter(status=AppealStatus.AWAITING_INFO, sla_paused_at__lt=cutoff)
        .order_by("sla_paused_at")
        .values_list("pk", flat=True)[:1000]
    )
    returned = 0
    for appeal_id in waiting:
        with transaction.atomic():
            case, appeal = _lock_appeal(appeal_id)  # line, case, then appeal: the order every service uses
            if appeal.status != AppealStatus.AWAITING_INFO or appeal.sla_paused_at is None:
                continue  # answered or decided meanwhile
            if appeal.sla_paused_at >= cutoff:
                continue
            paused_at = appeal.sla_paused_at
            appeal.sla_due_at += now - paused_at
            appeal.sla_paused_at = None
            appeal.priority = _priority(appeal.sla_due_at, now)
            appeal.status = AppealStatus.OPEN
            _save(appeal, now)
            _set_case_marker(case.pk, AppealStatus.OPEN, appeal.sla_due_at)
            audit_write(
                actor=Actor.system("appeal SLA aging"),
                at=now,
                changes=[
                    Change(
                        "appeal.more_info_unanswered",
                        "appeal",
                        appeal.pk,
                        appeal.line_id,
                        {"status": AppealStatus.AWAITING_INFO, "waiting_since": paused_at.isoformat()},
                        {"status": AppealStatus.OPEN, "sla_due_at": appeal.sla_due_at.isoformat()},
                    )
                ],
            )
            returned += 1
    if returned:
        logger.info(
            "%d appeals went back to review: the borrower did not answer within %d days",
            returned,
            settings.APPEAL_LINK_DAYS,
        )
    return returned


def appeal_alerts_read(*, actor: Actor) -> int:
    """Mark the operator's SLA breach alerts as read."""
    if actor.user_id is None:
        raise NotAllowed(_("Only a logged-in operator can do this"))
    return AppealAlert.objects.filter(recipient_id=actor.user_id, read_at__isnull=True).update(read_at=timezone.now())
