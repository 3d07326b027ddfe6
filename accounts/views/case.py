"""The case page and what an operator does on it: claim, release, decide, approve, note, re-evaluate, reveal."""

from __future__ import annotations

import secrets
from datetime import datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts import services
from accounts.explain import explain
from accounts.forms import DecisionForm, ExemptionForm, NoteForm, RevealForm, ReviewForm
from accounts.models import Case, Decision
from accounts.selectors.case import case_detail
from accounts.services.borrowers import require_may_reveal
from accounts.services.decisions import ACTIVE, CUT, FROZEN, line_state, require_may_decide
from accounts.services.exemptions import exemption_grant
from riskops.core.errors import DomainError
from riskops.core.http import actor, domain_errors, operator_required, safe_next
from riskops.core.roles import APPROVE_DECISION, ASSIGN_CASE, DECIDE_CASE, REVEAL_PII, TUNE_RULES
from riskops.models import selection_kind_choices


def _case_context(request: HttpRequest, case_id: int, **extra: Any) -> dict[str, Any]:
    try:
        detail = case_detail(case_id)
    except Case.DoesNotExist:
        raise Http404(_("No such case")) from None
    user = request.user
    cut = any(s.action == "cut" and s.status == "active" for s in detail.signals)
    state = FROZEN if detail.line.status == FROZEN else CUT if cut else ACTIVE
    return {
        "d": detail,
        "case": detail.case,
        "line": detail.line,
        "borrower": detail.line.borrower,
        "explained": [(s, explain(s), detail.evidence.get(s.pk, {})) for s in detail.signals],
        # A line whose available amount a signal cut (PROFILE_STALE), not frozen: the card and the choices say so.
        "line_cut": state == CUT,
        "decision_form": extra.pop("decision_form", None)
        or DecisionForm(initial={"version": detail.case.version, "token": secrets.token_hex(16)}, line_state=state),
        "note_form": NoteForm(initial={"token": secrets.token_hex(16)}),
        "reveal_form": RevealForm(),
        "review_form": ReviewForm(),
        "can_decide": user.has_perm(DECIDE_CASE),
        # Deciding a case someone else holds is theirs (accounts.services.cases.require_may_work).
        "can_work": user.has_perm(DECIDE_CASE)
        and (detail.case.assignee_id in (None, user.pk) or user.has_perm(ASSIGN_CASE)),
        "can_approve": user.has_perm(APPROVE_DECISION),
        "can_reveal": user.has_perm(REVEAL_PII),
        "four_eyes_limit": settings.FOUR_EYES_LIMIT,
        "exemptions": detail.line.exemptions.select_related("created_by").order_by("-until")[:10],
        "exemption_form": ExemptionForm(),
        "can_exempt": user.has_perm(TUNE_RULES),
        "now": timezone.now(),
        "job_kinds": selection_kind_choices(),
        **extra,
    }


def _back_to_case(request: HttpRequest, case_id: int, **_kwargs: Any) -> str:
    return reverse("accounts:case", args=[case_id])


@operator_required
@require_GET
def case_page(request: HttpRequest, case_id: int) -> HttpResponse:
    token = request.GET.get("revealed", "")
    if not token:
        return render(request, "accounts/case.html", _case_context(request, case_id))
    revealed = services.borrower_revealed(case_id=case_id, actor=actor(request), token=token)
    if not revealed:
        messages.info(request, _("The personal data is masked again; reveal it again if you still need it."))
    response = render(request, "accounts/case.html", _case_context(request, case_id, revealed=revealed))
    response["Cache-Control"] = "no-store"
    return response


@operator_required
@require_POST
@domain_errors(_back_to_case)
def case_decide(request: HttpRequest, case_id: int) -> HttpResponse:
    case = get_object_or_404(Case.objects.select_related("line"), pk=case_id)
    require_may_decide(actor(request))
    form = DecisionForm(request.POST, line_state=line_state(case.line))
    if not form.is_valid():
        return render(request, "accounts/case.html", _case_context(request, case_id, decision_form=form), status=400)
    data = form.cleaned_data
    outcome = services.case_decide(
        case_id=case_id,
        actor=actor(request),
        kind=data["kind"],
        reason_code=data["reason_code"],
        note=data["note"],
        new_limit=data["new_limit"],
        expected_version=data["version"],
        idempotency_key=data["token"],
    )
    if outcome.replayed:
        messages.info(request, _("This form was already submitted; the decision was recorded once."))
    elif outcome.applied:
        messages.success(request, _("Decision applied: %(kind)s.") % {"kind": outcome.decision.get_kind_display()})
    else:
        messages.success(request, _("Proposed: a different senior reviewer must approve it before it applies."))
    return redirect("accounts:case", case_id=case_id)


