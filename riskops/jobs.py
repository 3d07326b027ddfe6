"""Jobs over many accounts: every job state change, and how a batch runs.

- `job_request` records the job. A bulk unfreeze, or a job that may unfreeze more than JOB_FOUR_EYES_ACCOUNTS
  accounts, waits for `job_approve` by a different senior reviewer. Otherwise it starts at once.
- Starting freezes the selection: one INSERT cuts the matching line ids, in id order, into `JobBatch` rows of
  JOB_BATCH_SIZE. The batch rows are the dispatch outbox, written in the job's transaction. After commit, and
  again from beat (`jobs_dispatch`), every pending batch is sent to the broker, so a broker outage delays a job
  and never loses it.
- `job_run_batch` runs one batch in one transaction: it locks the batch row, calls the same set-based services
  as single decisions, records the accounts it changed in the batch row (`changed_ids`) and a `JobItem` with the
  reason for each account it could not change (`riskops.selectors.job_outcomes` reads the rest as unchanged),
  marks the batch done and adds its counts to the job.
  A duplicate delivery finds the batch locked (skipped) or done (nothing to do). A worker killed mid-batch
  rolls back everything, and the batch is sent again. So nothing is lost and nothing happens twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import engine, services
from accounts.models import CaseStatus, LineStatus
from accounts.selectors import QueueFilters, queue_queryset
from accounts.services import DomainError, NotAllowed, id_array
from appeals.models import OPEN_STATES
from riskops.audit import Actor, Change, audit_write
from riskops.models import (
    JOB_ACTIVE,
    Job,
    JobBatch,
    JobBatchStatus,
    JobItemOutcome,
    JobKind,
    JobSelection,
    JobStatus,
)

logger = logging.getLogger(__name__)

MAX_EXPLICIT_IDS = 100_000
UNFREEZING_KINDS = (JobKind.REEVALUATE_UNFREEZE, JobKind.BULK_UNFREEZE)


# --- Selection


def _selection_sql(selection_kind: str, selection: dict[str, Any]) -> tuple[str, list[Any]]:
    """SQL returning the selected line ids (one column, maybe repeated), and its parameters."""
    if selection_kind == JobSelection.ALL:
        return "SELECT id FROM accounts_creditline WHERE status IN ('active', 'frozen')", []
    if selection_kind == JobSelection.IDS:
        return "SELECT unnest(%s::bigint[])", [id_array(selection["line_ids"])]
    filters = QueueFilters(**_filters_from_json(selection))
    sql, params = (
        queue_queryset(filters, user_id=selection.get("_user_id")).values_list("line_id").query.sql_with_params()
    )
    return sql, list(params)


def _filters_from_json(selection: dict[str, Any]) -> dict[str, Any]:
    """A saved queue filter (JSON) back into QueueFilters' fields, through the queue's own form."""
    from accounts.forms import QueueFilterForm

    form = QueueFilterForm({k: v for k, v in selection.items() if not k.startswith("_")})
    if not form.is_valid():
        raise DomainError(
            _("The queue filter is not valid: %(errors)s")
            % {"errors": "; ".join(f"{k}: {' '.join(str(e) for e in v)}" for k, v in form.errors.items())}
        )
    return form.cleaned_data


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
        if not all(isinstance(i, int) and i > 0 for i in raw):
            raise DomainError(_("Account ids must be positive whole numbers"))
        return {"line_ids": sorted(set(raw))}
    if selection_kind == JobSelection.FILTER:
        _filters_from_json(selection)
        return {k: v for k, v in selection.items() if v not in ("", None)}
    return {}


# --- Requests, approvals, cancellation


def job_request(*, kind: str, selection_kind: str, selection: dict[str, Any], actor: Actor, reason: str = "") -> Job:
    """Ask for a job. It starts at once unless it needs a second reviewer's approval."""
    if actor.user is not None and not actor.user.has_perm("accounts.decide_case"):
        raise NotAllowed(_("Your role cannot start jobs"))
    if kind not in JobKind.values:
        raise DomainError(_("unknown job kind %(kind)r") % {"kind": kind})
    selection = _check_selection(selection_kind, selection)
    if selection_kind == JobSelection.FILTER and actor.user_id is not None:
        selection["_user_id"] = actor.user_id  # "assigned to me" means the requester
    at = timezone.now()
    with transaction.atomic():
        sql, params = _selection_sql(selection_kind, selection)
        may_unfreeze = 0
        if kind in UNFREEZING_KINDS:  # only these need the count (the nightly job selects every line)
            with connection.cursor() as cur:
                cur.execute(
                    f"SELECT count(*) FROM accounts_creditline WHERE status = 'frozen' AND id IN ({sql})",
                    params,
                )
                may_unfreeze = cur.fetchone()[0]
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
        _audit(job, actor, at, "job.request", None, {"status": job.status, "kind": kind, "may_unfreeze": may_unfreeze})
        if not needs_approval:
            _start(job, at)
    return job


