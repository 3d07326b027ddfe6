"""Taking appeals: a borrower's appeal with its documents (the API's busiest path), and the borrower's answer to a
request for more information.

Whether an account may be appealed is decided once, by `_refusal`, from what `_target` reads under the line's
lock: the intake, its retry after a lost race, and the borrower's page all ask it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Case, CaseStatus, CreditLine, LineStatus, NotificationKind
from accounts.notifications import Outgoing, notifications_send_after_commit, outbox_insert, outbox_json
from appeals.documents import CheckedDocument, StoredFiles, check_documents
from appeals.links import appeal_link
from appeals.models import OPEN_STATES, Appeal, AppealDocument, AppealReason, AppealStatus
from appeals.services.common import appeal_priority, lock_appeal, set_case_marker
from riskops.core.audit import AUDIT_JSON_SOURCE, Actor, Change, actor_params, audit_insert, audit_json, audit_write
from riskops.core.errors import ConflictError, DomainError
from riskops.core.roles import SUBMIT_APPEAL, require
from riskops.core.sql import rows_json, rows_sql

STATEMENT_MAX = 2000
MAX_DOCUMENTS_PER_APPEAL = 15  # the first five and two rounds of more information


@dataclass(frozen=True)
class SubmitOutcome:
    appeal: Appeal
    replayed: bool = False
    # The documents just written (None on a replay), so the caller need not read them back.
    documents: list[AppealDocument] | None = None


def documents_root() -> Path:
    return Path(settings.APPEAL_DOCUMENTS_DIR)


def _fingerprint(account: str, reason: str, statement: str, docs: list[CheckedDocument]) -> str:
    h = hashlib.sha256()
    for part in (account, reason, statement, *(d.sha256 for d in docs)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


class _StoredFiles(StoredFiles):
    """An appeal's files, written inside its transaction; removed again if the transaction does not commit."""

    def __init__(self) -> None:
        super().__init__(documents_root())

    def appeal_rows(
        self, appeal_id: int, docs: list[CheckedDocument], at: datetime, round_no: int
    ) -> list[AppealDocument]:
        """Write the files; returns their rows, unsaved."""
        return [
            AppealDocument(appeal_id=appeal_id, uploaded_at=at, round=round_no, **fields) for fields in self.write(docs)
        ]


# --- May this account be appealed? One rule.


@dataclass(frozen=True)
class _Target:
    """What the intake reads about an account, under the line's lock."""

    line_id: int
    account_no: str
    line_status: str
    case_id: int | None  # the unresolved case
    open_appeal_id: int | None  # the case's open appeal
    replay_id: int | None  # the appeal this Idempotency-Key already created
    replay_fingerprint: str | None
    new_appeal_id: int  # reserved from the appeal sequence (a refused appeal leaves a gap in the numbers)


_LINE, _CASE, _APPEAL = CreditLine._meta.db_table, Case._meta.db_table, Appeal._meta.db_table
_TARGET = f"""
    SELECT l.id, l.account_no, l.status, c.id,
        (SELECT a.id FROM {_APPEAL} a WHERE a.case_id = c.id AND a.status = ANY(%(open)s) ORDER BY a.id LIMIT 1),
        r.id, r.request_fingerprint, nextval(pg_get_serial_sequence('{_APPEAL}', 'id'))
    FROM {_LINE} l
    LEFT JOIN {_CASE} c ON c.line_id = l.id AND c.status <> %(resolved)s
    LEFT JOIN {_APPEAL} r ON r.idempotency_key = %(key)s
"""  # noqa: S608 - table names from the models, values bound
_BY_NUMBER = f"{_TARGET} WHERE l.account_no = %(ref)s FOR UPDATE OF l"
_BY_ID = f"{_TARGET} WHERE l.id = %(ref)s FOR UPDATE OF l"
# The borrower's page only looks: no lock, no appeal number reserved.
_LOOK = _TARGET.replace(f"nextval(pg_get_serial_sequence('{_APPEAL}', 'id'))", "0") + " WHERE l.id = %(ref)s"


def _target(account_no: str, line_id: int | None, key: str | None, *, look: bool = False) -> _Target | None:
    """Lock the line (by account number or id) and read what decides whether it may be appealed; None when there is
    no such account. The line's lock serialises the intake with decisions and the engine (they lock it first too)."""
    with connection.cursor() as cur:
        cur.execute(
            _LOOK if look else _BY_NUMBER if account_no else _BY_ID,
            {
                "open": [s.value for s in OPEN_STATES],
                "resolved": CaseStatus.RESOLVED.value,
                "key": key,
                "ref": account_no or (line_id or 0),
            },
        )
        row = cur.fetchone()
    return None if row is None else _Target(*row)