def _back_from_review(request: HttpRequest, decision_id: int, **_kwargs: Any) -> str:
    case_id = Decision.objects.filter(pk=decision_id).values_list("case_id", flat=True).first()
    return safe_next(request, reverse("accounts:case", args=[case_id]) if case_id else reverse("accounts:queue"))


@operator_required
@require_POST
@domain_errors(_back_from_review)
def decision_review(request: HttpRequest, decision_id: int, verdict: str) -> HttpResponse:
    get_object_or_404(Decision, pk=decision_id)
    form = ReviewForm(request.POST)
    approve = verdict == "approve"
    services.decision_review(
        decision_id=decision_id,
        actor=actor(request),
        approve=approve,
        note=form.cleaned_data["note"] if form.is_valid() else "",
    )
    messages.success(request, _("Proposal approved and applied.") if approve else _("Proposal rejected."))
    # The appeal page approves from where the reviewer is, and goes back there.
    return redirect(_back_from_review(request, decision_id))


@operator_required
@require_POST
@domain_errors(_back_to_case)
def case_claim(request: HttpRequest, case_id: int) -> HttpResponse:
    services.case_claim(case_id=case_id, actor=actor(request))
    messages.success(request, _("Case claimed."))
    return redirect("accounts:case", case_id=case_id)


@operator_required
@require_POST
@domain_errors(_back_to_case)
def case_release(request: HttpRequest, case_id: int) -> HttpResponse:
    # The service skips cases it may not change; one case asked for and none changed is worth saying.
    if not services.cases_assign(case_ids=[case_id], assignee_id=None, actor=actor(request)):
        raise DomainError(_("Nothing to release: the case is not assigned to you."))
    messages.success(request, _("Case released."))
    return redirect("accounts:case", case_id=case_id)


@operator_required
@require_POST
@domain_errors(_back_to_case)
def case_note(request: HttpRequest, case_id: int) -> HttpResponse:
    form = NoteForm(request.POST)
    if not form.is_valid():
        raise DomainError(_("A note cannot be empty (at most 5,000 characters)."))
    services.note_add(
        case_id=case_id,
        actor=actor(request),
        text=form.cleaned_data["text"],
        idempotency_key=form.cleaned_data["token"] or None,
    )
    messages.success(request, _("Note added."))
    return redirect("accounts:case", case_id=case_id)


@operator_required
@require_POST
@domain_errors(_back_to_case)
def case_exempt(request: HttpRequest, case_id: int) -> HttpResponse:
    """Exempt the case's account from one rule until the end of a day (risk managers)."""
    case = get_object_or_404(Case, pk=case_id)
    form = ExemptionForm(request.POST)
    if not form.is_valid():
        raise DomainError(
            " ".join(f"{form[name].label}: {' '.join(str(m) for m in e)}" for name, e in form.errors.items())
        )
    day = form.cleaned_data["until"]
    until = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))
    exemption_grant(
        line_id=case.line_id,
        code=form.cleaned_data["code"],
        until=until,
        reason=form.cleaned_data["reason"],
        actor=actor(request),
    )
    messages.success(
        request,
        _("The account is exempt from %(code)s until the end of %(day)s.")
        % {"code": form.cleaned_data["code"], "day": day.isoformat()},
    )
    return redirect("accounts:case", case_id=case_id)


@operator_required
@require_POST
@domain_errors(_back_to_case)
def case_reevaluate(request: HttpRequest, case_id: int) -> HttpResponse:
    """Re-run the rules for this account now; with htmx only the signals section is replaced."""
    get_object_or_404(Case, pk=case_id)
    result = services.case_reevaluate(case_id=case_id, actor=actor(request))
    summary = _("Re-evaluated: %(fired)d fired, %(cleared)d cleared, %(suppressed)d suppressed.") % {
        "fired": result.fired,
        "cleared": result.cleared,
        "suppressed": result.suppressed,
    }
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "accounts/_signals.html", _case_context(request, case_id, reevaluate_summary=summary))
    messages.success(request, summary)
    return redirect("accounts:case", case_id=case_id)


@operator_required
@require_POST
@domain_errors(_back_to_case)
def case_reveal(request: HttpRequest, case_id: int) -> HttpResponse:
    get_object_or_404(Case, pk=case_id)
    require_may_reveal(actor(request))
    form = RevealForm(request.POST)
    if not form.is_valid():
        raise DomainError(_("Choose what to reveal and type a reason of at least 10 characters."))
    fields = form.cleaned_data["targets"]
    services.borrower_reveal(case_id=case_id, actor=actor(request), fields=fields, reason=form.cleaned_data["reason"])
    # Post, redirect, get: a refresh shows the page again rather than revealing (and auditing) again. The address
    # carries a signed, short-lived grant (case, operator, field names), never the data itself.
    token = services.reveal_token(case_id=case_id, actor=actor(request), fields=fields)
    return redirect(f"{reverse('accounts:case', args=[case_id])}?revealed={token}#case-header")
