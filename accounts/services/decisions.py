"""Decisions on cases: an operator decides (or proposes, when four eyes are needed); a second reviewer approves or
rejects the proposal. Also an operator's re-evaluation of the case's account.

What a decision does to the line goes through `accounts.services.lines` (the same unfreeze and limit change that
jobs use); this module decides what is allowed and records the decision and the case's new state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import engine, hooks
from accounts.hooks import link_for_borrower
from accounts.models import (
    Case,
    CaseStatus,
    CreditLine,
    Decision,
    DecisionKind,
    DecisionStatus,
    LineStatus,
    NotificationKind,
    ReasonCode,
    Signal,
    SignalStatus,
)
from accounts.notifications import Outgoing, notifications_queue
from accounts.services.cases import (
    case_change,
    case_lock,
    case_save,
    check_version,
    require_may_work,
    require_senior_for_escalated,
)
from accounts.services.lines import lines_change_limit, lines_restore_available, lines_unfreeze, overdue_params
from riskops.core.audit import Actor, Change, audit_write
from riskops.core.errors import ConflictError, DomainError, NotAllowed, NotFound
from riskops.core.roles import APPROVE_DECISION, DECIDE_CASE, operator_id, require


@dataclass(frozen=True)
class DecisionOutcome:
    decision: Decision
    applied: bool
    replayed: bool = False


def require_may_decide(actor: Actor) -> None:
    """Refuse an actor whose role cannot decide cases (pages ask before they read the form)."""
    require(actor, DECIDE_CASE, _("Your role cannot decide cases"))


def needs_second_reviewer(line: CreditLine, new_limit: Decimal) -> list[str]:
    """Why an unfreeze needs four eyes (empty when one operator may apply it)."""
    reasons = []
    if Signal.objects.filter(line=line, status=SignalStatus.ACTIVE, severity="high").exists():
        reasons.append("the account has an active high-severity signal")
    if new_limit >= Decimal(settings.FOUR_EYES_LIMIT):
        reasons.append(f"the restored limit is ¥{settings.FOUR_EYES_LIMIT:,} or more")
    return reasons


# Decisions that settle what a borrower's appeal asks about.
SETTLING_KINDS = (
    DecisionKind.KEEP_FROZEN,
    DecisionKind.UNFREEZE,
    DecisionKind.CUT_LIMIT,
    DecisionKind.RESTORE_AVAILABLE,
    DecisionKind.KEEP_CUT,
)

# What a line is, for what may be decided on it: frozen, cut (active, its available amount cut by a signal: the
# engine's "cut" action), or active (flagged, nothing taken yet).
FROZEN, CUT, ACTIVE = "frozen", "cut", "active"

# The decisions each state offers, in the order a form lists them (the first is the default).
KINDS_FOR_STATE = {
    FROZEN: [DecisionKind.KEEP_FROZEN, DecisionKind.UNFREEZE, DecisionKind.CUT_LIMIT],
    CUT: [DecisionKind.KEEP_CUT, DecisionKind.RESTORE_AVAILABLE, DecisionKind.CUT_LIMIT],
    ACTIVE: [DecisionKind.CUT_LIMIT],
}
_ANY_STATE = [DecisionKind.REQUEST_UPDATE, DecisionKind.REMIND, DecisionKind.EDUCATE, DecisionKind.ESCALATE]
for _kinds in KINDS_FOR_STATE.values():
    _kinds += _ANY_STATE


def line_state(line: CreditLine) -> str:
    """FROZEN, CUT or ACTIVE (a closed line is ACTIVE here: every change refuses it)."""
    if line.status == LineStatus.FROZEN:
        return FROZEN
    if Signal.objects.filter(line=line, status=SignalStatus.ACTIVE, action="cut").exists():
        return CUT
    return ACTIVE


def _check_input(kind: str, reason_code: str, idempotency_key: str) -> None:
    if kind not in DecisionKind.values:
        raise DomainError(_("unknown decision %(kind)r") % {"kind": kind})
    if reason_code not in ReasonCode.values:
        raise DomainError(_("unknown reason code %(code)r") % {"code": reason_code})
    if not idempotency_key or len(idempotency_key) > 64:
        raise DomainError(_("the form token is missing; reload the page"))


def _check_case(case: Case, kind: str, appeal_id: int | None) -> None:
    if case.status == CaseStatus.AWAITING_APPROVAL and kind not in (DecisionKind.REMIND, DecisionKind.EDUCATE):
        raise DomainError(_("A proposal on this case is waiting for a second reviewer; approve or reject it first"))
    if case.appeal_state and appeal_id is None and kind in SETTLING_KINDS:
        raise DomainError(_("The borrower has an open appeal on this case; decide it from the appeal page"))


def case_decide(
    *,
    case_id: int,
    actor: Actor,
    kind: str,
    reason_code: str,
    note: str = "",
    new_limit: Decimal | None = None,
    expected_version: int | None,
    idempotency_key: str,
    appeal_id: int | None = None,
) -> DecisionOutcome:
    """Record an operator's decision on a case and apply it, or propose it when it needs four eyes.

    `appeal_id` is given by the appeal's decision (`appeals.services.review.appeal_decide`): while a case has an open
    appeal, only the appeal's decision may settle it, so that the borrower always hears the outcome of what they
    asked.
    """
    require_may_decide(actor)
    _check_input(kind, reason_code, idempotency_key)
    at = timezone.now()
    with transaction.atomic():
        case = case_lock(case_id)
        # Looked up under the case's lock: a double submit that raced the first one finds its decision here.
        replay = Decision.objects.filter(idempotency_key=idempotency_key).first()
        if replay is not None:
            return DecisionOutcome(replay, applied=replay.status != DecisionStatus.PROPOSED, replayed=True)
        if case.is_resolved:
            raise ConflictError(_("This case is already resolved"))
        require_senior_for_escalated(case, actor)
        check_version(case, expected_version)
        require_may_work(case, actor)
        _check_case(case, kind, appeal_id)
        note = note.strip()
        decision = Decision(
            case=case,
            line=case.line,
            kind=kind,
            reason_code=reason_code,
            note=note,
            new_limit=new_limit,
            proposed_by_id=operator_id(actor),
            proposed_at=at,
            idempotency_key=idempotency_key,
            status=DecisionStatus.APPLIED,
        )
        reason = f"{reason_code}: {note}" if note else reason_code
        case_before = {"status": case.status, "assignee_id": case.assignee_id}
        fields = ["status"]
        _apply(decision, case, actor, reason, at, fields)
        decision.save()
        case_save(case, actor, at, fields)
        audit_write(
            actor=actor,
            at=at,
            changes=[
                Change(
                    "decision.propose" if decision.status == DecisionStatus.PROPOSED else "decision.apply",
                    "decision",
                    decision.pk,
                    case.line_id,
                    None,
                    {
                        "kind": kind,
                        "new_limit": None if decision.new_limit is None else f"{decision.new_limit:.2f}",
                        "status": decision.status,
                        "case_id": case.pk,
                    },
                    reason,
                ),
                case_change("case.update", case, case_before, {"status": case.status, "assignee_id": case.assignee_id}),
            ],
        )
    return DecisionOutcome(decision, applied=decision.status == DecisionStatus.APPLIED)


def _apply(decision: Decision, case: Case, actor: Actor, reason: str, at: datetime, fields: list[str]) -> None:
    """What the decision does, on the locked case and line; a four-eyes unfreeze becomes a proposal."""
    line, kind, new_limit = case.line, decision.kind, decision.new_limit
    state = line_state(line)
    if kind not in KINDS_FOR_STATE[state]:
        raise DomainError(_wrong_state(state, kind))
    if kind in _KEEPS:
        _resolve(case, _KEEPS[kind], at, fields)
    elif kind in (DecisionKind.UNFREEZE, DecisionKind.RESTORE_AVAILABLE):
        _lift(decision, case, actor, reason, at, fields)
    elif kind == DecisionKind.CUT_LIMIT:
        if new_limit is None or new_limit < 0 or new_limit >= line.limit:
            raise DomainError(
                _("A cut needs a new limit from ¥0.00 up to below the current ¥%(limit)s")
                % {"limit": f"{line.limit:,.2f}"}
            )
        lines_change_limit(limits={line.pk: new_limit}, actor=actor, reason=reason, at=at)
        _resolve(case, "limit_cut", at, fields)
    elif kind in (DecisionKind.REMIND, DecisionKind.EDUCATE, DecisionKind.REQUEST_UPDATE):
        _notify(line, kind, decision.idempotency_key, at)
    elif kind == DecisionKind.ESCALATE:
        case.status = CaseStatus.ESCALATED
        case.assignee_id = None
        case.claimed_at = None
        fields += ["assignee", "claimed_at"]


# Decisions that keep what was done, and the case's outcome.
_KEEPS: dict[str, str] = {DecisionKind.KEEP_FROZEN: "kept_frozen", DecisionKind.KEEP_CUT: "kept_cut"}


def _lift(decision: Decision, case: Case, actor: Actor, reason: str, at: datetime, fields: list[str]) -> None:
    """An unfreeze (at the full limit or a lower one) or a cut's restore; a proposal when it needs four eyes."""
    line = case.line
    limit = line.limit if decision.new_limit is None else decision.new_limit
    if decision.kind == DecisionKind.RESTORE_AVAILABLE:
        limit = line.limit
    elif limit <= 0 or limit > line.limit:
        raise DomainError(
            _("The new limit must be above ¥0.00 and at most the current limit ¥%(limit)s")
            % {"limit": f"{line.limit:,.2f}"}
        )
    decision.new_limit = limit
    if needs_second_reviewer(line, limit):
        decision.status = DecisionStatus.PROPOSED
        case.status = CaseStatus.AWAITING_APPROVAL
    elif decision.kind == DecisionKind.RESTORE_AVAILABLE:
        lines_restore_available(line_ids=[line.pk], actor=actor, reason=reason, at=at)
        _resolve(case, "available_restored", at, fields)
    else:
        lines_unfreeze(
            line_ids=[line.pk], limits={line.pk: limit}, actor=actor, reason=reason, at=at, attribute_cause=True
        )
        _resolve(case, "unfrozen", at, fields)


