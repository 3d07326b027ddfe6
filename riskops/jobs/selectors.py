"""Reads of jobs that span their models."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, OuterRef, Subquery, Sum
from django.db.models.expressions import RawSQL

from accounts.models import Case, CaseStatus, CreditLine, LineStatus
from accounts.queue_filters import queue_filters
from accounts.selectors.queue import queue_queryset
from ingest.models import IngestBatch
from ingest.parsing import translated
from riskops.core.sql import id_array
from riskops.models import Job, JobBatch, JobBatchStatus, JobItem, JobItemOutcome, JobSelection


def selection_sql(selection_kind: str, selection: dict[str, Any]) -> tuple[str, list[Any]]:
    """SQL returning the selected line ids (one column, maybe repeated), and its parameters."""
    if selection_kind == JobSelection.ALL:
        return f"SELECT id FROM {CreditLine._meta.db_table} WHERE status IN ('active', 'frozen')", []  # noqa: S608 - table names from the models, values bound
    if selection_kind == JobSelection.IDS:
        return "SELECT unnest(%s::bigint[])", [id_array(selection["line_ids"])]
    queryset = queue_queryset(queue_filters(selection), user_id=selection.get("_user_id"))
    sql, params = queryset.values_list("line_id").query.sql_with_params()
    return sql, list(params)


@dataclass
class UnfreezePreview:
    """What a job waiting for approval may unfreeze, read now (its selection is read again when it starts)."""

    accounts: int
    exposure: Decimal  # their outstanding principal
    rows: list[dict[str, Any]]  # the first of them: account, exposure, limit, its open case


def unfreeze_preview(job: Job, *, limit: int = 50) -> UnfreezePreview:
    """The frozen accounts of the job's selection, the biggest exposure first, for the approver."""
    sql, params = selection_sql(job.selection_kind, job.selection)
    frozen = CreditLine.objects.filter(status=LineStatus.FROZEN, id__in=RawSQL(sql, params))  # noqa: S611 - the selection's SQL, values bound
    totals = frozen.aggregate(n=Count("id"), exposure=Sum("outstanding"))
    open_case = Case.objects.filter(line_id=OuterRef("pk")).exclude(status=CaseStatus.RESOLVED).order_by("-id")
    rows = [
        dict(row)
        for row in frozen.annotate(case_id=Subquery(open_case.values("id")[:1]))
        .order_by("-outstanding", "id")
        .values("account_no", "outstanding", "limit", "case_id")[:limit]
    ]
    return UnfreezePreview(totals["n"], totals["exposure"] or Decimal("0"), rows)


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