def job_approve(*, job_id: int, actor: Actor) -> Job:
    """A second senior reviewer approves a job waiting for approval; it starts at once."""
    if actor.user is None or not actor.user.has_perm("accounts.approve_decision"):
        raise NotAllowed(_("Only a senior reviewer can approve a job"))
    at = timezone.now()
    with transaction.atomic():
        job = _lock(job_id)
        if job.status != JobStatus.AWAITING_APPROVAL:
            raise services.ConflictError(
                _("This job is %(status)s; nothing to approve") % {"status": job.get_status_display()}
            )
        if job.requested_by_id == actor.user_id:
            raise NotAllowed(_("You cannot approve your own job; another senior reviewer must"))
        job.approved_by_id = actor.user_id
        job.approved_at = at
        job.status = JobStatus.QUEUED
        job.save(update_fields=["approved_by", "approved_at", "status"])
        _audit(job, actor, at, "job.approve", {"status": JobStatus.AWAITING_APPROVAL}, {"status": job.status})
        _start(job, at)
    return job


def job_cancel(*, job_id: int, actor: Actor) -> Job:
    """The requester or a senior reviewer stops a job: batches not yet started never run."""
    at = timezone.now()
    with transaction.atomic():
        job = _lock(job_id)
        user = actor.user
        if user is None or not (job.requested_by_id == actor.user_id or user.has_perm("accounts.approve_decision")):
            raise NotAllowed(_("Only who asked for the job or a senior reviewer can cancel it"))
        if job.status not in JOB_ACTIVE:
            raise services.ConflictError(_("This job is already %(status)s") % {"status": job.get_status_display()})
        before = job.status
        job.status = JobStatus.CANCELLED
        job.cancelled_by_id = actor.user_id
        job.finished_at = at
        job.save(update_fields=["status", "cancelled_by", "finished_at"])
        with connection.cursor() as cur:
            # A batch running now holds its row and finishes; every other pending batch is cancelled.
            cur.execute(
                """
                UPDATE riskops_jobbatch SET status = 'cancelled' WHERE id IN (
                    SELECT id FROM riskops_jobbatch WHERE job_id = %s AND status = 'pending' FOR UPDATE SKIP LOCKED
                )
                """,
                [job.pk],
            )
        _audit(job, actor, at, "job.cancel", {"status": before}, {"status": job.status})
    return job


def _lock(job_id: int) -> Job:
    job = Job.objects.select_for_update().filter(pk=job_id).first()
    if job is None:
        raise DomainError(_("Job %(id)s does not exist") % {"id": job_id})
    return job


def _audit(job: Job, actor: Actor, at: datetime, action: str, before: Any, after: Any) -> None:
    audit_write(actor=actor, at=at, changes=[Change(action, "job", job.pk, None, before, after, job.reason)])