def _wrong_state(state: str, kind: str) -> str:
    """Why `kind` cannot be decided on a line in `state`."""
    if kind == DecisionKind.KEEP_FROZEN:
        return _("The line is not frozen; nothing to keep frozen")
    if kind == DecisionKind.UNFREEZE:
        return _("The line is not frozen")
    return _("The line's available amount is not cut; nothing to restore or keep")


# The notices a decision sends that need nothing from a signal.
_NOTICES: dict[str, str] = {
    DecisionKind.EDUCATE: NotificationKind.CREDIT_EDUCATION,
    DecisionKind.REQUEST_UPDATE: NotificationKind.PROFILE_UPDATE_REQUEST,
}


def _notify(line: CreditLine, kind: str, token: str, at: datetime) -> None:
    """A reminder with the overdue amount and days (from the active OVERDUE signal), a credit-education notice, or
    a request to update the profile."""
    if kind in _NOTICES:
        link: dict[str, object] = {"link": link_for_borrower(line.pk)}
        notifications_queue([Outgoing(line.pk, _NOTICES[kind], f"decision:{token}", link)], at=at)
        return
    overdue = line.signals.filter(code="OVERDUE", status=SignalStatus.ACTIVE).order_by("-fired_at").first()
    if overdue is None:
        raise DomainError(_("Nothing is overdue on this account; send a credit-education notice instead"))
    notifications_queue(
        [Outgoing(line.pk, NotificationKind.OVERDUE_REMINDER, f"decision:{token}", overdue_params(overdue))], at=at
    )


