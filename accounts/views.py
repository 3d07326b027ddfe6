"""Pages of the case review: the queue and the case page. Thin: parse, check role, call, render or redirect."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts import engine, selectors, services
from accounts.explain import explain
from accounts.forms import BulkForm, DecisionForm, NoteForm, QueueFilterForm, RevealForm, ReviewForm
from accounts.masking import mask_name, mask_phone
from accounts.models import Case, CaseStatus, Decision, LineStatus, SignalStatus
from appeals.models import AppealStatus
from riskops.audit import Actor
from riskops.models import JobKind
from riskops.roles import ROLES, load_roles_and_permissions
from riskops.templatetags.riskops import money, sla


def operator_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Logged in and holding one of the operator roles (auditors included: they read)."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not (user.is_superuser or load_roles_and_permissions(user) & set(ROLES)):  # type: ignore[arg-type]
            return HttpResponseForbidden(_("Your account has no operator role."))
        return view(request, *args, **kwargs)

    return wrapper


def _actor(request: HttpRequest) -> Actor:
    return Actor.operator(request.user)  # type: ignore[arg-type]


def _forbidden(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "accounts/forbidden.html", {"message": message}, status=403)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return redirect("accounts:queue")


@operator_required
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    form = QueueFilterForm(request.GET or None)
    filters = selectors.QueueFilters()
    if form.is_bound and form.is_valid():
        filters = selectors.QueueFilters(**form.cleaned_data)
    after = selectors.parse_cursor(request.GET.get("after", ""))
    page = selectors.queue_page(filters, user_id=request.user.pk, after=after, page_size=settings.QUEUE_PAGE_SIZE)
    kept = {k: v for k, v in request.GET.items() if k != "after" and v}
    return render(
        request,
        "accounts/queue.html",
        {
            "form": form if form.is_bound else QueueFilterForm(),
            "values": {k: request.GET.get(k, "") for k in QueueFilterForm.base_fields},
            "select_fields": [(n, form.fields[n]) for n in ("status", "family", "tier", "assignee", "sla", "appeal")],
            "page": page,
            "rows": _queue_rows(page.cases),
            "query": urlencode(kept),
            "operators": selectors.operators_for_assignment() if request.user.has_perm("accounts.assign_case") else [],
            "can_decide": request.user.has_perm("accounts.decide_case"),
            "job_kinds": JobKind.choices,
        },
    )


def _queue_rows(cases: list[dict[str, Any]]) -> list[SafeString]:
    """The queue's rows as escaped HTML, built here rather than in the template.

    The queue is read all day; Django's template engine spent about 10 ms of a 25 ms page on these 50 rows, this
    loop about 2 ms. Every value goes through format_html, so it is escaped exactly as a template would.
    """
    case_url = reverse("accounts:case", args=[0])[:-2]
    status_labels = dict(CaseStatus.choices)
    line_labels = dict(LineStatus.choices)
    signal_labels = dict(SignalStatus.choices)
    appeal_labels = dict(AppealStatus.choices)
    appeal_word, paused_word = _("Appeal"), _("paused")
    appeal_soon = settings.APPEAL_DUE_SOON_HOURS
    tz = timezone.get_current_timezone()
    rows = []
    for c in cases:
        url = f"{case_url}{c['id']}/"
        badges = format_html_join(
            " ",
            '<span class="badge sev-{}" title="{}">{}</span>',
            ((f"{severity} st-{status}", signal_labels[status], code) for code, severity, status in c["signals"]),
        )
        if c["appeal_state"]:
            # Marked as an appeal, with the appeal's own deadline (paused while waiting for the borrower).
            badges = format_html(
                '{} <span class="badge appeal" title="{}">{}</span> {}',
                badges,
                appeal_labels.get(c["appeal_state"], ""),
                appeal_word,
                paused_word if c["appeal_state"] == "awaiting_info" else sla(c["appeal_due_at"], appeal_soon),
            )
        rows.append(
            format_html(
                '<tr class="case sev-{}" data-row-href="{}">'
                '<td><input type="checkbox" name="case_ids" value="{}" aria-label="{}"></td>'
                '<td><span class="tier tier-{}">T{}</span></td>'
                '<td><a href="{}"><code>{}</code></a></td>'
                "<td>{}<br><small>{}</small></td>"
                "<td>{}</td>"
                '<td class="num">{}</td>'
                '<td><span class="status status-{}">{}</span></td>'
                "<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                c["severity_rank"],
                url,
                c["id"],
                c["line__account_no"],
                c["risk_tier"],
                c["risk_tier"],
                url,
                c["line__account_no"],
                mask_name(c["line__borrower__name"]),
                mask_phone(c["line__borrower__phone"]),
                badges,
                money(c["exposure"]),
                c["line__status"],
                line_labels[c["line__status"]],
                status_labels[c["status"]],
                c["assignee__username"] or "—",
                sla(c["sla_due_at"]),
                c["opened_at"].astimezone(tz).strftime("%Y-%m-%d %H:%M"),
            )
        )
    return rows


@operator_required
@require_POST
def queue_next(request: HttpRequest) -> HttpResponse:
    try:
        case = services.case_claim_next(actor=_actor(request))
    except services.NotAllowed as exc:
        return _forbidden(request, str(exc))
    if case is None:
        messages.info(request, _("No unassigned case is waiting. Well done."))
        return redirect("accounts:queue")
    return redirect("accounts:case", case_id=case.pk)


@operator_required
@require_POST
def queue_bulk(request: HttpRequest) -> HttpResponse:
    form = BulkForm(request.POST)
    back = reverse("accounts:queue") + ("?" + request.POST["query"] if request.POST.get("query") else "")
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
        return redirect(back)
    data = form.cleaned_data
    actor = _actor(request)
    try:
        if data["action"] == "assign":
            changed = services.cases_assign(case_ids=data["case_ids"], assignee_id=data["assignee"], actor=actor)
            messages.success(request, _("%(n)d cases assigned.") % {"n": len(changed)})
        elif data["action"] == "release":
            changed = services.cases_assign(case_ids=data["case_ids"], assignee_id=None, actor=actor)
            messages.success(request, _("%(n)d cases released.") % {"n": len(changed)})
        else:
            if not request.user.has_perm("accounts.decide_case"):
                return _forbidden(request, _("Your role cannot re-evaluate accounts"))
            from riskops.jobs import job_request

            line_ids = list(Case.objects.filter(pk__in=data["case_ids"]).values_list("line_id", flat=True))
            job = job_request(kind="reevaluate", selection_kind="ids", selection={"line_ids": line_ids}, actor=actor)
            messages.success(
                request,
                _("Re-evaluation of %(n)d accounts started as job #%(id)s.") % {"n": len(line_ids), "id": job.pk},
            )
    except services.NotAllowed as exc:
        return _forbidden(request, str(exc))
    except services.DomainError as exc:
        messages.error(request, str(exc))
    return redirect(back)


def _case_context(request: HttpRequest, case_id: int, **extra: Any) -> dict[str, Any]:
    try:
        detail = selectors.case_detail(case_id)
    except Case.DoesNotExist:
        raise Http404(_("No such case")) from None
    user = request.user
    explained = [(s, explain(s), detail.evidence.get(s.pk, {})) for s in detail.signals]
    return {
        "d": detail,
        "case": detail.case,
        "line": detail.line,
        "borrower": detail.line.borrower,
        "explained": explained,
        "decision_form": extra.pop("decision_form", None)
        or DecisionForm(initial={"version": detail.case.version, "token": secrets.token_hex(16)}),
        "note_form": NoteForm(),
        "reveal_form": RevealForm(),
        "review_form": ReviewForm(),
        "can_decide": user.has_perm("accounts.decide_case"),
        "can_approve": user.has_perm("accounts.approve_decision"),
        "can_reveal": user.has_perm("accounts.reveal_pii"),
        "four_eyes_limit": settings.FOUR_EYES_LIMIT,
        "job_kinds": JobKind.choices,
        **extra,
    }


@operator_required
@require_GET
def case_page(request: HttpRequest, case_id: int) -> HttpResponse:
    return render(request, "accounts/case.html", _case_context(request, case_id))


def _act(request: HttpRequest, case_id: int, call: Callable[[], Any], success: str) -> HttpResponse:
    """Run a service; domain errors become a message on the fresh case page (POST, then redirect)."""
    try:
        call()
    except services.NotAllowed as exc:
        return _forbidden(request, str(exc))
    except services.ConflictError as exc:
        messages.warning(request, str(exc))
    except services.DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, success)
    return redirect("accounts:case", case_id=case_id)


@operator_required
@require_POST
def case_decide(request: HttpRequest, case_id: int) -> HttpResponse:
    get_object_or_404(Case, pk=case_id)
    if not request.user.has_perm("accounts.decide_case"):
        return _forbidden(request, _("Your role cannot decide cases"))
    form = DecisionForm(request.POST)
    if not form.is_valid():
        ctx = _case_context(request, case_id, decision_form=form)
        return render(request, "accounts/case.html", ctx, status=400)
    data = form.cleaned_data
    try:
        outcome = services.case_decide(
            case_id=case_id,
            actor=_actor(request),
            kind=data["kind"],
            reason_code=data["reason_code"],
            note=data["note"],
            new_limit=data["new_limit"],
            expected_version=data["version"],
            idempotency_key=data["token"],
        )
    except services.NotAllowed as exc:
        return _forbidden(request, str(exc))
    except services.ConflictError as exc:
        messages.warning(request, str(exc))
    except services.DomainError as exc:
        messages.error(request, str(exc))
    else:
        if outcome.replayed:
            messages.info(request, _("This form was already submitted; the decision was recorded once."))
        elif outcome.applied:
            messages.success(request, _("Decision applied: %(kind)s.") % {"kind": outcome.decision.get_kind_display()})
        else:
            messages.success(request, _("Proposed: a different senior reviewer must approve this unfreeze."))
    return redirect("accounts:case", case_id=case_id)


@operator_required
@require_POST
def decision_review(request: HttpRequest, decision_id: int, verdict: str) -> HttpResponse:
    decision = get_object_or_404(Decision, pk=decision_id)
    form = ReviewForm(request.POST)
    note = form.cleaned_data["note"] if form.is_valid() else ""
    approve = verdict == "approve"
    response = _act(
        request,
        decision.case_id,
        lambda: services.decision_review(decision_id=decision_id, actor=_actor(request), approve=approve, note=note),
        _("Proposal approved and applied.") if approve else _("Proposal rejected."),
    )
    # The appeal page approves from where the reviewer is, and goes back there.
    back = request.POST.get("next", "")
    if (
        response.status_code == 302
        and back
        and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()})
    ):
        return redirect(back)
    return response


@operator_required
@require_POST
def case_claim(request: HttpRequest, case_id: int) -> HttpResponse:
    return _act(
        request, case_id, lambda: services.case_claim(case_id=case_id, actor=_actor(request)), _("Case claimed.")
    )


@operator_required
@require_POST
def case_release(request: HttpRequest, case_id: int) -> HttpResponse:
    def release() -> None:
        # The service skips cases it may not change; one case asked for and none changed is worth saying.
        if not services.cases_assign(case_ids=[case_id], assignee_id=None, actor=_actor(request)):
            raise services.DomainError(_("Nothing to release: the case is not assigned to you."))

    return _act(request, case_id, release, _("Case released."))


@operator_required
@require_POST
def case_note(request: HttpRequest, case_id: int) -> HttpResponse:
    form = NoteForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("A note cannot be empty (at most 5,000 characters)."))
        return redirect("accounts:case", case_id=case_id)
    return _act(
        request,
        case_id,
        lambda: services.note_add(case_id=case_id, actor=_actor(request), text=form.cleaned_data["text"]),
        _("Note added."),
    )


@operator_required
@require_POST
def case_reevaluate(request: HttpRequest, case_id: int) -> HttpResponse:
    """Re-run the rules for this account now; with htmx only the signals section is replaced."""
    case = get_object_or_404(Case, pk=case_id)
    if not request.user.has_perm("accounts.decide_case"):
        return _forbidden(request, _("Your role cannot re-evaluate accounts"))
    result = engine.evaluate_lines([case.line_id], actor=_actor(request))
    summary = _("Re-evaluated: %(fired)d fired, %(cleared)d cleared, %(suppressed)d suppressed.") % {
        "fired": result.fired,
        "cleared": result.cleared,
        "suppressed": result.suppressed,
    }
    if request.htmx:  # type: ignore[attr-defined]
        ctx = _case_context(request, case_id, reevaluate_summary=summary)
        return render(request, "accounts/_signals.html", ctx)
    messages.success(request, summary)
    return redirect("accounts:case", case_id=case_id)


@operator_required
@require_POST
def case_reveal(request: HttpRequest, case_id: int) -> HttpResponse:
    get_object_or_404(Case, pk=case_id)
    form = RevealForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose what to reveal and type a reason of at least 10 characters."))
        return redirect("accounts:case", case_id=case_id)
    try:
        revealed = services.borrower_reveal(
            case_id=case_id,
            actor=_actor(request),
            fields=form.cleaned_data["targets"],
            reason=form.cleaned_data["reason"],
        )
    except services.NotAllowed as exc:
        return _forbidden(request, str(exc))
    except services.DomainError as exc:
        messages.error(request, str(exc))
        return redirect("accounts:case", case_id=case_id)
    # Shown in this response only; never stored in the session or the URL.
    response = render(request, "accounts/case.html", _case_context(request, case_id, revealed=revealed))
    response["Cache-Control"] = "no-store"
    return response


@operator_required
@require_GET
def event_detail(request: HttpRequest, kind: str, event_id: int) -> HttpResponse:
    """One upstream event, as evidence rows link to it."""
    model = selectors.EVENT_MODELS.get(kind)
    if model is None:
        return HttpResponse(status=404)
    event = get_object_or_404(model.objects.select_related("line"), pk=event_id)
    fields = [
        (f.verbose_name, getattr(event, f"get_{f.name}_display")() if f.choices else getattr(event, f.name))
        for f in model._meta.concrete_fields
        if f.name not in {"id", "line"}
    ]
    case = Case.objects.filter(line=event.line).order_by("-opened_at").first()
    return render(
        request,
        "accounts/event.html",
        {"event": event, "kind": model._meta.verbose_name, "fields": fields, "case": case},
    )
