"""Reads of jobs that span their models."""

from __future__ import annotations

from typing import Any

from ingest.models import IngestBatch
from ingest.parsing import translated
from riskops.models import JobBatch, JobBatchStatus, JobItem, JobItemOutcome


def job_outcomes(job_id: int, line_ids: list[int] | None = None) -> dict[int, tuple[str, str]]:
    """What the job did to each account it has run so far (or to `line_ids` among them): (outcome, message).

    A done batch lists the accounts it changed (`changed_ids`); a failed account has a `JobItem` with the reason;
    the batch's other accounts were unchanged.
    """
    done = JobBatch.objects.filter(job_id=job_id, status=JobBatchStatus.DONE)
    wanted = set(line_ids) if line_ids is not None else None
    result: dict[int, tuple[str, str]] = {}
    for batch_ids, changed_ids in done.values_list("line_ids", "changed_ids"):
        changed = set(changed_ids)
        for line_id in batch_ids:
            if wanted is None or line_id in wanted:
                result[line_id] = (JobItemOutcome.CHANGED if line_id in changed else JobItemOutcome.UNCHANGED, "")
    items = JobItem.objects.filter(job_id=job_id)
    if wanted is not None:
        items = items.filter(line_id__in=wanted)
    for item in items.only("line_id", "outcome", "message", "params"):
        result[item.line_id] = (item.outcome, item.text)
    return result


def import_errors(job_id: int, *, limit: int | None = None) -> list[dict[str, Any]]:
    """The errors of an import job's rows, by line in the file ({"index": line, "field", "message"}), the messages in
    the active language."""
    errors: list[dict[str, Any]] = []
    for batch_errors in (
        IngestBatch.objects.filter(job_id=job_id).order_by("first_row").values_list("errors", flat=True)
    ):
        errors.extend({"index": e["index"], "field": e["field"], "message": translated(e)} for e in batch_errors)
        if limit is not None and len(errors) >= limit:
            return errors[:limit]
    return errors
