"""Running a job's batch, exactly once in effect, and failing a job whose batch keeps failing.

`job_run_batch` runs one batch in one transaction: it locks the batch row, calls the same set-based services as
single decisions (the engine, `lines_unfreeze`, `lines_remind`), records the accounts it changed in the batch row
(`changed_ids`) and a `JobItem` with the reason for each account it could not change (`riskops.jobs.selectors`
reads the rest as unchanged), marks the batch done and adds its counts to the job. A duplicate delivery finds the
batch locked (skipped) or done (nothing to do). A worker killed mid-batch rolls back everything, and the batch is
sent again. So nothing is lost and nothing happens twice.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext_noop

from accounts import engine
from accounts.services.backtests import backtest_run_batch
from accounts.services.lines import HELD_APPEAL, HELD_PROPOSAL, lines_remind, lines_unfreeze
from accounts.services.simulations import simulation_run_batch
from appeals.models import OPEN_STATES, Appeal
from ingest.files import read_chunk
from ingest.models import BatchMode, BatchSource
from ingest.services import events_ingest
from riskops.core.audit import Actor
from riskops.core.sql import to_json
from riskops.jobs.requests import UNFREEZING_KINDS, audit_job, lock_job
from riskops.models import Job, JobBatch, JobBatchStatus, JobItem, JobItemOutcome, JobKind, JobStatus

logger = logging.getLogger(__name__)


def job_run_batch(batch_id: int) -> str:
    """Run one batch, exactly once in effect. Returns what happened: done, skipped (busy/finished), cancelled.

    In English: what it keeps (a failed account's reason, as a template and its values) is shown later to readers
    of either language (`JobItem.text`), and the worker has no reader.
    """
    with translation.override("en"):
        return _run_batch(batch_id)


def _run_batch(batch_id: int) -> str:
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
        if job.kind == JobKind.IMPORT:
            _run_import(job, batch)
        else:
            outcomes = _run_isolating_failures(job, list(batch.line_ids))
            _record(job, batch, outcomes, at)
    return "done"


def _run_import(job: Job, batch: JobBatch) -> None:
    """A chunk of an uploaded file (lines first_id to last_id) as one ingestion batch, in the batch's transaction:
    stored and counted exactly once. Rows stored count as changed, rows already there as unchanged."""
    selection = job.selection
    items = read_chunk(
        Path(settings.IMPORT_DIR) / selection["file"], batch.first_id, kind=selection["kind"], size=job.batch_size
    )
    ingested = events_ingest(
        items=items,
        actor=Actor.job(job.pk),
        mode=BatchMode.PARTIAL,
        backfill=bool(selection.get("backfill")),
        source=BatchSource.UPLOAD,
        file_name=selection["name"],
        first_index=batch.first_id,
        job_id=job.pk,
    )
    counts = {what: sum(c[what] for c in ingested.counts.values()) for what in ("stored", "duplicate", "failed")}
    batch.status = JobBatchStatus.DONE
    batch.finished_at = timezone.now()
    batch.save(update_fields=["status", "finished_at"])
    _count(job, len(items), counts["stored"], counts["duplicate"], len(items) - counts["stored"] - counts["duplicate"])
    if Job.objects.filter(pk=job.pk, status=JobStatus.SUCCEEDED).exists():
        # The last batch: the upload is not needed any more (its errors are in the ingestion batches).
        path = Path(settings.IMPORT_DIR) / selection["file"]
        transaction.on_commit(lambda: path.unlink(missing_ok=True))


def _mark_running(batch_id: int, at: datetime) -> None:
    # Its own short transaction: holding the job's row through a batch would serialise parallel batches.
    Job.objects.filter(status=JobStatus.QUEUED, batches__id=batch_id).update(status=JobStatus.RUNNING, started_at=at)


# Per account: (outcome, reason, the reason's values); the reason is English, marked for translation.
Outcomes = dict[int, tuple[str, str, dict[str, Any]]]
_UNCHANGED: tuple[str, str, dict[str, Any]] = (JobItemOutcome.UNCHANGED, "", {})


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
        except Exception as exc:  # noqa: BLE001 - one failing account is reported, the others go through
            outcomes[line_id] = (JobItemOutcome.FAILED, str(exc)[:500] or exc.__class__.__name__, {})
    return outcomes


def _run(job: Job, ids: list[int]) -> Outcomes:
    actor = Actor.job(job.pk)
    outcomes: Outcomes = dict.fromkeys(ids, _UNCHANGED)
    changed: set[int] = set()
    if job.kind in (JobKind.REEVALUATE, JobKind.REEVALUATE_UNFREEZE):
        changed |= engine.evaluate_lines(ids, actor=actor).changed_line_ids
    if job.kind in UNFREEZING_KINDS:
        unfrozen, failed = _unfreeze(job, ids, actor, only_cleared=job.kind == JobKind.REEVALUATE_UNFREEZE)
        changed |= unfrozen
        outcomes.update(failed)
    if job.kind == JobKind.BULK_REMIND:
        changed |= set(lines_remind(line_ids=ids, dedupe_prefix=f"job:{job.pk}"))
    if job.kind == JobKind.SIMULATE:
        simulation_run_batch(job_id=job.pk, line_ids=ids)  # changes no account: every one is left unchanged
    if job.kind == JobKind.BACKTEST:
        backtest_run_batch(job_id=job.pk, line_ids=ids)  # nor does this one
    for line_id in changed:
        if outcomes[line_id][0] != JobItemOutcome.FAILED:
            outcomes[line_id] = (JobItemOutcome.CHANGED, "", {})
    return outcomes


def _unfreeze(job: Job, ids: list[int], actor: Actor, *, only_cleared: bool) -> tuple[set[int], Outcomes]:
    """Unfreeze the batch's frozen lines through the one unfreeze, leaving to a person those a person must decide."""
    candidates = sorted(engine.frozen_by_signal(ids, lifted=True)) if only_cleared else ids
    result = lines_unfreeze(
        line_ids=candidates,
        actor=actor,
        reason=f"job #{job.pk}: {job.get_kind_display()}",
        hold_for_review=True,
        # Without a second reviewer's approval of the job, each account keeps the four-eyes limit of single
        # decisions (its freezing signals all cleared, so the limit is the rule that is left).
        four_eyes_limit=None if job.approved_by_id else Decimal(settings.FOUR_EYES_LIMIT),
        resolve_cases=True,
    )
    return set(result.line_ids), _held_messages(result.held)


def _held_messages(held: dict[int, tuple[str, Decimal]]) -> Outcomes:
    """Why each line left frozen was not unfrozen, for the job's page."""
    appealed = [line_id for line_id, (why, _limit) in held.items() if why == HELD_APPEAL]
    appeals = dict(
        Appeal.objects.filter(line_id__in=appealed, status__in=OPEN_STATES).order_by("-pk").values_list("line_id", "pk")
        if appealed
        else []
    )
    failed: Outcomes = {}
    for line_id, (why, limit) in held.items():
        if why == HELD_APPEAL:
            reason = (
                gettext_noop("the borrower's appeal #%(id)s is open; decide it from the appeal page"),
                {"id": appeals.get(line_id, "?")},
            )
        elif why == HELD_PROPOSAL:
            reason = (
                gettext_noop("A proposal on this case is waiting for a second reviewer; approve or reject it first"),
                {},
            )
        else:
            reason = (
                gettext_noop("restoring a limit of ¥%(limit)s needs a second reviewer; decide it on the case page"),
                {"limit": f"{limit:,.2f}"},
            )
        failed[line_id] = (JobItemOutcome.FAILED, *reason)
    return failed


def _record(job: Job, batch: JobBatch, outcomes: Outcomes, at: datetime) -> None:
    ids = sorted(outcomes)
    with connection.cursor() as cur:
        # What each account came to, in the batch's row (changed) and in items (failed, with the reason); the
        # batch's other accounts were left as they were (`riskops.jobs.selectors.job_outcomes` reads them so). A nightly
        # re-evaluation leaves most of a million accounts as they were, a bulk unfreeze changes all of them: a row
        # per account saying so was most of what recording cost.
        # COPY: the items in one stream (an INSERT of unnested arrays spent most of its time adapting them).
        # A batch is recorded once (its row is locked and must be pending), so there is nothing to conflict with.
        changed = [i for i in ids if outcomes[i][0] == JobItemOutcome.CHANGED]
        failed = [(i, *outcomes[i][1:]) for i in ids if outcomes[i][0] == JobItemOutcome.FAILED]
        if failed:
            with cur.cursor.copy(
                f"COPY {JobItem._meta.db_table} (job_id, line_id, outcome, message, params) FROM STDIN"
            ) as copy:
                for line_id, message, params in failed:
                    copy.write_row((job.pk, line_id, JobItemOutcome.FAILED.value, message, to_json(params)))
        batch.status = JobBatchStatus.DONE
        batch.finished_at = timezone.now()
        batch.changed_ids = changed
        batch.save(update_fields=["status", "finished_at", "changed_ids"])
        # The foreign keys are checked at commit (deferred), a tenth of a second for a batch of 5,000 unfreezes:
        # checked now, the job's row below is held only for the commit itself, not while parallel batches wait.
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
    _count(job, len(ids), len(changed), len(ids) - len(changed) - len(failed), len(failed))


def _count(job: Job, done: int, changed: int, unchanged: int, failed: int) -> None:
    """Add a batch's counts to its job; the last batch finishes it."""
    with connection.cursor() as cur:
        cur.execute(
            f"""
            UPDATE {Job._meta.db_table} SET done = done + %(n)s, changed = changed + %(c)s, unchanged = unchanged + %(u)s,
                failed = failed + %(f)s, batches_done = batches_done + 1,
                status = CASE WHEN status = 'running' AND batches_done + 1 >= batches_total THEN 'succeeded'
                              ELSE status END,
                finished_at = CASE WHEN status = 'running' AND batches_done + 1 >= batches_total THEN %(at)s
                                   ELSE finished_at END
            WHERE id = %(job)s
            """,  # noqa: S608 - table names from the models, values bound
            {"n": done, "c": changed, "u": unchanged, "f": failed, "at": timezone.now(), "job": job.pk},
        )


def job_batch_failed(*, batch_id: int, message: str) -> None:
    """A batch kept failing after its retries: the job fails, with the reason; its other batches stop."""
    with transaction.atomic():
        job_id = JobBatch.objects.filter(pk=batch_id).values_list("job_id", flat=True).first()
        if job_id is None:
            return
        job = lock_job(job_id)
        if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
            job.status = JobStatus.FAILED
            job.error = f"batch {batch_id}: {message}"[:2000]
            job.finished_at = timezone.now()
            job.save(update_fields=["status", "error", "finished_at"])
            audit_job(job, Actor.system("job runner"), job.finished_at, "job.fail", None, {"error": job.error})
