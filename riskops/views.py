from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Case
from accounts.services import DomainError, NotAllowed
from accounts.views import operator_required
from riskops import jobs as job_services
from riskops.audit import Actor
from riskops.forms import JobForm
from riskops.models import JOB_ACTIVE, Job, JobItem, JobItemOutcome, JobSelection, JobStatus

JOBS_PAGE = 50


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """For load balancers and `make run`: the database answers."""
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    return JsonResponse({"ok": True})


# --- Jobs: the list with live progress, one job, and starting, approving and cancelling them.


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
        "can_approve": request.user.has_perm("accounts.approve_decision"),
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
        "can_approve": request.user.has_perm("accounts.approve_decision") and job.requested_by_id != request.user.pk,
        "can_cancel": job.status in JOB_ACTIVE
        and (job.requested_by_id == request.user.pk or request.user.has_perm("accounts.approve_decision")),
    }
    template = "riskops/_job_progress.html" if request.htmx else "riskops/job.html"  # type: ignore[attr-defined]
    return render(request, template, context)


@operator_required
@require_POST
def job_new(request: HttpRequest) -> HttpResponse:
    form = JobForm(request.POST)
    back = request.POST.get("next") or reverse("riskops:jobs")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("riskops:jobs")
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
        return redirect(back)
    data = form.cleaned_data
    if data["selection_kind"] == JobSelection.IDS:
        line_ids = [data["line_id"]] if data.get("line_id") else []
        line_ids += list(Case.objects.filter(pk__in=data["case_ids"]).values_list("line_id", flat=True))
        selection: dict[str, Any] = {"line_ids": line_ids}
    elif data["selection_kind"] == JobSelection.FILTER:
        selection = data["filter"]
    else:
        selection = {}
    try:
        job = job_services.job_request(
            kind=data["kind"],
            selection_kind=data["selection_kind"],
            selection=selection,
            actor=Actor.operator(request.user),
            reason=data["reason"],
        )
    except NotAllowed as exc:
        return render(request, "accounts/forbidden.html", {"message": str(exc)}, status=403)
    except DomainError as exc:
        messages.error(request, str(exc))
        return redirect(back)
    if job.status == JobStatus.AWAITING_APPROVAL:
        messages.info(request, _("Job #%(id)s waits for a second senior reviewer's approval.") % {"id": job.pk})
    else:
        messages.success(request, _("Job #%(id)s started.") % {"id": job.pk})
    return redirect("riskops:job", job_id=job.pk)


def _job_act(request: HttpRequest, job_id: int, call: Any, success: str) -> HttpResponse:
    try:
        call(job_id=job_id, actor=Actor.operator(request.user))
    except NotAllowed as exc:
        return render(request, "accounts/forbidden.html", {"message": str(exc)}, status=403)
    except DomainError as exc:
        messages.warning(request, str(exc))
    else:
        messages.success(request, success)
    return redirect("riskops:job", job_id=job_id)


@operator_required
@require_POST
def job_approve(request: HttpRequest, job_id: int) -> HttpResponse:
    return _job_act(request, job_id, job_services.job_approve, _("Job approved; it runs now."))


@operator_required
@require_POST
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    return _job_act(request, job_id, job_services.job_cancel, _("Job cancelled."))
