"""Asking for jobs, approving and cancelling them; starting one freezes its selection into batches.

- `job_request` records the job. A bulk unfreeze, or a job that may unfreeze more than JOB_FOUR_EYES_ACCOUNTS
  accounts, waits for `job_approve` by a different senior reviewer. Otherwise it starts at once.
- Starting freezes the selection: one INSERT cuts the matching line ids, in id order, into `JobBatch` rows of
  JOB_BATCH_SIZE. The batch rows are the dispatch outbox, written in the job's transaction; after commit, and again
  from beat, `riskops.jobs.runner.jobs_dispatch` sends every pending batch to the broker, so a broker outage
  delays a job and never loses it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Case, CreditLine
from accounts.queue_filters import queue_filters
from ingest.files import FileError, chunk_bounds, file_format, kind_of_file
from ingest.parsing import KINDS
from riskops.core.audit import Actor, Change, audit_write
from riskops.core.errors import ConflictError, DomainError, NotAllowed, NotFound
from riskops.core.forms import MAX_ID
from riskops.core.roles import APPROVE_DECISION, DECIDE_CASE, INGEST_EVENTS, may, require
from riskops.jobs.dispatch import jobs_dispatch
from riskops.jobs.selectors import import_errors, selection_sql
from riskops.models import (
    JOB_ACTIVE,
    SELECTION_KINDS,
    Job,
    JobBatch,
    JobBatchStatus,
    JobKind,
    JobSelection,
    JobStatus,
)

logger = logging.getLogger(__name__)

MAX_EXPLICIT_IDS = 100_000
UNFREEZING_KINDS = (JobKind.REEVALUATE_UNFREEZE, JobKind.BULK_UNFREEZE)


# --- Selection


def _check_selection(selection_kind: str, selection: dict[str, Any]) -> dict[str, Any]:
    if selection_kind not in JobSelection.values:
        raise DomainError(_("unknown selection %(kind)r") % {"kind": selection_kind})
    if selection_kind == JobSelection.IDS:
        raw = selection.get("line_ids")
        if not isinstance(raw, list) or not raw:
            raise DomainError(_("Choose at least one account"))
        if len(raw) > MAX_EXPLICIT_IDS:
            raise DomainError(
                _("At most %(max)s accounts by id; use a filter or all lines") % {"max": MAX_EXPLICIT_IDS}
            )
        if not all(isinstance(i, int) and 0 < i <= MAX_ID for i in raw):
            raise DomainError(_("Account ids must be positive whole numbers"))
        return {"line_ids": sorted(set(raw))}
    if selection_kind == JobSelection.FILTER:
        queue_filters(selection)
        return {k: v for k, v in selection.items() if v not in ("", None)}
    return {}


def _selects_any(sql: str, params: list[Any]) -> bool:
    """Whether the selection holds an existing line (a job of nothing is refused, not queued)."""
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT EXISTS (SELECT 1 FROM {CreditLine._meta.db_table} WHERE id IN ({sql}))",  # noqa: S608 - table names from the models, values bound
            params,
        )
        return bool(cur.fetchone()[0])


def _count_frozen(sql: str, params: list[Any]) -> int:
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT count(*) FROM {CreditLine._meta.db_table} WHERE status = 'frozen' AND id IN ({sql})",  # noqa: S608 - table names from the models, values bound
            params,
        )
        return cur.fetchone()[0]


# --- Requests, approvals, cancellation


def job_request(*, kind: str, selection_kind: str, selection: dict[str, Any], actor: Actor, reason: str = "") -> Job:
    """Ask for a job over a selection of accounts. It starts at once unless it needs a second reviewer's approval."""
    if kind not in SELECTION_KINDS:
        raise DomainError(_("unknown job kind %(kind)r") % {"kind": kind})
    return _request(kind=kind, selection_kind=selection_kind, selection=selection, actor=actor, reason=reason)


BOOK_KINDS = (JobKind.SIMULATE, JobKind.BACKTEST)


def job_request_over_book(*, kind: str, actor: Actor, reason: str) -> Job:
    """A simulation's or a backtest's job over every account (`riskops.tuning.services` records what it is of, in
    the same transaction, before its batches start)."""
    if kind not in BOOK_KINDS:
        raise DomainError(_("unknown job kind %(kind)r") % {"kind": kind})
    return _request(kind=kind, selection_kind=JobSelection.ALL, selection={}, actor=actor, reason=reason)


