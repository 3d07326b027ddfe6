"""The borrower's pages, reached by the signed links in their messages: appeal, and answer a request for more
information. Phone-sized, in Chinese unless the borrower switches (`?lang=en`)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import translation
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts.models import CreditLine, LineStatus
from appeals import services
from appeals.documents import read_uploads
from appeals.forms import BorrowerAppealForm, MoreInfoForm
from appeals.links import LinkInvalid, read_link
from appeals.models import Appeal, AppealChannel, AppealStatus
from riskops.core.audit import Actor
from riskops.core.http import attempt, client_address

BORROWER = "borrower (signed link)"  # who acts, in the audit trail (translated there)


def _borrower(request: HttpRequest) -> Actor:
    return Actor.borrower(BORROWER, client_address(request))


def _borrower_language(request: HttpRequest) -> str:
    return "en" if request.GET.get("lang") == "en" else "zh-hans"


def _account_tail(account_no: str) -> str:
    return account_no[-4:]


def _with_documents(request: HttpRequest, call: Callable[[list[tuple[str, bytes]]], object]) -> str:
    """Read the uploaded documents and call the service with them; the message for the borrower, or ""."""
    return attempt(
        lambda: call(read_uploads(request.FILES.getlist("documents"), getattr(request, "unsafe_upload_names", [])))
    )


def _invalid(request: HttpRequest, error: LinkInvalid) -> HttpResponse:
    return render(
        request, "appeals/borrower_invalid.html", {"expired": error.expired}, status=410 if error.expired else 404
    )


@never_cache
@require_http_methods(["GET", "POST"])
def borrower_appeal(request: HttpRequest, token: str) -> HttpResponse:
    with translation.override(_borrower_language(request)):
        try:
            line_id = read_link(token, "l")
        except LinkInvalid as exc:
            return _invalid(request, exc)
        line = get_object_or_404(CreditLine, pk=line_id)
        form = BorrowerAppealForm(request.POST or None, request.FILES or None)
        error = ""
        eligibility = services.appeal_eligibility(line.pk)
        if request.method == "POST" and eligibility.open_appeal is None and form.is_valid():
            error = _with_documents(
                request,
                lambda files: services.appeal_submit(
                    line_id=line.pk,
                    reason=form.cleaned_data["reason"],
                    statement=form.cleaned_data["statement"],
                    files=files,
                    channel=AppealChannel.LINK,
                    actor=_borrower(request),
                ),
            )
            if not error:
                return redirect(request.get_full_path())
            eligibility = services.appeal_eligibility(line.pk)
        status = 400 if (request.method == "POST" and (error or form.errors)) else 200
        return render(
            request,
            "appeals/borrower_appeal.html",
            {
                "form": form,
                "error": error,
                "tail": _account_tail(line.account_no),
                "line": line,
                "frozen": line.status == LineStatus.FROZEN,
                "open_appeal": eligibility.open_appeal,
                "refusal": eligibility.refusal,
                "lang": translation.get_language(),
                "sla_hours": settings.APPEAL_SLA_HOURS,
            },
            status=status,
        )


@never_cache
@require_http_methods(["GET", "POST"])
def borrower_more_info(request: HttpRequest, token: str) -> HttpResponse:
    with translation.override(_borrower_language(request)):
        try:
            appeal_id = read_link(token, "a")
        except LinkInvalid as exc:
            return _invalid(request, exc)
        appeal = get_object_or_404(Appeal.objects.select_related("line"), pk=appeal_id)
        form = MoreInfoForm(request.POST or None, request.FILES or None)
        error = ""
        if request.method == "POST" and appeal.status == AppealStatus.AWAITING_INFO and form.is_valid():
            error = _with_documents(
                request,
                lambda files: services.appeal_add_documents(
                    appeal_id=appeal.pk, files=files, note=form.cleaned_data["note"], actor=_borrower(request)
                ),
            )
            if not error:
                return redirect(request.get_full_path())
        status = 400 if (request.method == "POST" and (error or form.errors)) else 200
        return render(
            request,
            "appeals/borrower_more_info.html",
            {
                "form": form,
                "error": error,
                "appeal": appeal,
                "tail": _account_tail(appeal.line.account_no),
                "waiting": appeal.status == AppealStatus.AWAITING_INFO,
                "lang": translation.get_language(),
            },
            status=status,
        )