def _resolve(case: Case, outcome: str, at: datetime, fields: list[str]) -> None:
    case.status = CaseStatus.RESOLVED
    case.outcome = outcome
    case.resolved_at = at
    fields += ["outcome", "resolved_at"]


def decision_review(*, decision_id: int, actor: Actor, approve: bool, note: str = "") -> Decision:
    """A second reviewer approves (and so applies) or rejects a proposed decision.

    Nobody reviews their own proposal, whatever the entry point. What else follows the verdict (an appeal waiting
    on it) is told through `accounts.hooks.proposal_reviewed`, in this transaction.
    """
    require(actor, APPROVE_DECISION, _("Only a senior reviewer can approve or reject a proposal"))
    at = timezone.now()
    with transaction.atomic():
        case_id = Decision.objects.filter(pk=decision_id).values_list("case_id", flat=True).first()
        if case_id is None:
            raise NotFound(_("Decision %(id)s does not exist") % {"id": decision_id})
        case = case_lock(case_id)
        decision = Decision.objects.select_for_update().get(pk=decision_id)
        if decision.status != DecisionStatus.PROPOSED:
            raise ConflictError(_("This proposal was already %(status)s") % {"status": decision.get_status_display()})
        if decision.proposed_by_id == actor.user_id:
            raise NotAllowed(_("You cannot approve or reject your own proposal; another senior reviewer must"))
        line = case.line
        note = note.strip()
        reason = f"approved proposal #{decision.pk} ({decision.reason_code})" + (f": {note}" if note else "")
        case_before = {"status": case.status}
        fields = ["status"]
        limit_before = line.limit
        if approve and decision.kind == DecisionKind.RESTORE_AVAILABLE:
            if not lines_restore_available(line_ids=[line.pk], actor=actor, reason=reason, at=at):
                raise DomainError(_("The line's available amount is no longer cut; reject this proposal"))
            decision.status = DecisionStatus.APPROVED
            _resolve(case, "available_restored", at, fields)
        elif approve:
            if line.status != LineStatus.FROZEN:
                raise DomainError(_("The line is no longer frozen; reject this proposal"))
            assert decision.new_limit is not None
            lines_unfreeze(
                line_ids=[line.pk],
                limits={line.pk: decision.new_limit},
                actor=actor,
                reason=reason,
                at=at,
                attribute_cause=True,
            )
            decision.status = DecisionStatus.APPROVED
            _resolve(case, "unfrozen", at, fields)
        else:
            decision.status = DecisionStatus.REJECTED
            case.status = CaseStatus.OPEN
        decision.reviewed_by_id = actor.user_id
        decision.reviewed_at = at
        decision.review_note = note
        decision.save(update_fields=["status", "reviewed_by", "reviewed_at", "review_note"])
        case_save(case, actor, at, fields)
        audit_write(
            actor=actor,
            at=at,
            changes=[
                Change(
                    "decision.approve" if approve else "decision.reject",
                    "decision",
                    decision.pk,
                    line.pk,
                    {"status": "proposed", "proposed_by_id": decision.proposed_by_id},
                    {"status": decision.status},
                    note,
                ),
                case_change("case.update", case, case_before, {"status": case.status}),
            ],
        )
        reviewed = hooks.ProposalReviewed(decision=decision, limit_before=limit_before, actor=actor, at=at)
        for follow in hooks.proposal_reviewed.callbacks:
            follow(reviewed)
    return decision


def case_reevaluate(*, case_id: int, actor: Actor) -> engine.EvaluationResult:
    """An operator re-runs the rules for the case's account now."""
    require(actor, DECIDE_CASE, _("Your role cannot re-evaluate accounts"))
    line_id = Case.objects.filter(pk=case_id).values_list("line_id", flat=True).first()
    if line_id is None:
        raise NotFound(_("Case %(id)s does not exist") % {"id": case_id})
    return engine.evaluate_lines([line_id], actor=actor)