def _request(*, kind: str, selection_kind: str, selection: dict[str, Any], actor: Actor, reason: str) -> Job:
    if actor.user is not None:
        require(actor, DECIDE_CASE, _("Your role cannot start jobs"))
    selection = _check_selection(selection_kind, selection)
    if selection_kind == JobSelection.FILTER and actor.user_id is not None:
        selection["_user_id"] = actor.user_id  # "assigned to me" means the requester
    at = timezone.now()
    with transaction.atomic():
        sql, params = selection_sql(selection_kind, selection)
        if selection_kind != JobSelection.ALL and not _selects_any(sql, params):
            raise DomainError(_("The selection holds no account; nothing to do"))
        # Only these need the count (the nightly job selects every line).
        may_unfreeze = _count_frozen(sql, params) if kind in UNFREEZING_KINDS else 0
        needs_approval = kind == JobKind.BULK_UNFREEZE or may_unfreeze > settings.JOB_FOUR_EYES_ACCOUNTS
        job = Job.objects.create(
            kind=kind,
            selection_kind=selection_kind,
            selection=selection,
            reason=reason.strip(),
            status=JobStatus.AWAITING_APPROVAL if needs_approval else JobStatus.QUEUED,
            requested_by_id=actor.user_id,
            requested_label=actor.label[:100],
            requested_at=at,
            may_unfreeze=may_unfreeze,
            batch_size=settings.JOB_BATCH_SIZE,
        )
        audit_job(
            job, actor, at, "job.request", None, {"status": job.status, "kind": kind, "may_unfreeze": may_unfreeze}
        )
        if not needs_approval:
            _start(job, at)
    return job


