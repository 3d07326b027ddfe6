"""The reviewers' pages: the appeals inbox, the appeal page beside the case's evidence, deciding, documents."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.explain import explain
from accounts.masking import mask_name, mask_phone
from appeals import replies, selectors, services
from appeals.forms import AppealDecisionForm
from appeals.models import Appeal, AppealDocument, AppealReason, AppealStatus
from riskops.core.audit import Change, audit_write
from riskops.core.http import actor, domain_errors, operator_required
from riskops.core.roles import APPROVE_DECISION, DECIDE_CASE


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
    is_senior = request.user.has_perm(APPROVE_DECISION)
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
@domain_errors(lambda request: reverse("appeals:inbox"))
def alerts_read(request: HttpRequest) -> HttpResponse:
    n = services.appeal_alerts_read(actor=actor(request))
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
    return {
        "appeal": appeal,
        "documents": detail.documents,
        "others": detail.others,
        "d": d,
        "case": d.case,
        "line": d.line,
        "borrower": d.line.borrower,
        "explained": [(s, explain(s), d.evidence.get(s.pk, {})) for s in d.signals],
        "templates": replies.reply_templates(appeal.reason),
        "form": form,
        "version": appeal.version,
        "can_decide": user.has_perm(DECIDE_CASE) and appeal.status == AppealStatus.OPEN,
        "can_approve": user.has_perm(APPROVE_DECISION),
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
@domain_errors(lambda request, appeal_id: reverse("appeals:appeal", args=[appeal_id]))
def appeal_decide(request: HttpRequest, appeal_id: int) -> HttpResponse:
    form = AppealDecisionForm(request.POST)
    if not form.is_valid():
        return render(request, "appeals/appeal.html", _appeal_context(request, appeal_id, form), status=400)
    data = form.cleaned_data
    appeal = services.appeal_decide(
        appeal_id=appeal_id,
        actor=actor(request),
        outcome=data["outcome"],
        reply=data["reply"],
        new_limit=data["new_limit"],
        expected_version=data["version"],
    )
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
        actor=actor(request),
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
