"""Appeal pages: the borrower's signed-link pages, the reviewers' inbox and appeal page, document serving.

Thin: parse, check the role, call a service or selector, render or redirect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.explain import explain
from accounts.masking import mask_name, mask_phone
from accounts.models import Case, CaseStatus, CreditLine, LineStatus
from accounts.services import ConflictError, DomainError, NotAllowed
from accounts.views import _actor, _forbidden, operator_required
from appeals import replies, selectors, services
from appeals.documents import DocumentRejected, read_uploads
from appeals.forms import AppealDecisionForm, BorrowerAppealForm, MoreInfoForm
from appeals.links import LinkInvalid, read_link
from appeals.models import OPEN_STATES, Appeal, AppealChannel, AppealDocument, AppealReason, AppealStatus
from riskops.audit import Actor, Change, audit_write
from riskops.models import ActorKind

# --- Borrower pages (public, reached by a signed link; Chinese unless the borrower switches)


def _borrower_language(request: HttpRequest) -> str:
    return "en" if request.GET.get("lang") == "en" else "zh-hans"


def _account_tail(account_no: str) -> str:
    return account_no[-4:]


BORROWER = Actor(ActorKind.BORROWER, None, "borrower (signed link)")


def _borrower_submit(request: HttpRequest, call: Callable[[list[tuple[str, bytes]]], object]) -> str:
    """Read the uploaded documents and call the service with them; the message for the borrower, or ""."""
    try:
        call(read_uploads(request.FILES.getlist("documents"), getattr(request, "unsafe_upload_names", [])))
    except (DomainError, DocumentRejected) as exc:
        return str(exc)
    return ""


def _borrower_invalid(request: HttpRequest, error: LinkInvalid) -> HttpResponse:
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
            return _borrower_invalid(request, exc)
        line = get_object_or_404(CreditLine, pk=line_id)
        open_appeal = Appeal.objects.filter(line=line, status__in=OPEN_STATES).order_by("-submitted_at").first()
        has_case = Case.objects.filter(line=line).exclude(status=CaseStatus.RESOLVED).exists()
        form = BorrowerAppealForm(request.POST or None, request.FILES or None)
        error = ""
        if request.method == "POST" and open_appeal is None and form.is_valid():
            error = _borrower_submit(
                request,
                lambda files: services.appeal_submit(
                    line_id=line.pk,
                    reason=form.cleaned_data["reason"],
                    statement=form.cleaned_data["statement"],
                    files=files,
                    channel=AppealChannel.LINK,
                    actor=BORROWER,
                ),
            )
            if not error:
                return redirect(request.get_full_path())
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
                "closed": line.status == LineStatus.CLOSED,
                "has_case": has_case,
                "open_appeal": open_appeal,
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
            return _borrower_invalid(request, exc)
        appeal = get_object_or_404(Appeal.objects.select_related("line"), pk=appeal_id)
        form = MoreInfoForm(request.POST or None, request.FILES or None)
        error = ""
        if request.method == "POST" and appeal.status == AppealStatus.AWAITING_INFO and form.is_valid():
            error = _borrower_submit(
                request,
                lambda files: services.appeal_add_documents(
                    appeal_id=appeal.pk, files=files, note=form.cleaned_data["note"], actor=BORROWER
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


# --- Reviewer pages


@operator_required
@require_GET
def inbox(request: HttpRequest) -> HttpResponse:
    tab = request.GET.get("tab", "open")
    if tab not in selectors.INBOX_TABS:
        tab = "open"
    after = selectors.parse_cursor(request.GET.get("after", ""))
    page = selectors.inbox_page(tab, after=after, page_size=settings.QUEUE_PAGE_SIZE)
    reasons = dict(AppealReason.choices)
    statuses = dict(AppealStatus.choices)
    rows = [
        {
            **a,
            "name": mask_name(a["line__borrower__name"]),
            "phone": mask_phone(a["line__borrower__phone"]),
            "reason_label": reasons[a["reason"]],
            "status_label": statuses[a["status"]],
        }
        for a in page.appeals
    ]
    is_senior = request.user.has_perm("accounts.approve_decision")
    return render(
        request,
        "appeals/inbox.html",
        {
            "tab": tab,
            "rows": rows,
            "next_query": urlencode({"tab": tab, "after": page.next_cursor}) if page.next_cursor else "",
            "counts": selectors.inbox_counts(),
            "alerts": selectors.unread_alerts(request.user.pk or 0) if is_senior else [],
            "rates": selectors.overturn_rates(),
            "due_soon": settings.APPEAL_DUE_SOON_HOURS,
        },
    )


@operator_required
@require_POST
def alerts_read(request: HttpRequest) -> HttpResponse:
    n = services.appeal_alerts_read(actor=_actor(request))
    messages.success(request, _("%(n)d alerts marked as read.") % {"n": n})
    return redirect("appeals:inbox")


def _appeal_context(request: HttpRequest, appeal_id: int, form: AppealDecisionForm | None = None) -> dict[str, Any]:
    try:
        detail = selectors.appeal_detail(appeal_id)
    except Appeal.DoesNotExist:
        raise Http404(_("No such appeal")) from None
    appeal = detail.appeal
    user = request.user
    d = detail.case
    templates = replies.reply_templates(appeal.reason)
    return {
        "appeal": appeal,
        "documents": detail.documents,
        "others": detail.others,
        "d": d,
        "case": d.case,
        "line": d.line,
        "borrower": d.line.borrower,
        "explained": [(s, explain(s), d.evidence.get(s.pk, {})) for s in d.signals],
        "templates": templates,
        "form": form,
        "version": appeal.version,
        "can_decide": user.has_perm("accounts.decide_case") and appeal.status == AppealStatus.OPEN,
        "can_approve": user.has_perm("accounts.approve_decision"),
        "four_eyes_limit": settings.FOUR_EYES_LIMIT,
        "paused": appeal.status == AppealStatus.AWAITING_INFO,
        "due_soon": settings.APPEAL_DUE_SOON_HOURS,
        "documents_added_later": any(doc.round for doc in detail.documents),
        "link_days": settings.APPEAL_LINK_DAYS,
    }


@operator_required
@require_GET
def appeal_page(request: HttpRequest, appeal_id: int) -> HttpResponse:
    return render(request, "appeals/appeal.html", _appeal_context(request, appeal_id))


@operator_required
@require_POST
def appeal_decide(request: HttpRequest, appeal_id: int) -> HttpResponse:
    form = AppealDecisionForm(request.POST)
    if not form.is_valid():
        return render(request, "appeals/appeal.html", _appeal_context(request, appeal_id, form), status=400)
    data = form.cleaned_data
    try:
        appeal = services.appeal_decide(
            appeal_id=appeal_id,
            actor=_actor(request),
            outcome=data["outcome"],
            reply=data["reply"],
            new_limit=data["new_limit"],
            expected_version=data["version"],
        )
    except NotAllowed as exc:
        return _forbidden(request, str(exc))
    except ConflictError as exc:
        messages.warning(request, str(exc))
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        if appeal.status == AppealStatus.AWAITING_APPROVAL:
            messages.success(request, _("Proposed; a second senior reviewer must approve it on the case page."))
        else:
            messages.success(
                request, _("Appeal %(status)s; the borrower will be told.") % {"status": appeal.get_status_display()}
            )
    return redirect("appeals:appeal", appeal_id=appeal_id)


@operator_required
@require_GET
def document(request: HttpRequest, document_id: int) -> HttpResponse:
    """A document, only for operators: its checked type, never sniffed, never run by the browser."""
    doc = get_object_or_404(AppealDocument.objects.select_related("appeal"), pk=document_id)
    path = services.documents_root() / doc.stored_name
    if not path.is_file():
        raise Http404(_("The document's file is missing"))
    download = request.GET.get("download") == "1"
    audit_write(
        actor=_actor(request),
        at=timezone.now(),
        changes=[Change("document.view", "appeal_document", doc.pk, doc.appeal.line_id, None, None, "")],
    )
    response = FileResponse(
        path.open("rb"), content_type=doc.content_type, as_attachment=download, filename=doc.original_name
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    # Nothing in a document may run or load anything; images are also sandboxed (Chrome's PDF viewer is not).
    response["Content-Security-Policy"] = "default-src 'none'" + ("; sandbox" if doc.is_image else "")
    return response  # type: ignore[return-value]  # a streaming response; Django serves it like any other