def job_request_import(
    *, name: str, chunks: Iterable[bytes], size: int, kind: str = "", backfill: bool = False, actor: Actor
) -> Job:
    """Import an uploaded file as a job: the file is kept under IMPORT_DIR, checked (format, header), cut into
    batches of JOB_BATCH_SIZE rows (a batch's first_id and last_id are its first and last line in the file) and run
    by the workers like any job, each batch one ingestion batch (`ingest.services.events_ingest`, partial: the
    valid rows are stored, the others reported on the job's page and in its error report)."""
    require(actor, INGEST_EVENTS, _("Your role cannot import files"))
    # The name the upload had decides the kind of a file without a kind column, as for import_events.
    kind = kind or kind_of_file(name)
    if kind and kind not in KINDS:
        raise DomainError(_("unknown kind %(kind)r") % {"kind": kind})
    if size > settings.IMPORT_MAX_BYTES:
        raise DomainError(
            _("The file is %(size)s MB; at most %(max)s MB")
            % {"size": f"{size / 1048576:.1f}", "max": settings.IMPORT_MAX_BYTES // 1048576}
        )
    try:
        suffix = ".csv" if file_format(name) == "csv" else ".jsonl"
    except FileError as exc:
        raise DomainError(str(exc)) from None
    directory = Path(settings.IMPORT_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    stored = directory / f"{uuid.uuid4().hex}{suffix}"
    with stored.open("wb") as out:
        for chunk in chunks:
            out.write(chunk)
    at = timezone.now()
    try:
        bounds = chunk_bounds(stored, kind=kind, size=settings.JOB_BATCH_SIZE)
        if not bounds:
            raise FileError(_("the file has no rows"))
    except FileError as exc:
        stored.unlink(missing_ok=True)
        raise DomainError(f"{name}: {exc}") from None
    selection = {"file": stored.name, "name": name[:200], "kind": kind, "backfill": backfill}
    with transaction.atomic():
        job = Job.objects.create(
            kind=JobKind.IMPORT,
            selection_kind=JobSelection.FILE,
            selection=selection,
            reason=name[:200],
            status=JobStatus.QUEUED,
            requested_by_id=actor.user_id,
            requested_label=actor.label[:100],
            requested_at=at,
            batch_size=settings.JOB_BATCH_SIZE,
        )
        JobBatch.objects.bulk_create(
            [
                JobBatch(job=job, seq=seq, line_ids=[], first_id=first, last_id=last)
                for seq, (first, last, _rows) in enumerate(bounds)
            ]
        )
        job.selected = sum(rows for _first, _last, rows in bounds)  # rows, not accounts
        job.batches_total = len(bounds)
        job.save(update_fields=["selected", "batches_total"])
        audit_job(job, actor, at, "job.request", None, {"status": job.status, "kind": job.kind, "file": name[:200]})
        transaction.on_commit(_dispatch_soon)
    return job


def job_request_for_cases(*, kind: str, case_ids: list[int], actor: Actor, reason: str = "") -> Job:
    """A job over the accounts of these cases (the queue's selection)."""
    line_ids = list(Case.objects.filter(pk__in=case_ids).values_list("line_id", flat=True))
    return job_request(
        kind=kind, selection_kind=JobSelection.IDS, selection={"line_ids": line_ids}, actor=actor, reason=reason
    )


def job_approve(*, job_id: int, actor: Actor) -> Job:
    """A second senior reviewer approves a job waiting for approval; it starts at once."""
    require(actor, APPROVE_DECISION, _("Only a senior reviewer can approve a job"))
    at = timezone.now()
    with transaction.atomic():
        job = lock_job(job_id)
        if job.status != JobStatus.AWAITING_APPROVAL:
            raise ConflictError(_("This job is %(status)s; nothing to approve") % {"status": job.get_status_display()})
        if job.requested_by_id == actor.user_id:
            raise NotAllowed(_("You cannot approve your own job; another senior reviewer must"))
        job.approved_by_id = actor.user_id
        job.approved_at = at
        job.status = JobStatus.QUEUED
        job.save(update_fields=["approved_by", "approved_at", "status"])
        audit_job(job, actor, at, "job.approve", {"status": JobStatus.AWAITING_APPROVAL}, {"status": job.status})
        _start(job, at)
    return job


def job_cancel(*, job_id: int, actor: Actor) -> Job:
    """The requester or a senior reviewer stops a job: batches not yet started never run."""
    at = timezone.now()
    with transaction.atomic():
        job = lock_job(job_id)
        if actor.user is None or not (job.requested_by_id == actor.user_id or may(actor, APPROVE_DECISION)):
            raise NotAllowed(_("Only who asked for the job or a senior reviewer can cancel it"))
        if job.status not in JOB_ACTIVE:
            raise ConflictError(_("This job is already %(status)s") % {"status": job.get_status_display()})
        before = job.status
        job.status = JobStatus.CANCELLED
        job.cancelled_by_id = actor.user_id
        job.finished_at = at
        job.save(update_fields=["status", "cancelled_by", "finished_at"])
        # A batch running now holds its row and finishes; every other pending batch is cancelled.
        pending = JobBatch.objects.select_for_update(skip_locked=True).filter(job=job, status=JobBatchStatus.PENDING)
        JobBatch.objects.filter(pk__in=list(pending.values_list("pk", flat=True))).update(
            status=JobBatchStatus.CANCELLED
        )
        audit_job(job, actor, at, "job.cancel", {"status": before}, {"status": job.status})
    return job


def lock_job(job_id: int) -> Job:
    job = Job.objects.select_for_update().filter(pk=job_id).first()
    if job is None:
        raise NotFound(_("Job %(id)s does not exist") % {"id": job_id})
    return job


def job_errors_export(job: Job, actor: Actor) -> list[dict[str, Any]]:
    """An import job's errors, as exported to a file: the export is audited (who took it, how many rows)."""
    rows = import_errors(job.pk)
    with transaction.atomic():
        audit_job(job, actor, timezone.now(), "job.export_errors", None, {"rows": len(rows)})
    return rows


def audit_job(job: Job, actor: Actor, at: datetime, action: str, before: Any, after: Any) -> None:
    audit_write(actor=actor, at=at, changes=[Change(action, "job", job.pk, None, before, after, job.reason)])


def _start(job: Job, at: datetime) -> None:
    """Freeze the selection into batches (one INSERT), then send them after commit."""
    sql, params = selection_sql(job.selection_kind, job.selection)
    with connection.cursor() as cur:
        cur.execute(
            f"""
            INSERT INTO {JobBatch._meta.db_table} (job_id, seq, line_ids, first_id, last_id, status, dispatch_count,
                changed_ids)
            SELECT %s, (rn - 1) / %s, array_agg(id ORDER BY id), min(id), max(id), 'pending', 0, ARRAY[]::bigint[]
            FROM (
                SELECT id, row_number() OVER (ORDER BY id) AS rn
                FROM (SELECT DISTINCT l.id FROM {CreditLine._meta.db_table} l WHERE l.id IN ({sql})) sel
            ) numbered
            GROUP BY 2
            RETURNING cardinality(line_ids)
            """,  # noqa: S608 - table names from the models, values bound
            [job.pk, job.batch_size, *params],
        )
        sizes = [r[0] for r in cur.fetchall()]
    job.selected = sum(sizes)
    job.batches_total = len(sizes)
    fields = ["selected", "batches_total"]
    if not sizes:
        job.status, job.started_at, job.finished_at = JobStatus.SUCCEEDED, at, at
        fields += ["status", "started_at", "finished_at"]
    job.save(update_fields=fields)
    transaction.on_commit(_dispatch_soon)


def _dispatch_soon() -> None:
    try:
        jobs_dispatch()
    except Exception:  # noqa: BLE001 - beat's jobs_dispatch sends them once the broker is back
        logger.warning("could not dispatch job batches now; the periodic dispatcher will")


def job_reevaluate_all(*, actor: Actor | None = None) -> Job:
    """The nightly re-evaluation of every active and frozen line, as a job (beat)."""
    return job_request(
        kind=JobKind.REEVALUATE,
        selection_kind=JobSelection.ALL,
        selection={},
        actor=actor or Actor.system("schedule"),
        reason="nightly re-evaluation",
    )
