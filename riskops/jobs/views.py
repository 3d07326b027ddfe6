"""The jobs pages: the list with live progress (htmx polling), one job, and starting, approving, cancelling."""

from __future__ import annotations

import csv
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import Case, Simulation
from ingest.parsing import KIND_LABELS, KINDS
from riskops.core.http import actor, domain_errors, forbidden, operator_required, safe_next
from riskops.core.roles import APPROVE_DECISION, INGEST_EVENTS
from riskops.jobs import requests
from riskops.jobs.forms import JobForm
from riskops.jobs.selectors import import_errors, unfreeze_preview
from riskops.models import JOB_ACTIVE, Job, JobItem, JobItemOutcome, JobKind, JobSelection, JobStatus

JOBS_PAGE = 50


def _job_rows(jobs: list[Any], now: datetime) -> list[dict[str, Any]]:
    """Progress figures for display: percent, rate (accounts/s) and ETA."""
    rows = []
    for job in jobs:
        percent = int(100 * job.done / job.selected) if job.selected else (100 if job.finished_at else 0)
        rate = eta = None
        if job.started_at and job.done:
            elapsed = ((job.finished_at or now) - job.started_at).total_seconds()
            rate = job.done / elapsed if elapsed > 0 else None
            if rate and job.status == JobStatus.RUNNING:
                eta = int((job.selected - job.done) / rate)
        rows.append({"job": job, "percent": percent, "rate": rate, "eta": eta})
    return rows


@operator_required
@require_GET
def jobs(request: HttpRequest) -> HttpResponse:
    before = request.GET.get("before", "")
    qs = Job.objects.select_related("requested_by", "approved_by").order_by("-id")
    if before.isdigit():
        qs = qs.filter(pk__lt=int(before))
    page = list(qs[: JOBS_PAGE + 1])
    more = len(page) > JOBS_PAGE
    page = page[:JOBS_PAGE]
    context = {
        "rows": _job_rows(page, timezone.now()),
        "active": any(j.status in JOB_ACTIVE for j in page),
        "older": page[-1].pk if more else None,
        "can_approve": request.user.has_perm(APPROVE_DECISION),
    }
    template = "riskops/_jobs_table.html" if request.htmx else "riskops/jobs.html"  # type: ignore[attr-defined]
    return render(request, template, context)


@operator_required
@require_GET
def job_page(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job.objects.select_related("requested_by", "approved_by", "cancelled_by"), pk=job_id)
    failures = list(
        JobItem.objects.filter(job=job, outcome=JobItemOutcome.FAILED).select_related("line").order_by("line_id")[:200]
    )
    context = {
        "row": _job_rows([job], timezone.now())[0],
        "job": job,
        "failures": failures,
        "import_errors": import_errors(job.pk, limit=200) if job.kind == JobKind.IMPORT else [],
        "preview": unfreeze_preview(job) if job.status == JobStatus.AWAITING_APPROVAL else None,
        "simulation_id": Simulation.objects.filter(job_id=job.pk).values_list("pk", flat=True).first()
        if job.kind == JobKind.SIMULATE
        else None,
        "can_approve": request.user.has_perm(APPROVE_DECISION) and job.requested_by_id != request.user.pk,
        "can_cancel": job.status in JOB_ACTIVE
        and (job.requested_by_id == request.user.pk or request.user.has_perm(APPROVE_DECISION)),
    }
    template = "riskops/_job_progress.html" if request.htmx else "riskops/job.html"  # type: ignore[attr-defined]
    return render(request, template, context)


def _back(request: HttpRequest, **_kwargs: Any) -> str:
    return safe_next(request, reverse("riskops:jobs"))


@operator_required
@require_http_methods(["GET", "POST"])
@domain_errors(lambda _request, **_kw: reverse("riskops:job_import"))
def job_import(request: HttpRequest) -> HttpResponse:
    """The Import page (risk managers and admins): upload a file, which runs as an import job."""
    if not request.user.has_perm(INGEST_EVENTS):
        return forbidden(request, _("Your role cannot import files"))
    if request.method == "GET":
        context = {
            "kinds": [(kind, KIND_LABELS[kind]) for kind in KINDS],
            "max_mb": settings.IMPORT_MAX_BYTES // 1048576,
        }
        return render(request, "riskops/import.html", context)
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, _("Choose a file to import"))
        return redirect("riskops:job_import")
    job = requests.job_request_import(
        name=upload.name or "upload",
        chunks=upload.chunks(),
        size=upload.size or 0,
        kind=request.POST.get("kind", ""),
        backfill=request.POST.get("backfill") == "on",
        actor=actor(request),
    )
    messages.success(request, _("Import job #%(id)s started.") % {"id": job.pk})
    return redirect("riskops:job", job_id=job.pk)


@operator_required
@require_GET
def job_errors_csv(request: HttpRequest, job_id: int) -> HttpResponse:
    """An import job's error report: line, field, message, one row per error."""
    job = get_object_or_404(Job, pk=job_id, kind=JobKind.IMPORT)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="job-{job.pk}-errors.csv"'
    response.write("\ufeff")  # Excel reads UTF-8 (the messages quote Chinese names) only with the mark
    writer = csv.writer(response)
    writer.writerow(["line", "field", "message"])
    writer.writerows([e["index"], e["field"], e["message"]] for e in requests.job_errors_export(job, actor(request)))
    return response


@operator_required
@require_POST
@domain_errors(_back)
def job_new(request: HttpRequest) -> HttpResponse:
    form = JobForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
        return redirect(_back(request))
    data = form.cleaned_data
    if data["selection_kind"] == JobSelection.IDS:
        line_ids = [data["line_id"]] if data.get("line_id") else []
        line_ids += list(Case.objects.filter(pk__in=data["case_ids"]).values_list("line_id", flat=True))
        selection: dict[str, Any] = {"line_ids": line_ids}
    elif data["selection_kind"] == JobSelection.FILTER:
        selection = data["filter"]
    else:
        selection = {}
    job = requests.job_request(
        kind=data["kind"],
        selection_kind=data["selection_kind"],
        selection=selection,
        actor=actor(request),
        reason=data["reason"],
    )
    if job.status == JobStatus.AWAITING_APPROVAL:
        messages.info(request, _("Job #%(id)s waits for a second senior reviewer's approval.") % {"id": job.pk})
    else:
        messages.success(request, _("Job #%(id)s started.") % {"id": job.pk})
    return redirect("riskops:job", job_id=job.pk)


def _to_job(request: HttpRequest, job_id: int) -> str:
    return reverse("riskops:job", args=[job_id])


@operator_required
@require_POST
@domain_errors(_to_job)
def job_approve(request: HttpRequest, job_id: int) -> HttpResponse:
    requests.job_approve(job_id=job_id, actor=actor(request))
    messages.success(request, _("Job approved; it runs now."))
    return redirect("riskops:job", job_id=job_id)


@operator_required
@require_POST
@domain_errors(_to_job)
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    requests.job_cancel(job_id=job_id, actor=actor(request))
    messages.success(request, _("Job cancelled."))
    return redirect("riskops:job", job_id=job_id)
