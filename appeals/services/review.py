"""Deciding appeals: approve (unfreeze at the full limit), approve in part, reject, or ask for more information;
following a second reviewer's verdict on the unfreeze an appeal proposed; and who works an appeal (claim, assign,
release: its case's claim).

What an appeal does to the line goes through `accounts.services.decisions.case_decide`, so the four-eyes rules,
the version checks and the suppression of overturned signals are exactly those of case review. Each function
locks the line, then the case, then the appeal (the engine's order), writes its audit events in the same
transaction and queues the borrower's message in the outbox.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.hooks import ProposalReviewed
from accounts.models import (
    Case,
    CaseStatus,
    DecisionKind,
    DecisionStatus,
    NotificationKind,
    ReasonCode,
    Signal,
    SignalStatus,
)
from accounts.notifications import Outgoing, notifications_queue
from accounts.services.cases import case_claim, cases_assign, require_may_work, require_senior_for_escalated
from accounts.services.decisions import case_decide
from appeals import replies
from appeals.links import appeal_link, more_info_link
from appeals.models import OPEN_STATES, Appeal, AppealReason, AppealRuleOutcome, AppealStatus, RuleOutcome
from appeals.services.common import lock_appeal, set_case_marker
from riskops.core.audit import Actor, Change, audit_write
from riskops.core.errors import ConflictError, DomainError
from riskops.core.roles import APPROVE_DECISION, ASSIGN_CASE, DECIDE_CASE, may, require

REPLY_MAX = 500  # it goes out as an SMS

# The case-review reason an appeal's reason becomes when it is approved.
REASON_CODES: dict[str, str] = {
    AppealReason.REPAID: ReasonCode.REPAID,
    AppealReason.LOANS_CLOSED: ReasonCode.LOANS_CLOSED,
    AppealReason.INCOME_PROOF: ReasonCode.INCOME_VERIFIED,
    AppealReason.TRANSFER_EXPLAINED: ReasonCode.TRANSFER_EXPLAINED,
    AppealReason.PROFILE_UPDATED: ReasonCode.PROFILE_UPDATED,
    AppealReason.OTHER: ReasonCode.OTHER,
}


def _check(outcome: str, reply: str) -> str:
    if outcome not in replies.OUTCOMES:
        raise DomainError(_("unknown appeal outcome %(outcome)r") % {"outcome": outcome})
    reply = (reply or "").strip()
    if not reply:
        raise DomainError(_("Write the reply the borrower will read"))
    if len(reply) > REPLY_MAX:
        raise DomainError(
            _("The reply is too long for a text message (at most %(max)d characters)") % {"max": REPLY_MAX}
        )
    return reply


def _check_open(appeal: Appeal, expected_version: int | None) -> None:
    if appeal.status != AppealStatus.OPEN:
        if appeal.status == AppealStatus.AWAITING_APPROVAL:
            raise ConflictError(_("This appeal's decision is waiting for a second reviewer"))
        if appeal.status == AppealStatus.AWAITING_INFO:
            raise ConflictError(_("This appeal is waiting for the borrower's documents"))
        raise ConflictError(_("This appeal was already decided: %(status)s") % {"status": appeal.get_status_display()})
    if expected_version is not None and appeal.version != expected_version:
        raise ConflictError(_("This appeal changed while you were looking at it; review it again and decide"))


def appeal_decide(
    *,
    appeal_id: int,
    actor: Actor,
    outcome: str,
    reply: str,
    new_limit: Decimal | None = None,
    expected_version: int | None,
) -> Appeal:
    """Approve (unfreeze at the full limit), approve in part (a lower limit), reject, or ask for more information.

    Approving and rejecting go through `case_decide`: an unfreeze that needs four eyes becomes a proposal and the
    appeal waits for it (`appeal_follow_review`). The reply goes to the borrower when the outcome is final.
    """
    require(actor, DECIDE_CASE, _("Your role cannot decide appeals"))
    reply = _check(outcome, reply)
    at = timezone.now()
    with transaction.atomic():
        case, appeal = lock_appeal(appeal_id)
        _check_open(appeal, expected_version)
        require_may_work(case, actor)
        before = {"status": appeal.status}
        if outcome == replies.REQUEST_INFO:
            require_senior_for_escalated(case, actor)
            _request_info(appeal, case, reply, at)
        else:
            _settle(appeal, case, actor, outcome, reply, new_limit, at)
        _save(appeal, at)
        audit_write(
            actor=actor,
            at=at,
            changes=[
                Change(
                    "appeal.decide",
                    "appeal",
                    appeal.pk,
                    case.line_id,
                    before,
                    {"status": appeal.status, "outcome": outcome, "decision_id": appeal.decision_id},
                    appeal.reply if outcome != replies.REQUEST_INFO else reply,
                )
            ],
        )
    return appeal


def _request_info(appeal: Appeal, case: Case, question: str, at: datetime) -> None:
    appeal.status = AppealStatus.AWAITING_INFO
    appeal.info_request = question
    appeal.sla_paused_at = at
    set_case_marker(case.pk, AppealStatus.AWAITING_INFO, appeal.sla_due_at)
    notifications_queue(
        [
            Outgoing(
                case.line_id,
                NotificationKind.APPEAL_MORE_INFO,
                f"appeal_info:{appeal.pk}:{appeal.version}",
                {"appeal": appeal.pk, "question": question, "link": more_info_link(appeal.pk)},
            )
        ],
        at=at,
    )


def _settle(
    appeal: Appeal, case: Case, actor: Actor, outcome: str, reply: str, new_limit: Decimal | None, at: datetime
) -> None:
    """Approve or reject through the case's decision; final now, or when a second reviewer has looked."""
    line = case.line
    limit = None
    if outcome == replies.APPROVE_IN_PART:
        if new_limit is None or new_limit <= 0 or new_limit >= line.limit:
            raise DomainError(
                _("Approving in part needs a new limit above ¥0.00 and below the current ¥%(limit)s")
                % {"limit": f"{line.limit:,.2f}"}
            )
        limit = new_limit
        reply = reply.replace("{limit}", f"{new_limit:,.2f}")
    result = case_decide(
        case_id=case.pk,
        actor=actor,
        kind=DecisionKind.KEEP_FROZEN if outcome == replies.REJECT else DecisionKind.UNFREEZE,
        reason_code=ReasonCode.EVIDENCE_CONFIRMED if outcome == replies.REJECT else REASON_CODES[appeal.reason],
        note=f"appeal #{appeal.pk}",
        new_limit=limit,
        expected_version=None,
        idempotency_key=f"appeal:{appeal.pk}:{appeal.version}",
        appeal_id=appeal.pk,
    )
    appeal.decision = result.decision
    appeal.outcome = outcome
    appeal.reply = reply
    if result.applied:
        _finish(appeal, actor_id=actor.user_id, at=at)
    else:
        appeal.status = AppealStatus.AWAITING_APPROVAL
        set_case_marker(case.pk, AppealStatus.AWAITING_APPROVAL, appeal.sla_due_at)