def _start(job: Job, at: datetime) -> None:
    """Freeze the selection into batches (one INSERT), then send them after commit."""
    sql, params = _selection_sql(job.selection_kind, job.selection)
    with connection.cursor() as cur:
        cur.execute(
            f"""
            INSERT INTO riskops_jobbatch (job_id, seq, line_ids, first_id, last_id, status, dispatch_count, changed_ids)
            SELECT %s, (rn - 1) / %s, array_agg(id ORDER BY id), min(id), max(id), 'pending', 0, ARRAY[]::bigint[]
            FROM (
                SELECT id, row_number() OVER (ORDER BY id) AS rn
                FROM (SELECT DISTINCT l.id FROM accounts_creditline l WHERE l.id IN ({sql})) sel
            ) numbered
            GROUP BY (rn - 1) / %s
            RETURNING cardinality(line_ids)
            """,
            [job.pk, job.batch_size, *params, job.batch_size],
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


# --- Dispatch


def jobs_dispatch(*, limit: int = 1000) -> int:
    """Send pending batches to the broker: new ones, and ones sent long ago and still not done (a lost worker).

    Claimed with one conditional UPDATE (SKIP LOCKED: a batch that is running holds its row), so two dispatchers
    never send the same batch at once. A batch that could not be sent is released for the next round.
    """
    from riskops.tasks import job_run_batch

    now = timezone.now()
    stale = now - timedelta(seconds=settings.JOB_REDISPATCH_SECONDS)
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            """
            UPDATE riskops_jobbatch SET dispatched_at = %s, dispatch_count = dispatch_count + 1
            WHERE id IN (
                SELECT b.id FROM riskops_jobbatch b JOIN riskops_job j ON j.id = b.job_id
                WHERE b.status = 'pending' AND j.status IN ('queued', 'running')
                  AND (b.dispatched_at IS NULL OR b.dispatched_at < %s)
                ORDER BY b.id LIMIT %s FOR UPDATE OF b SKIP LOCKED
            )
            RETURNING id
            """,
            [now, stale, limit],
        )
        claimed = sorted(r[0] for r in cur.fetchall())
    sent = 0
    try:
        for batch_id in claimed:
            job_run_batch.delay(batch_id)
            sent += 1
    finally:
        unsent = claimed[sent:]
        if unsent:
            JobBatch.objects.filter(pk__in=unsent, dispatched_at=now).update(
                dispatched_at=None, dispatch_count=F("dispatch_count") - 1
            )
    return sent


# --- Running a batch


def job_run_batch(batch_id: int) -> str:
    """Run one batch, exactly once in effect. Returns what happened: done, skipped (busy/finished), cancelled."""
    at = timezone.now()
    _mark_running(batch_id, at)
    with transaction.atomic():
        batch = JobBatch.objects.select_for_update(skip_locked=True).filter(pk=batch_id).first()
        if batch is None:
            return "busy"  # another worker is running it right now (a duplicate delivery)
        if batch.status != JobBatchStatus.PENDING:
            return "finished"
        with connection.cursor() as cur:
            # Not waiting for the WAL flush is safe here: a commit lost in a crash leaves the batch pending, and the
            # dispatcher sends it again.
            cur.execute("SET LOCAL synchronous_commit = off")
        job = Job.objects.get(pk=batch.job_id)
        if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
            batch.status = JobBatchStatus.CANCELLED
            batch.save(update_fields=["status"])
            return "cancelled"
        outcomes = _run_isolating_failures(job, list(batch.line_ids))
        _record(job, batch, outcomes, at)
    return "done"


def _mark_running(batch_id: int, at: datetime) -> None:
    # Its own short transaction: holding the job's row through a batch would serialise parallel batches.
    Job.objects.filter(status=JobStatus.QUEUED, batches__id=batch_id).update(status=JobStatus.RUNNING, started_at=at)


Outcomes = dict[int, tuple[str, str]]


def _run_isolating_failures(job: Job, ids: list[int]) -> Outcomes:
    """The whole batch set-based; if that fails on something other than a transient database error, account by
    account, so one failing account is reported without failing the others."""
    try:
        with transaction.atomic():
            return _run(job, ids)
    except (OperationalError, SoftTimeLimitExceeded):
        raise  # transient (deadlock, lost connection): the task retries the whole batch; a time limit is not a bad account
    except Exception:
        logger.exception("job %s: a batch failed as a whole; running its %d accounts one by one", job.pk, len(ids))
    outcomes: Outcomes = {}
    for line_id in ids:
        try:
            with transaction.atomic():
                outcomes.update(_run(job, [line_id]))
        except (OperationalError, SoftTimeLimitExceeded):
            raise
        except Exception as exc:  # noqa: BLE001
            outcomes[line_id] = (JobItemOutcome.FAILED, str(exc)[:500] or exc.__class__.__name__)
    return outcomes


