"""The borrower's pages, reached by the signed links in their messages: the line's status (why, what to do, the
appeal's progress), the profile update, the appeal, and the answer to a request for more information.
Phone-sized, in Chinese unless the borrower switches (`?lang=en`). And, for operators, a profile update's document.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import CreditLine, LineStatus, RuleCode
from accounts.selectors.borrower import BorrowerStatus, borrower_status
from appeals import services as appeals
from appeals.documents import document_response, read_uploads
from appeals.forms import BorrowerAppealForm, MoreInfoForm
from appeals.links import LinkInvalid, read_link
from appeals.models import Appeal, AppealChannel, AppealStatus
from portal import services
from portal.forms import ProfileUpdateForm
from portal.models import ProfileDocument
from riskops.core.audit import Actor, Change, audit_write
from riskops.core.http import actor, attempt, client_address, operator_required

BORROWER = "borrower (signed link)"  # who acts, in the audit trail (translated there)


def _borrower(request: HttpRequest) -> Actor:
    return Actor.borrower(BORROWER, client_address(request))


# Link previews fetch a message's link before anyone taps it (messaging apps, crawlers): their user agents.
_PREVIEW_AGENTS = re.compile(
    r"bot|crawl|spider|preview|facebookexternalhit|whatsapp|telegram|slack|discord|skypeuri|curl|wget|python-requests",
    re.IGNORECASE,
)


def _is_preview(request: HttpRequest) -> bool:
    agent = request.headers.get("user-agent", "")
    return bool(_PREVIEW_AGENTS.search(agent))


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
    return render(request, "portal/invalid.html", {"expired": error.expired}, status=410 if error.expired else 404)


def _status_page(
    request: HttpRequest,
    line: CreditLine,
    *,
    appeal_form: BorrowerAppealForm | None = None,
    profile_form: ProfileUpdateForm | None = None,
    error: str = "",
    profile_error: str = "",
    status_code: int = 200,
) -> HttpResponse:
    status: BorrowerStatus = borrower_status(line)
    eligibility = appeals.appeal_eligibility(line.pk)
    services.status_view(status=status, actor=_borrower(request), preview=_is_preview(request))
    stale = any(r.code == RuleCode.PROFILE_STALE and r.holds for r in status.reasons)
    return render(
        request,
        "portal/status.html",
        {
            "status": status,
            "form": appeal_form or BorrowerAppealForm(),
            "profile_form": profile_form or ProfileUpdateForm(),  # nothing of the profile is shown on a link
            "show_profile": stale or profile_form is not None,
            "error": error,
            "profile_error": profile_error,
            "tail": _account_tail(line.account_no),
            "line": line,
            "frozen": line.status == LineStatus.FROZEN,
            "open_appeal": eligibility.open_appeal,
            "refusal": eligibility.refusal,
            "lang": translation.get_language(),
            "sla_hours": settings.APPEAL_SLA_HOURS,
            "updated": request.GET.get("updated") == "1",
        },
        status=status_code,
    )


def _line_of(token: str) -> CreditLine:
    line_id = read_link(token, "l")
    return get_object_or_404(CreditLine.objects.select_related("borrower"), pk=line_id)


@never_cache
@require_http_methods(["GET", "POST"])
def status(request: HttpRequest, token: str) -> HttpResponse:
    """The line's status: why it is frozen or cut, what to do, the appeal's progress; the appeal form (POST)."""
    with translation.override(_borrower_language(request)):
        try:
            line = _line_of(token)
        except LinkInvalid as exc:
            return _invalid(request, exc)
        if request.method != "POST":
            return _status_page(request, line)
        form = BorrowerAppealForm(request.POST, request.FILES)
        error = ""
        if appeals.appeal_eligibility(line.pk).open_appeal is None and form.is_valid():
            error = _with_documents(
                request,
                lambda files: appeals.appeal_submit(
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
        failed = bool(error or form.errors)
        return _status_page(request, line, appeal_form=form, error=error, status_code=400 if failed else 200)


@never_cache
@require_POST
def profile(request: HttpRequest, token: str) -> HttpResponse:
    """The borrower updates employer and income (with a proof of income when it changed); evaluated at once."""
    with translation.override(_borrower_language(request)):
        try:
            line = _line_of(token)
        except LinkInvalid as exc:
            return _invalid(request, exc)
        form = ProfileUpdateForm(request.POST, request.FILES)
        if not form.is_valid():
            return _status_page(request, line, profile_form=form, status_code=400)
        error = _with_documents(
            request,
            lambda files: services.profile_update(
                line_id=line.pk,
                employer=form.cleaned_data["employer"],
                monthly_income=form.cleaned_data["monthly_income"],
                files=files,
                actor=_borrower(request),
            ),
        )
        if error:
            return _status_page(request, line, profile_form=form, profile_error=error, status_code=400)
        query = "?updated=1" + ("&lang=en" if translation.get_language() == "en" else "")
        return redirect(request.path.removesuffix("profile/") + query)


@never_cache
@require_http_methods(["GET", "POST"])
def more_info(request: HttpRequest, token: str) -> HttpResponse:
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
                lambda files: appeals.appeal_add_documents(
                    appeal_id=appeal.pk, files=files, note=form.cleaned_data["note"], actor=_borrower(request)
                ),
            )
            if not error:
                return redirect(request.get_full_path())
        status_code = 400 if (request.method == "POST" and (error or form.errors)) else 200
        return render(
            request,
            "portal/more_info.html",
            {
                "form": form,
                "error": error,
                "appeal": appeal,
                "tail": _account_tail(appeal.line.account_no),
                "waiting": appeal.status == AppealStatus.AWAITING_INFO,
                "lang": translation.get_language(),
            },
            status=status_code,
        )


@operator_required
@require_GET
def profile_document(request: HttpRequest, document_id: int) -> HttpResponse:
    """A profile update's document, for operators only, served as an appeal's is (audited, sandboxed)."""
    doc = get_object_or_404(ProfileDocument, pk=document_id)
    path = appeals.documents_root() / doc.stored_name
    if not path.is_file():
        raise Http404(_("The document's file is missing"))
    audit_write(
        actor=actor(request),
        at=timezone.now(),
        changes=[Change("document.view", "profile_document", doc.pk, doc.line_id, None, None, "")],
    )
    return document_response(
        path, doc.content_type, doc.original_name, download=request.GET.get("download") == "1" or not doc.is_image
    )