def _refusal(target: _Target | None) -> str:
    """Why this account may not be appealed now, in the borrower's words; "" when it may."""
    if target is None:
        return _("No account with this reference")
    if target.line_status == LineStatus.CLOSED:
        return _("This account is closed; it cannot be appealed")
    if target.line_status != LineStatus.FROZEN:
        return _("This account is not frozen; there is nothing to appeal")
    if target.case_id is None:
        return _("No review of this account is open, so it cannot be appealed now; please contact customer service")
    if target.open_appeal_id is not None:
        return _("An appeal for this account (no. %(id)s) is already being reviewed; we will reply to it") % {
            "id": target.open_appeal_id
        }
    return ""


def _refuse(target: _Target | None) -> None:
    refusal = _refusal(target)
    if refusal:
        raise (ConflictError if target is not None and target.open_appeal_id is not None else DomainError)(refusal)


@dataclass(frozen=True)
class Eligibility:
    refusal: str  # "" when the account may be appealed
    open_appeal: Appeal | None


def appeal_eligibility(line_id: int) -> Eligibility:
    """For the borrower's page: may this line be appealed, and the open appeal if there is one."""
    target = _target("", line_id, None, look=True)
    refusal = _refusal(target)
    open_appeal = None
    if target is not None and target.open_appeal_id is not None:
        open_appeal = Appeal.objects.get(pk=target.open_appeal_id)
    return Eligibility(refusal, open_appeal)


# --- The intake


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
    if actor.user is not None:
        require(actor, SUBMIT_APPEAL, _("This account may not submit appeals"))
    statement = _check_statement(reason, statement, idempotency_key)
    docs = check_documents(files)
    key = f"{actor.user_id or actor.kind}:{idempotency_key}" if idempotency_key else None
    fingerprint = _fingerprint(account_no or str(line_id), reason, statement, docs)
    at = timezone.now()
    stored = _StoredFiles()
    try:
        with transaction.atomic():
            target = _target(account_no, line_id, key)
            replay = _replay(target, fingerprint)
            if replay is not None:
                return replay
            _refuse(target)
            assert target is not None
            written = _write(target, reason, statement, channel, actor, key, fingerprint, at, docs, stored)
            if written is not None:
                return written
            # A unique index refused it: a concurrent request won (an open appeal, the same key). Say which.
            stored.discard()
            target = _target(account_no, line_id, key)
            replay = _replay(target, fingerprint)
            if replay is not None:
                return replay
            _refuse(target)
            raise ConflictError(_("The account changed while the appeal was being taken; please send it again"))
    except BaseException:
        stored.discard()
        raise


def _check_statement(reason: str, statement: str, idempotency_key: str) -> str:
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
    return statement


def _replay(target: _Target | None, fingerprint: str) -> SubmitOutcome | None:
    """The appeal a retried request created (read under the line's lock, so a retry racing the first one waits)."""
    if target is None or target.replay_id is None:
        return None
    if target.replay_fingerprint != fingerprint:
        raise ConflictError(_("This Idempotency-Key was already used for a different appeal"))
    return SubmitOutcome(Appeal.objects.select_related("line").get(pk=target.replay_id), replayed=True)


def _saved(instance: models.Model) -> Any:
    """The instance as the ORM returns a saved row (`Model.from_db`), from its own values."""
    fields = [f.attname for f in instance._meta.concrete_fields]
    return type(instance).from_db(connection.alias, fields, [getattr(instance, f) for f in fields])