def _run(job: Job, ids: list[int]) -> Outcomes:
    actor = Actor.job(job.pk)
    outcomes: Outcomes = dict.fromkeys(ids, (JobItemOutcome.UNCHANGED, ""))
    changed: set[int] = set()
    if job.kind in (JobKind.REEVALUATE, JobKind.REEVALUATE_UNFREEZE):
        changed |= engine.evaluate_lines(ids, actor=actor).changed_line_ids
    if job.kind in UNFREEZING_KINDS:
        unfrozen, failed = _unfreeze(job, ids, actor, only_cleared=job.kind == JobKind.REEVALUATE_UNFREEZE)
        changed |= unfrozen
        outcomes.update(failed)
    if job.kind == JobKind.BULK_REMIND:
        changed |= set(services.lines_remind(line_ids=ids, dedupe_prefix=f"job:{job.pk}"))
    for line_id in changed:
        if outcomes[line_id][0] != JobItemOutcome.FAILED:
            outcomes[line_id] = (JobItemOutcome.CHANGED, "")
    return outcomes


def _unfreeze(job: Job, ids: list[int], actor: Actor, *, only_cleared: bool) -> tuple[set[int], Outcomes]:
    """Unfreeze the batch's frozen lines that may be: the same rules as a reviewer's unfreeze, per account."""
    # The batch's frozen lines with what holds each back, in one query: the id range through the primary key and
    # the batch's lines kept by hashed filters (see accounts.engine._rows; a status condition the planner could use
    # made it read every frozen line through the status index).
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT l.id, l."limit",
                   EXISTS (SELECT 1 FROM accounts_case c WHERE c.line_id = l.id AND c.status = %(proposed)s),
                   (SELECT a.id FROM appeals_appeal a
                    WHERE a.line_id = l.id AND a.status = ANY(%(open)s) ORDER BY a.id LIMIT 1)
            FROM accounts_creditline l
            WHERE l.id BETWEEN %(lo)s AND %(hi)s AND l.id + 0 = ANY(%(ids)s::bigint[]) AND l.status || '' = %(frozen)s
            """,
            {
                "proposed": CaseStatus.AWAITING_APPROVAL.value,
                "open": [str(state) for state in OPEN_STATES],
                "lo": min(ids),
                "hi": max(ids),
                "ids": id_array(ids),
                "frozen": LineStatus.FROZEN.value,
            },
        )
        rows = cur.fetchall()
    frozen = {line_id: limit for line_id, limit, _proposal, _appeal in rows}
    failed: Outcomes = {}
    if only_cleared:
        lifted = _freezes_lifted_by_evidence(list(frozen))
        frozen = {k: v for k, v in frozen.items() if k in lifted}
    for line_id, _limit, proposal, appeal_id in rows:
        if line_id not in frozen:
            continue
        if proposal:
            failed[line_id] = (
                JobItemOutcome.FAILED,
                _("A proposal on this case is waiting for a second reviewer; approve or reject it first"),
            )
        if appeal_id is not None:
            failed[line_id] = (
                JobItemOutcome.FAILED,
                _("the borrower's appeal #%(id)s is open; decide it from the appeal page") % {"id": appeal_id},
            )
    if job.approved_by_id is None:
        # Without a second reviewer's approval of the job, each account keeps the four-eyes limit of single
        # decisions (its freezing signals all cleared, so the limit is the rule that is left).
        for line_id, limit in frozen.items():
            if limit >= settings.FOUR_EYES_LIMIT and line_id not in failed:
                failed[line_id] = (
                    JobItemOutcome.FAILED,
                    _("restoring a limit of ¥%(limit)s needs a second reviewer; decide it on the case page")
                    % {"limit": f"{limit:,.2f}"},
                )
    todo = [i for i in frozen if i not in failed]
    unfrozen = services.lines_unfreeze(line_ids=todo, actor=actor, reason=f"job #{job.pk}: {job.get_kind_display()}")
    return set(unfrozen), failed


def _freezes_lifted_by_evidence(line_ids: list[int]) -> set[int]:
    """Frozen lines whose last freeze came from a signal and that have no active freezing signal left.

    A freeze a person made (no signal behind it) is a person's to lift: re-evaluation never lifts it.
    """
    if not line_ids:
        return set()
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT l.id FROM accounts_creditline l
            WHERE l.id = ANY(%s::bigint[]) AND l.status = 'frozen'
              AND (SELECT c.signal_id FROM accounts_linechange c WHERE c.line_id = l.id AND c.kind = 'freeze'
                   ORDER BY c.at DESC, c.id DESC LIMIT 1) IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM accounts_signal s
                              WHERE s.line_id = l.id AND s.status = 'active' AND s.action = 'freeze')
            """,
            [id_array(line_ids)],
        )
        return {r[0] for r in cur.fetchall()}


