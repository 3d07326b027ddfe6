"""The reviewers' pages: the appeals inbox, the appeal page beside the case's evidence, deciding, documents."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_POST

from accounts.explain import explain
from accounts.masking import mask_name, mask_phone
from appeals import replies, selectors, services
from appeals.documents import document_response
from appeals.forms import INBOX_TABS, AppealDecisionForm, InboxActionForm, InboxFilterForm
from appeals.models import Appeal, AppealDocument, AppealReason, AppealStatus
from appeals.services.review import appeal_claim_next, appeals_assign, appeals_claim
from riskops.core.audit import Change, audit_write
from riskops.core.http import actor, domain_errors, operator_required
from riskops.core.roles import APPROVE_DECISION, ASSIGN_CASE, DECIDE_CASE

# The tab each status filter belongs to (none for "any status").
_TAB_OF_STATUS: dict[str, str | None] = {
    "": "",
    "awaiting_approval": "",
    "awaiting_info": "awaiting_info",
    "all": None,
    **dict.fromkeys(("decided", *selectors.DECIDED_STATES), "decided"),
}
# Links of the inbox before it had filters (?tab=...), as their status.
_OLD_TABS = {"open": "", "awaiting_info": "awaiting_info", "decided": "decided"}


def _inbox_params(request: HttpRequest) -> QueryDict:
    params = request.GET.copy()
    old = _OLD_TABS.get(str(params.pop("tab", [""])[-1]))
    if old is not None and "status" not in params:
        params["status"] = old
    return params


def _filter_query(params: QueryDict, **extra: str) -> str:
    """The filter as a query string (what links and forms carry), without the page's cursor."""
    kept = {k: params[k] for k in InboxFilterForm.base_fields if params.get(k) and k not in extra}
    return urlencode({**kept, **{k: v for k, v in extra.items() if v}})


@operator_required
@require_GET
def inbox(request: HttpRequest) -> HttpResponse:
    params = _inbox_params(request)
    operators = selectors.operators_for_appeals()
    form = InboxFilterForm(params or None, operators=operators)
    filters = form.filters()
    page = selectors.inbox_page(
        filters,
        user_id=request.user.pk,
        after=selectors.parse_cursor(params.get("after", "")),
        before=selectors.parse_cursor(params.get("before", "")),
        page_size=settings.QUEUE_PAGE_SIZE,
    )
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
    user = request.user
    is_senior = user.has_perm(APPROVE_DECISION)
    query = _filter_query(params)
    current_tab = _TAB_OF_STATUS.get(filters.status)
    return render(
        request,
        "appeals/inbox.html",
        {
            "form": form,
            "values": {k: params.get(k, "") for k in InboxFilterForm.base_fields},
            "select_fields": [(n, form.fields[n]) for n in ("status", "reason", "sla", "assignee")],
            "tabs": [
                (label, "?" + _filter_query(params, status=value), value == current_tab) for value, label in INBOX_TABS
            ],
            "rows": rows,
            "query": query,
            **_figure_context(filters, request.user.pk),
            "next_query": _filter_query(params, after=page.next_cursor) if page.next_cursor else "",
            "prev_query": _filter_query(params, before=page.prev_cursor) if page.prev_cursor else "",
            "narrowed": filters != selectors.InboxFilters(),
            "paged": bool(params.get("after") or params.get("before")),
            "can_decide": user.has_perm(DECIDE_CASE),
            "operators": operators if user.has_perm(ASSIGN_CASE) else [],
            "counts": selectors.inbox_counts(),
            "alerts": selectors.unread_alerts(user.pk or 0) if is_senior else [],
            "rates": selectors.overturn_rates(),
            "due_soon": settings.APPEAL_DUE_SOON_HOURS,
        },
    )


def _back_to_inbox(request: HttpRequest) -> str:
    query = request.POST.get("query", "")
    return reverse("appeals:inbox") + (f"?{query}" if query else "")


