"""Reads of jobs that span their models."""

from __future__ import annotations

from riskops.models import JobBatch, JobBatchStatus, JobItem, JobItemOutcome


def job_outcomes(job_id: int, line_ids: list[int] | None = None) -> dict[int, tuple[str, str]]:
    """What the job did to each account it has run so far (or to `line_ids` among them): (outcome, message).

    Changed and failed accounts have a `JobItem`; the other accounts of the job's done batches were unchanged.
    """
    done = JobBatch.objects.filter(job_id=job_id, status=JobBatchStatus.DONE)
    wanted = set(line_ids) if line_ids is not None else None
    result: dict[int, tuple[str, str]] = {}
    for batch_ids in done.values_list("line_ids", flat=True):
        for line_id in batch_ids:
            if wanted is None or line_id in wanted:
                result[line_id] = (JobItemOutcome.UNCHANGED, "")
    items = JobItem.objects.filter(job_id=job_id)
    if wanted is not None:
        items = items.filter(line_id__in=wanted)
    for line_id, outcome, message in items.values_list("line_id", "outcome", "message"):
        result[line_id] = (outcome, message)
    return result