def _save(appeal: Appeal, at: datetime) -> None:
    appeal.version += 1
    appeal.updated_at = at
    appeal.save()


def _finish(appeal: Appeal, *, actor_id: int | None, at: datetime) -> None:
    """The outcome is final: record it per rule, tell the borrower, take the appeal off the case."""
    approved = appeal.outcome in (replies.APPROVE, replies.APPROVE_IN_PART)
    if approved:
        appeal.status = AppealStatus.APPROVED if appeal.outcome == replies.APPROVE else AppealStatus.APPROVED_IN_PART
    else:
        appeal.status = AppealStatus.REJECTED
    appeal.decided_by_id = actor_id
    appeal.decided_at = at
    appeal.sla_paused_at = None
    # Each rule the case is about: overturned if this decision overturned it, upheld otherwise.
    signals = Signal.objects.filter(case_id=appeal.case_id, status__in=[SignalStatus.ACTIVE, SignalStatus.OVERTURNED])
    AppealRuleOutcome.objects.bulk_create(
        [
            AppealRuleOutcome(
                appeal=appeal,
                signal_id=s.pk,
                rule_id=s.rule_id,
                code=s.code,
                ruleset_version=s.ruleset_version,
                outcome=RuleOutcome.OVERTURNED
                if approved and s.status == SignalStatus.OVERTURNED
                else RuleOutcome.UPHELD,
                decided_at=at,
            )
            for s in signals
        ],
        ignore_conflicts=True,
    )
    set_case_marker(appeal.case_id, "", None)
    notifications_queue(
        [
            Outgoing(
                appeal.line_id,
                NotificationKind.APPEAL_APPROVED if approved else NotificationKind.APPEAL_REJECTED,
                f"appeal_outcome:{appeal.pk}",
                {"appeal": appeal.pk, "reply": appeal.reply, "link": appeal_link(appeal.line_id)},
            )
        ],
        at=at,
    )