def _record(job: Job, batch: JobBatch, outcomes: Outcomes, at: datetime) -> None:
    ids = sorted(outcomes)
    with connection.cursor() as cur:
        # What each account came to, in the batch's row (changed) and in items (failed, with the reason); the
        # batch's other accounts were left as they were (`riskops.selectors.job_outcomes` reads them so). A nightly
        # re-evaluation leaves most of a million accounts as they were, a bulk unfreeze changes all of them: a row
        # per account saying so was most of what recording cost.
        # COPY: the items in one stream (an INSERT of unnested arrays spent most of its time adapting them).
        # A batch is recorded once (its row is locked and must be pending), so there is nothing to conflict with.
        changed = [i for i in ids if outcomes[i][0] == JobItemOutcome.CHANGED]
        failed = [(i, outcomes[i][1]) for i in ids if outcomes[i][0] == JobItemOutcome.FAILED]
        if failed:
            with cur.cursor.copy("COPY riskops_jobitem (job_id, line_id, outcome, message) FROM STDIN") as copy:
                for line_id, message in failed:
                    copy.write_row((job.pk, line_id, JobItemOutcome.FAILED.value, message))
        batch.status = JobBatchStatus.DONE
        batch.finished_at = timezone.now()
        batch.changed_ids = changed
        batch.save(update_fields=["status", "finished_at", "changed_ids"])
        # The foreign keys are checked at commit (deferred), a tenth of a second for a batch of 5,000 unfreezes:
        # checked now, the job's row below is held only for the commit itself, not while parallel batches wait.
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cur.execute(
            """
            UPDATE riskops_job SET done = done + %(n)s, changed = changed + %(c)s, unchanged = unchanged + %(u)s,
                failed = failed + %(f)s, batches_done = batches_done + 1,
                status = CASE WHEN status = 'running' AND batches_done + 1 >= batches_total THEN 'succeeded'
                              ELSE status END,
                finished_at = CASE WHEN status = 'running' AND batches_done + 1 >= batches_total THEN %(at)s
                                   ELSE finished_at END
            WHERE id = %(job)s
            """,
            {
                "n": len(ids),
                "c": len(changed),
                "u": len(ids) - len(changed) - len(failed),
                "f": len(failed),
                "at": timezone.now(),
                "job": job.pk,
            },
        )


def job_batch_failed(*, batch_id: int, message: str) -> None:
    """A batch kept failing after its retries: the job fails, with the reason; its other batches stop."""
    with transaction.atomic():
        job_id = JobBatch.objects.filter(pk=batch_id).values_list("job_id", flat=True).first()
        if job_id is None:
            return
        job = _lock(job_id)
        if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
            job.status = JobStatus.FAILED
            job.error = f"batch {batch_id}: {message}"[:2000]
            job.finished_at = timezone.now()
            job.save(update_fields=["status", "error", "finished_at"])
            _audit(job, Actor.system("job runner"), job.finished_at, "job.fail", None, {"error": job.error})


def job_reevaluate_all(*, actor: Actor | None = None) -> Job:
    """The nightly re-evaluation of every active and frozen line, as a job (beat)."""
    return job_request(
        kind=JobKind.REEVALUATE,
        selection_kind=JobSelection.ALL,
        selection={},
        actor=actor or Actor.system("schedule"),
        reason="nightly re-evaluation",
    )