@operator_required
@require_POST
@domain_errors(_back_to_inbox)
def inbox_next(request: HttpRequest) -> HttpResponse:
    """Claim the appeal nearest its deadline that nobody holds, within the inbox's current filter (`query`)."""
    form = InboxFilterForm(QueryDict(request.POST.get("query", "")), operators=selectors.operators_for_appeals())
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
        return redirect(_back_to_inbox(request))
    filters = form.filters()
    narrowed = filters != selectors.InboxFilters()
    within = Q(pk__in=selectors.inbox_queryset(filters, user_id=request.user.pk).values("pk")) if narrowed else None
    appeal = appeal_claim_next(actor=actor(request), within=within)
    if appeal is None:
        if narrowed:
            messages.info(request, _("No unclaimed appeal is left in this filter."))
        else:
            messages.info(request, _("No unclaimed appeal is waiting for review."))
        return redirect(_back_to_inbox(request))
    return redirect("appeals:appeal", appeal_id=appeal.pk)


@operator_required
@require_POST
@domain_errors(_back_to_inbox)
def inbox_assign(request: HttpRequest) -> HttpResponse:
    """Claim, assign or release the selected appeals (their cases)."""
    form = InboxActionForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
        return redirect(_back_to_inbox(request))
    data = form.cleaned_data
    ids = data["appeal_ids"]
    if data["action"] == "claim":
        changed = appeals_claim(appeal_ids=ids, actor=actor(request))
        n = len(changed)
        messages.success(request, ngettext("%(n)d appeal claimed.", "%(n)d appeals claimed.", n) % {"n": n})
        left = len(set(ids)) - n
        if left:
            messages.warning(
                request,
                ngettext(
                    "%(n)d appeal was not claimed: someone else holds it, it was decided, or a senior reviewer "
                    "decides it.",
                    "%(n)d appeals were not claimed: someone else holds them, they were decided, or a senior "
                    "reviewer decides them.",
                    left,
                )
                % {"n": left},
            )
    elif data["action"] == "assign":
        n = len(appeals_assign(appeal_ids=ids, assignee_id=data["assignee"], actor=actor(request)))
        messages.success(request, ngettext("%(n)d appeal assigned.", "%(n)d appeals assigned.", n) % {"n": n})
    else:
        n = len(appeals_assign(appeal_ids=ids, assignee_id=None, actor=actor(request)))
        messages.success(request, ngettext("%(n)d appeal released.", "%(n)d appeals released.", n) % {"n": n})
    return redirect(_back_to_inbox(request))


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
        # Someone else's appeal (its case's claim) is theirs to decide (accounts.services.cases.require_may_work).
        "can_decide": user.has_perm(DECIDE_CASE)
        and appeal.status == AppealStatus.OPEN
        and (d.case.assignee_id in (None, user.pk) or user.has_perm(ASSIGN_CASE)),
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
    # PDFs always download: under the sandbox below Chrome refuses to run its PDF viewer, and a PDF is better read
    # in the reviewer's own viewer than in the console's origin. Images show inline (the appeal page's previews).
    download = request.GET.get("download") == "1" or not doc.is_image
    audit_write(
        actor=actor(request),
        at=timezone.now(),
        changes=[Change("document.view", "appeal_document", doc.pk, doc.appeal.line_id, None, None, "")],
    )
    return document_response(path, doc.content_type, doc.original_name, download=download)


APPEAL_FIGURE_LABELS = {
    "appeal_received": gettext_lazy("appeals received"),
    "appeal_decided": gettext_lazy("appeals decided"),
}
APPEAL_KEY_LABELS = {"in_sla": gettext_lazy("within the SLA"), "late": gettext_lazy("after the SLA")}


def _figure_context(filters: selectors.InboxFilters, user_id: int | None) -> dict[str, Any]:
    """A dashboard drill-down: the figure in words and how many appeals it has (to read against the dashboard)."""
    if not filters.figure:
        return {"figure_label": ""}
    parts = [str(APPEAL_FIGURE_LABELS[filters.figure])]
    if filters.figure_key:
        parts.append(str(APPEAL_KEY_LABELS[filters.figure_key]))
    days = str(filters.figure_from)
    parts.append(days if filters.figure_from == filters.figure_to else f"{days} – {filters.figure_to}")
    return {
        "figure_label": " · ".join(parts),
        "figure_count": selectors.inbox_queryset(filters, user_id=user_id).count(),
        "figure_fields": ("figure", "figure_from", "figure_to", "figure_key"),
    }