def appeal_follow_review(reviewed: ProposalReviewed) -> None:
    """The case's open appeal follows a second reviewer's verdict (`accounts.hooks.proposal_reviewed`, called by
    `decision_review` in its transaction).

    The appeal's own proposal approved: the appeal is decided as the reviewer wrote it. Rejected: back to review.
    A proposal made on the case page before the borrower appealed, approved: the appeal is settled with it (the
    template reply for its reason), so no appeal is left open on a resolved case.
    """
    decision = reviewed.decision
    appeal = Appeal.objects.select_for_update().filter(case_id=decision.case_id, status__in=OPEN_STATES).first()
    if appeal is None:
        return
    approved = decision.status == DecisionStatus.APPROVED
    own = appeal.decision_id == decision.pk
    if not own and not approved:
        return
    before = {"status": appeal.status}
    if approved:
        if not own:
            assert decision.new_limit is not None
            appeal.decision = decision
            appeal.outcome = replies.APPROVE if decision.new_limit >= reviewed.limit_before else replies.APPROVE_IN_PART
            appeal.reply = replies.reply_template(appeal.reason, appeal.outcome).replace(
                "{limit}", f"{decision.new_limit:,.2f}"
            )
        _finish(appeal, actor_id=decision.proposed_by_id, at=reviewed.at)
    else:
        # The second reviewer said no: the appeal is back in review, its draft reply kept.
        appeal.status = AppealStatus.OPEN
        appeal.decision = None
        set_case_marker(appeal.case_id, AppealStatus.OPEN, appeal.sla_due_at)
    _save(appeal, reviewed.at)
    audit_write(
        actor=reviewed.actor,
        at=reviewed.at,
        changes=[Change("appeal.review", "appeal", appeal.pk, appeal.line_id, before, {"status": appeal.status})],
    )


# --- Who works an appeal: the assignee of its case, so the queue and the inbox name the same person. Claims and
# assignments are the case's (`case_claim`, `cases_assign`): the same rules, locks and audit events as the queue's.

# How many candidates "next appeal" tries when others claim them first.
NEXT_TRIES = 20


def appeal_claim(*, appeal_id: int, actor: Actor) -> Appeal:
    """Claim an open appeal for this operator: its case must be unassigned, idle, or already theirs.

    Two reviewers claiming one appeal at once: the second waits for the first's lock, then is refused.
    """
    require(actor, DECIDE_CASE, _("Your role cannot claim appeals"))
    with transaction.atomic():
        case, appeal = lock_appeal(appeal_id)
        if not appeal.is_open:
            raise ConflictError(
                _("This appeal was already decided: %(status)s") % {"status": appeal.get_status_display()}
            )
        case_claim(case_id=case.pk, actor=actor)
    return appeal


def appeals_claim(*, appeal_ids: Iterable[int], actor: Actor) -> list[int]:
    """Claim each of the appeals this operator may (each a claim of its own); the ids now theirs.

    Those someone else holds, decided ones and, for an analyst, escalated ones are left alone.
    """
    require(actor, DECIDE_CASE, _("Your role cannot claim appeals"))
    claimed = []
    for appeal_id in sorted(set(appeal_ids)):
        try:
            appeal_claim(appeal_id=appeal_id, actor=actor)
        except DomainError:
            continue
        claimed.append(appeal_id)
    return claimed


def appeal_claim_next(*, actor: Actor, within: Q | None = None) -> Appeal | None:
    """Claim the appeal in review nearest its deadline whose case nobody holds; `within` narrows the choice (the
    inbox's current filter). None when there is none: two reviewers pressing "next" at once get different ones."""
    require(actor, DECIDE_CASE, _("Your role cannot claim appeals"))
    candidates = Appeal.objects.filter(status=AppealStatus.OPEN, case__assignee__isnull=True)
    if not may(actor, APPROVE_DECISION):
        candidates = candidates.exclude(case__status=CaseStatus.ESCALATED)
    if within is not None:
        candidates = candidates.filter(within)
    for appeal_id in candidates.order_by("sla_due_at", "id").values_list("pk", flat=True)[:NEXT_TRIES]:
        try:
            return appeal_claim(appeal_id=appeal_id, actor=actor)
        except ConflictError:
            continue  # claimed or decided between the read and the lock
    return None


def appeals_assign(*, appeal_ids: Iterable[int], assignee_id: int | None, actor: Actor) -> list[int]:
    """Assign open appeals to an operator whose role decides them (their cases, through `cases_assign`), or, with
    assignee_id None, release them: your own with any deciding role, anyone's with `assign_case`. The ids changed.
    """
    if assignee_id is None:
        require(actor, DECIDE_CASE, _("Your role cannot release appeals"))
    else:
        require(actor, ASSIGN_CASE, _("Your role cannot assign appeals to others"))
    by_case = dict(Appeal.objects.filter(pk__in=set(appeal_ids), status__in=OPEN_STATES).values_list("case_id", "pk"))
    changed = cases_assign(case_ids=by_case, assignee_id=assignee_id, actor=actor)
    return sorted(by_case[case_id] for case_id in changed)