def _write(
    target: _Target,
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
    """Write the appeal, its documents, the case's appeal marker, the audit event and the borrower's confirmation
    in one statement. None if a unique index refused the appeal, in which case nothing was written."""
    assert target.case_id is not None  # only an account with an open case gets here (`_refusal`)
    due = at + timedelta(hours=settings.APPEAL_SLA_HOURS)
    appeal = Appeal(
        id=target.new_appeal_id,
        case_id=target.case_id,
        line_id=target.line_id,
        reason=reason,
        statement=statement,
        channel=channel,
        submitted_at=at,
        updated_at=at,
        sla_due_at=due,
        priority=appeal_priority(due, at),
        idempotency_key=key,
        request_fingerprint=fingerprint,
        submitted_by_id=actor.user_id,
    )
    documents = stored.appeal_rows(appeal.pk, docs, at, 0)
    params: dict[str, Any] = {
        **actor_params(actor, at),
        "appeal": rows_json([appeal]),
        "marker": AppealStatus.OPEN.value,
        "due": due,
        "case": target.case_id,
        "audit": audit_json(
            [
                Change(
                    "appeal.submit",
                    "appeal",
                    appeal.pk,
                    target.line_id,
                    None,
                    {"reason": reason, "channel": channel, "documents": len(docs), "case_id": target.case_id},
                )
            ]
        ),
        "messages": outbox_json(
            [
                Outgoing(
                    target.line_id,
                    NotificationKind.APPEAL_RECEIVED,
                    f"appeal_received:{appeal.pk}",
                    {"appeal": appeal.pk, "hours": settings.APPEAL_SLA_HOURS, "link": appeal_link(target.line_id)},
                )
            ]
        ),
    }
    table, columns, rows = rows_sql([appeal], "appeal")
    ctes = [f"a AS (INSERT INTO {table} ({columns}) SELECT {columns} FROM {rows} ON CONFLICT DO NOTHING RETURNING id)"]  # noqa: S608 - table names from the models, values bound
    if documents:
        table, columns, rows = rows_sql(documents, "documents")
        ctes.append(
            f"d AS (INSERT INTO {table} ({columns}) SELECT {columns} FROM {rows}"  # noqa: S608 - table names from the models, values bound
            " WHERE EXISTS (SELECT FROM a) RETURNING id, stored_name)"
        )
        params["documents"] = rows_json(documents)
    only_if_taken = "WHERE EXISTS (SELECT FROM a)"
    ctes += [
        f"c AS (UPDATE {_CASE} SET appeal_state = %(marker)s, appeal_due_at = %(due)s WHERE id = %(case)s"  # noqa: S608 - table names from the models, values bound
        " AND EXISTS (SELECT FROM a))",
        f"e AS ({audit_insert(f'{AUDIT_JSON_SOURCE} {only_if_taken}')})",
        f"n AS ({outbox_insert(where=only_if_taken)})",
    ]
    ids = "(SELECT json_object_agg(stored_name, id) FROM d)" if documents else "NULL"
    with connection.cursor() as cur:
        cur.execute(f"WITH {', '.join(ctes)} SELECT (SELECT id FROM a), {ids}::text", params)  # noqa: S608 - table names from the models, values bound
        appeal_id, document_ids = cur.fetchone()
    if appeal_id is None:
        return None
    for document in documents:
        document.pk = _json_ids(document_ids)[document.stored_name]
    saved = _saved(appeal)
    # Only the line's id and number are loaded (what the API's answer shows).
    saved.line = CreditLine(pk=target.line_id, account_no=target.account_no)
    notifications_send_after_commit()
    return SubmitOutcome(saved, documents=[_saved(d) for d in documents])


def _json_ids(text: str | None) -> dict[str, int]:
    return json.loads(text or "{}")


# --- More information


def appeal_add_documents(*, appeal_id: int, files: list[tuple[str, bytes]], note: str, actor: Actor) -> Appeal:
    """The borrower answers a request for more information; the appeal goes back to review, the clock resumes."""
    note = (note or "").strip()
    if len(note) > STATEMENT_MAX:
        raise DomainError(_("The statement is too long (at most %(max)d characters)") % {"max": STATEMENT_MAX})
    if not files and not note:
        raise DomainError(_("Add at least one document or a few words"))
    docs = check_documents(files)
    at = timezone.now()
    stored = _StoredFiles()
    try:
        with transaction.atomic():
            case, appeal = lock_appeal(appeal_id)
            if appeal.status != AppealStatus.AWAITING_INFO:
                raise ConflictError(_("This appeal is not waiting for more information"))
            rounds = list(appeal.documents.values_list("round", flat=True))
            if len(rounds) + len(docs) > MAX_DOCUMENTS_PER_APPEAL:
                raise DomainError(
                    _("An appeal holds at most %(max)d documents; it has %(n)d")
                    % {"max": MAX_DOCUMENTS_PER_APPEAL, "n": len(rounds)}
                )
            AppealDocument.objects.bulk_create(stored.appeal_rows(appeal.pk, docs, at, max(rounds, default=0) + 1))
            assert appeal.sla_paused_at is not None
            paused_for = at - appeal.sla_paused_at
            appeal.sla_due_at += paused_for
            appeal.sla_paused_at = None
            appeal.priority = appeal_priority(appeal.sla_due_at, at)
            appeal.status = AppealStatus.OPEN
            appeal.info_reply = note
            appeal.version += 1
            appeal.updated_at = at
            appeal.save()
            set_case_marker(case.pk, AppealStatus.OPEN, appeal.sla_due_at)
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
