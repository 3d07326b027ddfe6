"""Case review through accounts.services: claims, decisions, four-eyes approvals, notes, reveals, assignment.

Cases are flagged by the real engine at the real clock (the services stamp their changes with it);
the concurrency tests run real transactions on their own connections against PostgreSQL.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from accounts import services
from accounts.engine import evaluate_lines
from accounts.models import (
    Case,
    CaseStatus,
    CreditLine,
    Decision,
    DecisionStatus,
    LineChange,
    LineStatus,
    Note,
    Notification,
    NotificationKind,
    Signal,
    SignalStatus,
    Suppression,
)
from riskops.core.errors import ConflictError, DomainError, NotAllowed
from riskops.models import AuditEvent
from tests.factories import (
    default_ruleset,
    flag,
    frozen_medium_only_case,
    frozen_multi_head_case,
    inquiry,
    make_line,
    make_role_operator,
)
from tests.helpers import OWN_PROPOSAL, STALE, fresh, in_threads, op

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ruleset")]

PENDING = "A proposal on this case is waiting for a second reviewer; approve or reject it first"


# --- helpers


def decide(case: Case, user, kind: str, *, reason_code: str = "income_verified", key: str | None = None, **kwargs):
    """Decide with the version the operator's form was rendered with (the case's current one)."""
    kwargs.setdefault("expected_version", Case.objects.get(pk=case.pk).version)
    return services.case_decide(
        case_id=case.pk,
        actor=op(user),
        kind=kind,
        reason_code=reason_code,
        idempotency_key=key or uuid.uuid4().hex,
        **kwargs,
    )


def actions(line: CreditLine) -> list[str]:
    return list(AuditEvent.objects.filter(account_id=line.pk).order_by("pk").values_list("action", flat=True))


def operator_actions(line: CreditLine) -> list[str]:
    """The audit trail of people (the engine's own events left out)."""
    return list(
        AuditEvent.objects.filter(account_id=line.pk, actor_kind="operator")
        .order_by("pk")
        .values_list("action", flat=True)
    )


def line_state(line: CreditLine) -> tuple:
    line = fresh(line)
    return (line.status, line.limit, line.available)


def case_state(case: Case) -> tuple:
    case = fresh(case)
    return (case.status, case.outcome, case.assignee_id, case.version)


def set_idle(case: Case, minutes: float) -> None:
    """Pretend the assignee last touched the case `minutes` ago."""
    Case.objects.filter(pk=case.pk).update(last_activity_at=timezone.now() - timedelta(minutes=minutes))


# --- 1. claims


def test_next_case_claims_by_severity_then_exposure_then_age(analyst):
    medium_big = flag(make_line(outstanding="90000.00"), "PROFILE_STALE")
    high_small_old = flag(make_line(outstanding="5000.00"), "MULTI_HEAD")
    high_big = flag(make_line(outstanding="30000.00"), "OVERDUE")
    high_small_new = flag(make_line(outstanding="5000.00"), "ABNORMAL_USE")
    cases = [medium_big, high_small_old, high_big, high_small_new]
    assert [c.assignee_id for c in cases] == [None] * 4

    claimed = [services.case_claim_next(actor=op(analyst)) for _ in range(5)]

    assert [c.pk if c else None for c in claimed] == [
        high_big.pk,
        high_small_old.pk,
        high_small_new.pk,
        medium_big.pk,
        None,
    ]
    for case in cases:
        case = fresh(case)
        assert (case.assignee_id, case.claimed_at is not None, case.last_activity_at is not None) == (
            analyst.pk,
            True,
            True,
        )
    claimed_cases = [c for c in claimed[:4] if c is not None]  # all four, as asserted above
    claims = AuditEvent.objects.filter(action="case.claim").order_by("pk")
    assert [(a.object_id, a.actor_user_id, a.before, a.after) for a in claims] == [
        (c.pk, analyst.pk, {"assignee_id": None}, {"assignee_id": analyst.pk}) for c in claimed_cases
    ]


def test_a_second_press_of_next_gives_the_next_case_not_the_same_one(analyst, analyst2):
    first = flag(make_line(outstanding="9000.00"), "MULTI_HEAD")
    second = flag(make_line(outstanding="1000.00"), "MULTI_HEAD")

    got_first = services.case_claim_next(actor=op(analyst))
    assert got_first is not None and got_first.pk == first.pk
    got_second = services.case_claim_next(actor=op(analyst2))
    assert got_second is not None and got_second.pk == second.pk
    assert services.case_claim_next(actor=op(analyst2)) is None

    assert (fresh(first).assignee_id, fresh(second).assignee_id) == (analyst.pk, analyst2.pk)


@pytest.mark.parametrize(("idle_minutes", "claimable"), [(29, False), (31, True)])
def test_a_claim_idle_longer_than_the_setting_can_be_claimed_again(analyst, analyst2, idle_minutes, claimable):
    case = flag(make_line(), "MULTI_HEAD")
    services.case_claim_next(actor=op(analyst))
    set_idle(case, idle_minutes)

    claimed = services.case_claim_next(actor=op(analyst2))

    assert (claimed.pk if claimed else None) == (case.pk if claimable else None)
    assert fresh(case).assignee_id == (analyst2.pk if claimable else analyst.pk)
    if claimable:
        last = AuditEvent.objects.filter(action="case.claim").latest("pk")
        assert (last.before, last.after) == ({"assignee_id": analyst.pk}, {"assignee_id": analyst2.pk})


def test_the_idle_time_is_a_setting(analyst, analyst2, settings):
    settings.CASE_CLAIM_IDLE_MINUTES = 5
    case = flag(make_line(), "MULTI_HEAD")
    services.case_claim_next(actor=op(analyst))
    set_idle(case, 6)

    reclaimed = services.case_claim_next(actor=op(analyst2))
    assert reclaimed is not None and reclaimed.pk == case.pk


def test_releasing_idle_claims_frees_only_the_idle_ones_with_an_audit_event(analyst, analyst2):
    idle = flag(make_line(outstanding="9000.00"), "MULTI_HEAD")
    busy = flag(make_line(outstanding="1000.00"), "MULTI_HEAD")
    services.case_claim_next(actor=op(analyst))
    services.case_claim_next(actor=op(analyst2))
    set_idle(idle, 31)
    version = fresh(idle).version

    released = services.cases_release_idle_claims()

    assert released == [idle.pk]
    idle = fresh(idle)
    assert (idle.assignee_id, idle.claimed_at, idle.version) == (None, None, version + 1)
    assert fresh(busy).assignee_id == analyst2.pk
    [event] = AuditEvent.objects.filter(action="case.release")
    assert (event.object_id, event.actor_kind, event.before, event.after, event.reason) == (
        idle.pk,
        "system",
        {"assignee_id": analyst.pk},
        {"assignee_id": None},
        "claim idle",
    )
    assert services.cases_release_idle_claims() == []


def test_escalated_cases_are_claimed_by_senior_reviewers_not_analysts(analyst, senior):
    case = flag(make_line(), "MULTI_HEAD")
    services.case_claim_next(actor=op(analyst))
    decide(case, analyst, "escalate", reason_code="needs_senior")
    assert fresh(case).status == CaseStatus.ESCALATED

    assert services.case_claim_next(actor=op(analyst)) is None
    escalated = services.case_claim_next(actor=op(senior))
    assert escalated is not None and escalated.pk == case.pk
    assert fresh(case).assignee_id == senior.pk


def test_an_escalated_case_is_decided_only_by_a_senior_reviewer(analyst, senior):
    case = flag(make_line(), "MULTI_HEAD")
    decide(case, analyst, "escalate", reason_code="needs_senior")
    before = case_state(case)

    with pytest.raises(NotAllowed) as excinfo:
        decide(case, analyst, "keep_frozen", reason_code="evidence_confirmed")
    assert str(excinfo.value) == "This case was escalated; a senior reviewer decides it"
    with pytest.raises(NotAllowed):
        services.case_claim(case_id=case.pk, actor=op(analyst))
    assert case_state(case) == before

    decide(case, senior, "keep_frozen", reason_code="evidence_confirmed")
    assert fresh(case).status == CaseStatus.RESOLVED


def test_cases_are_assigned_only_to_operators_who_can_decide_them(senior, auditor, analyst):
    case = flag(make_line(), "MULTI_HEAD")

    with pytest.raises(DomainError) as excinfo:
        services.cases_assign(case_ids=[case.pk], assignee_id=auditor.pk, actor=op(senior))

    assert str(excinfo.value) == f"operator {auditor.pk} does not exist, is inactive or cannot decide cases"
    assert fresh(case).assignee_id is None
    assert services.cases_assign(case_ids=[case.pk], assignee_id=analyst.pk, actor=op(senior)) == [case.pk]


def test_the_database_itself_refuses_a_decision_reviewed_by_its_proposer(analyst, senior):
    from django.db import IntegrityError

    case = frozen_multi_head_case()
    outcome = decide(case, analyst, "unfreeze", reason_code="data_error")
    decision = outcome.decision

    with pytest.raises(IntegrityError), transaction.atomic():
        Decision.objects.filter(pk=decision.pk).update(status="approved", reviewed_by=analyst)

    assert fresh(decision).status == "proposed"


def test_claiming_a_case_someone_is_working_on_is_a_conflict(analyst, analyst2):
    case = flag(make_line(), "MULTI_HEAD")
    services.case_claim(case_id=case.pk, actor=op(analyst))
    before = case_state(case)

    with pytest.raises(ConflictError) as excinfo:
        services.case_claim(case_id=case.pk, actor=op(analyst2))

    assert str(excinfo.value) == "This case is already claimed by ana"
    assert case_state(case) == before


# --- 2. concurrency: real transactions, each thread on its own connection


@pytest.mark.django_db(transaction=True)
def test_two_analysts_pressing_next_at_once_never_get_the_same_case():
    default_ruleset()
    ana, bo = make_role_operator("analyst", "ana"), make_role_operator("analyst", "bo")
    lines = [make_line(outstanding=f"{1000 + i}.00") for i in range(20)]
    for line in lines:
        for i in range(4):
            inquiry(line, timezone.now() - timedelta(days=1, hours=i), f"机构{i}")
    evaluate_lines([line.pk for line in lines])
    assert Case.objects.filter(assignee__isnull=True).count() == 20

    got: list[int] = []
    for _ in range(10):
        a, b = in_threads(
            lambda: services.case_claim_next(actor=op(ana)), lambda: services.case_claim_next(actor=op(bo))
        )
        assert isinstance(a, Case) and isinstance(b, Case), (a, b)
        assert a.pk != b.pk
        got += [a.pk, b.pk]

    assert sorted(got) == sorted(Case.objects.values_list("pk", flat=True))
    assert Case.objects.filter(assignee=ana).count() == 10
    assert Case.objects.filter(assignee=bo).count() == 10
    assert AuditEvent.objects.filter(action="case.claim").count() == 20


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("first", "second"), [("keep_frozen", "unfreeze"), ("unfreeze", "unfreeze")])
def test_two_concurrent_decisions_on_one_case_apply_exactly_once(first, second):
    default_ruleset()
    ana, bo = make_role_operator("analyst", "ana"), make_role_operator("analyst", "bo")
    for _ in range(3):
        case = frozen_medium_only_case()
        line = case.line
        version = case.version

        a, b = in_threads(
            lambda case=case, version=version: decide(case, ana, first, expected_version=version),
            lambda case=case, version=version: decide(case, bo, second, expected_version=version),
        )

        outcomes = [r for r in (a, b) if isinstance(r, services.DecisionOutcome)]
        conflicts = [r for r in (a, b) if isinstance(r, ConflictError)]
        assert (len(outcomes), len(conflicts)) == (1, 1), (a, b)
        [winner] = outcomes
        assert winner.applied and not winner.replayed
        assert str(conflicts[0]) in {STALE, "This case is already resolved"}
        [decision] = Decision.objects.filter(case=case)
        assert decision.pk == winner.decision.pk
        unfroze = decision.kind == "unfreeze"
        assert fresh(line).status == (LineStatus.ACTIVE if unfroze else LineStatus.FROZEN)
        assert LineChange.objects.filter(line=line, kind="unfreeze").count() == int(unfroze)
        assert AuditEvent.objects.filter(account_id=line.pk, action="line.unfreeze").count() == int(unfroze)
        assert AuditEvent.objects.filter(account_id=line.pk, action="decision.apply").count() == 1
        case = fresh(case)
        assert (case.status, case.version) == (CaseStatus.RESOLVED, version + 1)


def test_a_double_submitted_form_applies_once_and_the_second_is_a_replay(analyst):
    case = frozen_medium_only_case()
    version = case.version

    first = decide(case, analyst, "unfreeze", key="form-token-1", expected_version=version)
    second = decide(case, analyst, "unfreeze", key="form-token-1", expected_version=version)

    assert (first.applied, first.replayed) == (True, False)
    assert (second.replayed, second.decision.pk) == (True, first.decision.pk)
    assert Decision.objects.filter(case=case).count() == 1
    assert LineChange.objects.filter(line=case.line, kind="unfreeze").count() == 1
    assert Notification.objects.filter(line=case.line, kind=NotificationKind.UNFREEZE).count() == 1
    assert fresh(case).version == version + 1


@pytest.mark.django_db(transaction=True)
def test_a_form_submitted_twice_at_the_same_moment_applies_once():
    default_ruleset()
    ana = make_role_operator("analyst", "ana")
    for _ in range(3):
        case = frozen_medium_only_case()
        version = case.version
        key = uuid.uuid4().hex

        a, b = in_threads(
            lambda case=case, version=version, key=key: decide(
                case, ana, "unfreeze", key=key, expected_version=version
            ),
            lambda case=case, version=version, key=key: decide(
                case, ana, "unfreeze", key=key, expected_version=version
            ),
        )

        assert isinstance(a, services.DecisionOutcome) and isinstance(b, services.DecisionOutcome), (a, b)
        assert sorted([a.replayed, b.replayed]) == [False, True]
        assert a.decision.pk == b.decision.pk
        assert Decision.objects.filter(case=case).count() == 1
        assert LineChange.objects.filter(line=case.line, kind="unfreeze").count() == 1
        assert fresh(case).version == version + 1


@pytest.mark.django_db(transaction=True)
def test_a_decision_during_an_evaluation_of_the_same_account_waits_instead_of_deadlocking():
    # The engine locks a batch's lines, then raises their cases' severity; a decision must take the
    # same locks in the same order, or each waits for the other until PostgreSQL kills one.
    default_ruleset()
    ana = make_role_operator("analyst", "ana")
    case = frozen_medium_only_case()
    line = case.line
    version = case.version
    for i in range(4):
        inquiry(line, timezone.now() - timedelta(days=1, hours=i), f"机构{i}")
    decider_pid: list[int] = []
    outcome: list[object] = []

    def decide_in_own_connection():
        try:
            connection.ensure_connection()
            decider_pid.append(connection.connection.info.backend_pid)
            outcome.append(decide(case, ana, "keep_frozen", reason_code="evidence_confirmed", expected_version=version))
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)
        finally:
            connection.close()

    decider = threading.Thread(target=decide_in_own_connection)
    with transaction.atomic():
        CreditLine.objects.select_for_update().get(pk=line.pk)  # the engine's first step
        decider.start()
        deadline = time.monotonic() + 10
        waiting = False
        while not waiting and time.monotonic() < deadline:
            time.sleep(0.05)
            if decider_pid:
                with connection.cursor() as cur:
                    cur.execute("SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted", [decider_pid[0]])
                    waiting = cur.fetchone()[0] > 0
        assert waiting, "the decision never waited for the line"
        result = evaluate_lines([line.pk])
    decider.join(timeout=30)

    assert result.fired == 1
    [got] = outcome
    assert isinstance(got, ConflictError), got
    assert str(got) == STALE
    case = fresh(case)
    assert (case.status, case.severity_rank, case.version) == (CaseStatus.OPEN, 3, version + 1)
    assert not Decision.objects.filter(case=case).exists()


# --- 3. four eyes


def test_an_analysts_unfreeze_of_a_line_with_a_high_signal_becomes_a_proposal(analyst):
    case = frozen_multi_head_case()
    line = case.line
    assert (line.status, case.status) == (LineStatus.FROZEN, CaseStatus.OPEN)

    outcome = decide(case, analyst, "unfreeze", note="收入证明已核实")

    assert (outcome.applied, outcome.replayed) == (False, False)
    decision = fresh(outcome.decision)
    assert (decision.status, decision.kind, decision.new_limit, decision.proposed_by_id) == (
        DecisionStatus.PROPOSED,
        "unfreeze",
        Decimal("20000.00"),
        analyst.pk,
    )
    assert fresh(case).status == CaseStatus.AWAITING_APPROVAL
    assert line_state(line) == (LineStatus.FROZEN, Decimal("20000.00"), Decimal("15000.00"))
    assert Signal.objects.get(line=line).status == SignalStatus.ACTIVE
    assert not LineChange.objects.filter(line=line, kind="unfreeze").exists()
    assert operator_actions(line) == ["decision.propose", "case.update"]


@pytest.mark.parametrize("approve", [True, False])
def test_nobody_reviews_their_own_proposal_even_a_senior_reviewer(senior, approve):
    case = frozen_multi_head_case()
    proposal = decide(case, senior, "unfreeze").decision
    before = (case_state(case), line_state(case.line))

    with pytest.raises(NotAllowed) as excinfo:
        services.decision_review(decision_id=proposal.pk, actor=op(senior), approve=approve)

    assert str(excinfo.value) == OWN_PROPOSAL
    assert fresh(proposal).status == DecisionStatus.PROPOSED
    assert (case_state(case), line_state(case.line)) == before
    assert "decision.approve" not in actions(case.line)


def test_a_different_senior_reviewer_approves_and_the_line_is_unfrozen_for_good(analyst, senior):
    case = frozen_multi_head_case()
    line = case.line
    signal = Signal.objects.get(line=line)
    proposal = decide(case, analyst, "unfreeze", new_limit=Decimal("12000.00")).decision

    approved = services.decision_review(decision_id=proposal.pk, actor=op(senior), approve=True, note="同意")

    assert (approved.status, approved.reviewed_by_id, approved.review_note) == (
        DecisionStatus.APPROVED,
        senior.pk,
        "同意",
    )
    line = fresh(line)
    # available: at most the new limit minus what is outstanding
    assert (line.status, line.frozen_since, line.limit, line.available) == (
        LineStatus.ACTIVE,
        None,
        Decimal("12000.00"),
        Decimal("7000.00"),
    )
    signal = fresh(signal)
    assert (signal.status, signal.cleared_at is not None) == (SignalStatus.OVERTURNED, True)
    [suppression] = Suppression.objects.filter(line=line)
    assert (suppression.code, suppression.signal_id, suppression.created_by_id) == ("MULTI_HEAD", signal.pk, senior.pk)
    assert suppression.event_ids == services.evidence_event_keys(signal.evidence)
    case = fresh(case)
    assert (case.status, case.outcome, case.resolved_at is not None) == (CaseStatus.RESOLVED, "unfrozen", True)
    assert operator_actions(line) == [
        "decision.propose",
        "case.update",
        "line.unfreeze",
        "signal.overturn",
        "decision.approve",
        "case.update",
    ]
    propose, approve = (
        AuditEvent.objects.get(account_id=line.pk, action="decision.propose"),
        AuditEvent.objects.get(account_id=line.pk, action="decision.approve"),
    )
    assert (propose.actor_user_id, approve.actor_user_id) == (analyst.pk, senior.pk)
    [change] = LineChange.objects.filter(line=line, kind="unfreeze")
    assert (change.actor_user_id, change.status_before, change.status_after, change.limit_after) == (
        senior.pk,
        "frozen",
        "active",
        Decimal("12000.00"),
    )
    [notice] = Notification.objects.filter(line=line, kind=NotificationKind.UNFREEZE)
    assert "当前额度 ¥12,000.00" in notice.body

    # The same evidence never freezes it again.
    result = evaluate_lines([line.pk])

    assert (result.fired, result.suppressed, result.frozen) == (0, 1, 0)
    assert fresh(line).status == LineStatus.ACTIVE
    assert not Case.objects.filter(line=line).exclude(status="resolved").exists()


@pytest.mark.parametrize(
    ("new_limit", "applied"), [(Decimal("49999.99"), True), (Decimal("50000.00"), False), (None, False)]
)
def test_restoring_fifty_thousand_or_more_needs_approval_even_without_a_high_signal(analyst, new_limit, applied):
    case = frozen_medium_only_case(limit="80000.00")
    assert not Signal.objects.filter(line=case.line, severity="high").exists()

    outcome = decide(case, analyst, "unfreeze", new_limit=new_limit)

    assert outcome.applied == applied
    assert outcome.decision.status == (DecisionStatus.APPLIED if applied else DecisionStatus.PROPOSED)
    assert fresh(case).status == (CaseStatus.RESOLVED if applied else CaseStatus.AWAITING_APPROVAL)
    assert fresh(case.line).status == (LineStatus.ACTIVE if applied else LineStatus.FROZEN)


def test_the_four_eyes_limit_is_a_setting(analyst, settings):
    settings.FOUR_EYES_LIMIT = 10000
    case = frozen_medium_only_case(limit="20000.00")

    outcome = decide(case, analyst, "unfreeze", new_limit=Decimal("10000.00"))

    assert outcome.decision.status == DecisionStatus.PROPOSED


def test_below_the_limit_an_analyst_unfreezes_a_medium_only_line_directly(analyst):
    case = frozen_medium_only_case(limit="20000.00")
    line = case.line
    assert line_state(line)[0] == LineStatus.FROZEN

    outcome = decide(case, analyst, "unfreeze")

    assert (outcome.applied, outcome.decision.status, outcome.decision.new_limit) == (
        True,
        DecisionStatus.APPLIED,
        Decimal("20000.00"),
    )
    assert fresh(line).status == LineStatus.ACTIVE
    assert fresh(case).outcome == "unfrozen"
    assert operator_actions(line) == ["line.unfreeze", "decision.apply", "case.update"]
    assert Notification.objects.filter(line=line, kind=NotificationKind.UNFREEZE).count() == 1


def test_an_analyst_cannot_approve_a_proposal(analyst, analyst2):
    case = frozen_multi_head_case()
    proposal = decide(case, analyst, "unfreeze").decision

    with pytest.raises(NotAllowed) as excinfo:
        services.decision_review(decision_id=proposal.pk, actor=op(analyst2), approve=True)

    assert str(excinfo.value) == "Only a senior reviewer can approve or reject a proposal"
    assert fresh(proposal).status == DecisionStatus.PROPOSED
    assert fresh(case.line).status == LineStatus.FROZEN


def test_rejecting_a_proposal_reopens_the_case_and_keeps_the_line_frozen(analyst, senior):
    case = frozen_multi_head_case()
    proposal = decide(case, analyst, "unfreeze").decision
    assert fresh(case).status == CaseStatus.AWAITING_APPROVAL

    rejected = services.decision_review(decision_id=proposal.pk, actor=op(senior), approve=False, note="证据不足")

    assert (rejected.status, rejected.reviewed_by_id, rejected.review_note) == (
        DecisionStatus.REJECTED,
        senior.pk,
        "证据不足",
    )
    assert fresh(case).status == CaseStatus.OPEN
    assert line_state(case.line) == (LineStatus.FROZEN, Decimal("20000.00"), Decimal("15000.00"))
    assert Signal.objects.get(line=case.line).status == SignalStatus.ACTIVE
    assert operator_actions(case.line)[-2:] == ["decision.reject", "case.update"]


def test_a_proposal_is_reviewed_once(analyst, senior, senior2):
    case = frozen_multi_head_case()
    proposal = decide(case, analyst, "unfreeze").decision
    services.decision_review(decision_id=proposal.pk, actor=op(senior), approve=True)

    with pytest.raises(ConflictError) as excinfo:
        services.decision_review(decision_id=proposal.pk, actor=op(senior2), approve=False)

    assert str(excinfo.value) == "This proposal was already approved and applied"
    assert fresh(proposal).reviewed_by_id == senior.pk
    assert fresh(case.line).status == LineStatus.ACTIVE


@pytest.mark.parametrize(("kind", "new_limit"), [("keep_frozen", None), ("unfreeze", None), ("cut_limit", "100.00")])
def test_a_pending_proposal_blocks_other_decisions(analyst, senior, kind, new_limit):
    case = frozen_multi_head_case()
    decide(case, analyst, "unfreeze")
    before = (case_state(case), line_state(case.line))

    with pytest.raises(DomainError) as excinfo:
        decide(case, senior, kind, new_limit=Decimal(new_limit) if new_limit else None)

    assert str(excinfo.value) == PENDING
    assert (case_state(case), line_state(case.line)) == before
    assert Decision.objects.filter(case=case).count() == 1


def test_a_pending_proposal_still_allows_a_credit_education_notice(analyst):
    case = frozen_multi_head_case()
    decide(case, analyst, "unfreeze")

    outcome = decide(case, analyst, "educate", reason_code="other")

    assert outcome.decision.status == DecisionStatus.APPLIED
    assert fresh(case).status == CaseStatus.AWAITING_APPROVAL
    assert Notification.objects.filter(line=case.line, kind=NotificationKind.CREDIT_EDUCATION).count() == 1


# --- 4. each decision


def test_keep_frozen_resolves_the_case_and_leaves_the_line_as_it_was(analyst):
    case = frozen_multi_head_case()
    before = line_state(case.line)

    outcome = decide(case, analyst, "keep_frozen", reason_code="evidence_confirmed", note="多头借贷属实")

    assert (outcome.applied, outcome.decision.status, outcome.decision.note) == (
        True,
        DecisionStatus.APPLIED,
        "多头借贷属实",
    )
    case = fresh(case)
    assert (case.status, case.outcome) == (CaseStatus.RESOLVED, "kept_frozen")
    assert line_state(case.line) == before
    apply = AuditEvent.objects.get(account_id=case.line_id, action="decision.apply")
    assert apply.after is not None
    assert (apply.after["kind"], apply.reason) == ("keep_frozen", "evidence_confirmed: 多头借贷属实")


def test_keep_frozen_needs_a_frozen_line(analyst):
    case = flag(make_line(), "PROFILE_STALE")
    assert fresh(case.line).status == LineStatus.ACTIVE

    with pytest.raises(DomainError) as excinfo:
        decide(case, analyst, "keep_frozen")

    assert str(excinfo.value) == "The line is not frozen; nothing to keep frozen"
    assert fresh(case).status == CaseStatus.OPEN


@pytest.mark.parametrize("new_limit", [Decimal("0.00"), Decimal("20000.01")])
def test_an_unfreeze_limit_must_be_above_zero_and_at_most_the_current_limit(analyst, new_limit):
    case = frozen_medium_only_case()

    with pytest.raises(DomainError) as excinfo:
        decide(case, analyst, "unfreeze", new_limit=new_limit)

    assert str(excinfo.value) == "The new limit must be above ¥0.00 and at most the current limit ¥20,000.00"
    assert fresh(case.line).status == LineStatus.FROZEN
    assert not Decision.objects.exists()


@pytest.mark.parametrize("new_limit", [None, Decimal("20000.00"), Decimal("25000.00")])
def test_a_limit_cut_needs_a_new_limit_below_the_current_one(analyst, new_limit):
    case = flag(make_line(limit="20000.00", available="15000.00", outstanding="5000.00"), "PROFILE_STALE")
    before = (case_state(case), line_state(case.line))

    with pytest.raises(DomainError) as excinfo:
        decide(case, analyst, "cut_limit", new_limit=new_limit)

    assert str(excinfo.value) == "A cut needs a new limit from ¥0.00 up to below the current ¥20,000.00"
    assert (case_state(case), line_state(case.line)) == before
    assert not Decision.objects.exists()


def test_a_limit_cut_sets_the_limit_and_keeps_available_within_it(analyst):
    case = flag(make_line(limit="20000.00", available="15000.00", outstanding="5000.00"), "PROFILE_STALE")
    line = case.line
    assert line_state(line) == (LineStatus.ACTIVE, Decimal("20000.00"), Decimal("7500.00"))  # the engine's 50% cut

    outcome = decide(case, analyst, "cut_limit", reason_code="risk_appetite", new_limit=Decimal("12000.00"))

    assert outcome.applied
    # 12,000 limit with 5,000 outstanding leaves at most 7,000 to draw.
    assert line_state(line) == (LineStatus.ACTIVE, Decimal("12000.00"), Decimal("7000.00"))
    [change] = LineChange.objects.filter(line=line, kind="limit_change")
    assert (change.limit_before, change.limit_after, change.available_before, change.available_after) == (
        Decimal("20000.00"),
        Decimal("12000.00"),
        Decimal("7500.00"),
        Decimal("7000.00"),
    )
    assert (fresh(case).status, fresh(case).outcome) == (CaseStatus.RESOLVED, "limit_cut")
    [notice] = Notification.objects.filter(line=line, kind=NotificationKind.LIMIT_CHANGE)
    assert "额度已调整为 ¥12,000.00" in notice.body


def test_a_reminder_is_sent_with_the_overdue_amount_and_the_case_stays_open(analyst):
    line = make_line()
    case = flag(line, "MULTI_HEAD", "OVERDUE", overdue_days=10)  # the overdue part is a low reminder
    engine_reminders = Notification.objects.filter(line=line, kind=NotificationKind.OVERDUE_REMINDER).count()
    version = case.version

    outcome = decide(case, analyst, "remind", reason_code="other")

    assert (outcome.applied, outcome.decision.status) == (True, DecisionStatus.APPLIED)
    case = fresh(case)
    assert (case.status, case.version) == (CaseStatus.OPEN, version + 1)
    reminders = Notification.objects.filter(line=line, kind=NotificationKind.OVERDUE_REMINDER).order_by("pk")
    assert reminders.count() == engine_reminders + 1
    last = reminders.last()
    assert last is not None
    assert "您有一笔 ¥1,000.00 的还款已逾期 10 天" in last.body


def test_a_reminder_needs_something_overdue(analyst):
    case = frozen_multi_head_case()

    with pytest.raises(DomainError) as excinfo:
        decide(case, analyst, "remind", reason_code="other")

    assert str(excinfo.value) == "Nothing is overdue on this account; send a credit-education notice instead"
    assert not Notification.objects.filter(line=case.line, kind=NotificationKind.OVERDUE_REMINDER).exists()
    assert not Decision.objects.exists()


def test_a_credit_education_notice_is_queued_and_the_case_stays_open(analyst):
    case = frozen_multi_head_case()

    decide(case, analyst, "educate", reason_code="other")

    assert fresh(case).status == CaseStatus.OPEN
    [notice] = Notification.objects.filter(line=case.line, kind=NotificationKind.CREDIT_EDUCATION)
    assert notice.body.startswith("【借呗】温馨提示")


def test_escalating_hands_the_case_to_senior_reviewers(analyst):
    case = frozen_multi_head_case()
    services.case_claim(case_id=case.pk, actor=op(analyst))
    assert fresh(case).assignee_id == analyst.pk

    decide(case, analyst, "escalate", reason_code="needs_senior")

    case = fresh(case)
    assert (case.status, case.assignee_id, case.claimed_at) == (CaseStatus.ESCALATED, None, None)
    update = AuditEvent.objects.filter(account_id=case.line_id, action="case.update").latest("pk")
    assert (update.before, update.after) == (
        {"status": "open", "assignee_id": analyst.pk},
        {"status": "escalated", "assignee_id": None},
    )


def test_a_stale_form_is_refused_and_changes_nothing(analyst, analyst2):
    case = frozen_multi_head_case()
    rendered_version = case.version
    services.case_claim(case_id=case.pk, actor=op(analyst2))  # someone acts meanwhile
    before = (case_state(case), line_state(case.line), actions(case.line))

    with pytest.raises(ConflictError) as excinfo:
        decide(case, analyst, "keep_frozen", expected_version=rendered_version)

    assert str(excinfo.value) == STALE
    assert (case_state(case), line_state(case.line), actions(case.line)) == before
    assert not Decision.objects.exists()


def test_a_resolved_case_takes_no_more_decisions(analyst):
    case = frozen_multi_head_case()
    decide(case, analyst, "keep_frozen")

    with pytest.raises(ConflictError) as excinfo:
        decide(case, analyst, "unfreeze")

    assert str(excinfo.value) == "This case is already resolved"
    assert Decision.objects.filter(case=case).count() == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda case, actor: services.case_claim_next(actor=actor), "Your role cannot claim cases"),
        (lambda case, actor: services.case_claim(case_id=case.pk, actor=actor), "Your role cannot claim cases"),
        (
            lambda case, actor: services.case_decide(
                case_id=case.pk,
                actor=actor,
                kind="keep_frozen",
                reason_code="other",
                expected_version=case.version,
                idempotency_key="k",
            ),
            "Your role cannot decide cases",
        ),
        (
            lambda case, actor: services.borrower_reveal(
                case_id=case.pk, actor=actor, fields=["phone"], reason="借款人来电核实身份"
            ),
            "Your role cannot reveal personal data",
        ),
        (
            lambda case, actor: services.note_add(case_id=case.pk, actor=actor, text="看看"),
            "Your role cannot add notes",
        ),
        (
            lambda case, actor: services.cases_assign(case_ids=[case.pk], assignee_id=None, actor=actor),
            "Your role cannot release cases",
        ),
    ],
    ids=["claim_next", "claim", "decide", "reveal", "note", "release"],
)
def test_an_auditor_reads_but_changes_nothing(auditor, call, message):
    case = frozen_multi_head_case()
    before = (case_state(case), line_state(case.line), actions(case.line))

    with pytest.raises(NotAllowed) as excinfo:
        call(case, op(auditor))

    assert str(excinfo.value) == message
    assert (case_state(case), line_state(case.line), actions(case.line)) == before
    assert not Note.objects.exists()


# --- 5. revealing personal data


def test_revealing_personal_data_returns_it_and_audits_the_reason_but_not_the_values(senior):
    case = frozen_multi_head_case(name="王小明", phone="13812345678", national_id="330102199001011234")

    revealed = services.borrower_reveal(
        case_id=case.pk, actor=op(senior), fields=["phone", "name"], reason="借款人来电，核实身份"
    )

    assert revealed == {"name": "王小明", "phone": "13812345678"}
    [event] = AuditEvent.objects.filter(action="borrower.reveal")
    assert (event.actor_user_id, event.object_type, event.object_id, event.account_id) == (
        senior.pk,
        "borrower",
        case.line.borrower_id,
        case.line_id,
    )
    assert (event.after, event.reason) == ({"fields": ["name", "phone"]}, "借款人来电，核实身份")
    stored = json.dumps([event.before, event.after, event.reason], ensure_ascii=False)
    assert "13812345678" not in stored and "王小明" not in stored


def test_an_analyst_cannot_reveal_personal_data(analyst):
    case = frozen_multi_head_case()

    with pytest.raises(NotAllowed) as excinfo:
        services.borrower_reveal(case_id=case.pk, actor=op(analyst), fields=["phone"], reason="借款人来电，核实身份")

    assert str(excinfo.value) == "Your role cannot reveal personal data"
    assert not AuditEvent.objects.filter(action="borrower.reveal").exists()


@pytest.mark.parametrize("reason", ["", "  短理由  ", "123456789"])
def test_revealing_needs_a_reason_of_ten_characters(senior, reason):
    case = frozen_multi_head_case()

    with pytest.raises(DomainError) as excinfo:
        services.borrower_reveal(case_id=case.pk, actor=op(senior), fields=["phone"], reason=reason)

    assert str(excinfo.value) == "Type the reason for revealing personal data (at least 10 characters)"
    assert not AuditEvent.objects.filter(action="borrower.reveal").exists()


@pytest.mark.parametrize("fields", [[], ["employer"], ["phone", "password"]])
def test_only_name_phone_and_national_id_can_be_revealed(senior, fields):
    case = frozen_multi_head_case()

    with pytest.raises(DomainError) as excinfo:
        services.borrower_reveal(case_id=case.pk, actor=op(senior), fields=fields, reason="借款人来电，核实身份")

    assert str(excinfo.value) == "Choose what to reveal: name, phone or national id"
    assert not AuditEvent.objects.filter(action="borrower.reveal").exists()


# --- 6. notes


def test_notes_are_appended_and_audited(analyst, analyst2):
    case = frozen_multi_head_case()
    assert not Note.objects.exists()

    first = services.note_add(case_id=case.pk, actor=op(analyst), text="  已致电借款人  ")
    second = services.note_add(case_id=case.pk, actor=op(analyst2), text="借款人称将提供收入证明")

    notes = list(Note.objects.filter(line=case.line).order_by("pk").values_list("pk", "author_id", "text", "case_id"))
    assert notes == [
        (first.pk, analyst.pk, "已致电借款人", case.pk),
        (second.pk, analyst2.pk, "借款人称将提供收入证明", case.pk),
    ]
    added = AuditEvent.objects.filter(action="note.add").order_by("pk")
    assert [(a.object_id, a.actor_user_id, a.account_id, a.after) for a in added] == [
        (first.pk, analyst.pk, case.line_id, {"case_id": case.pk}),
        (second.pk, analyst2.pk, case.line_id, {"case_id": case.pk}),
    ]


@pytest.mark.parametrize(("text", "message"), [("", "A note cannot be empty"), (" \n ", "A note cannot be empty")])
def test_an_empty_note_is_refused(analyst, text, message):
    case = frozen_multi_head_case()

    with pytest.raises(DomainError) as excinfo:
        services.note_add(case_id=case.pk, actor=op(analyst), text=text)

    assert str(excinfo.value) == message
    assert not Note.objects.exists()
    assert not AuditEvent.objects.filter(action="note.add").exists()


def test_a_note_is_at_most_five_thousand_characters(analyst):
    case = frozen_multi_head_case()

    with pytest.raises(DomainError) as excinfo:
        services.note_add(case_id=case.pk, actor=op(analyst), text="长" * 5001)

    assert str(excinfo.value) == "A note is at most 5,000 characters"
    assert not Note.objects.exists()


# --- 7. assignment


def test_a_senior_reviewer_assigns_cases_in_bulk_with_one_audit_event_per_case_changed(senior, analyst):
    a, b, c = (flag(make_line(outstanding=f"{n}000.00"), "MULTI_HEAD") for n in (3, 2, 1))
    services.case_claim(case_id=c.pk, actor=op(analyst))  # already the analyst's
    versions = {x.pk: fresh(x).version for x in (a, b, c)}

    changed = services.cases_assign(case_ids=[a.pk, b.pk, c.pk], assignee_id=analyst.pk, actor=op(senior))

    assert sorted(changed) == sorted([a.pk, b.pk])
    assert [fresh(x).assignee_id for x in (a, b, c)] == [analyst.pk] * 3
    assert [fresh(x).version - versions[x.pk] for x in (a, b, c)] == [1, 1, 0]
    assigned = AuditEvent.objects.filter(action="case.assign").order_by("object_id")
    assert [(e.object_id, e.actor_user_id, e.before, e.after) for e in assigned] == [
        (x.pk, senior.pk, {"assignee_id": None}, {"assignee_id": analyst.pk})
        for x in sorted((a, b), key=lambda x: x.pk)
    ]


def test_an_analyst_cannot_assign_cases(analyst, analyst2):
    case = frozen_multi_head_case()

    with pytest.raises(NotAllowed) as excinfo:
        services.cases_assign(case_ids=[case.pk], assignee_id=analyst2.pk, actor=op(analyst))

    assert str(excinfo.value) == "Your role cannot assign cases to others"
    assert fresh(case).assignee_id is None
    assert not AuditEvent.objects.filter(action="case.assign").exists()


def test_an_analyst_releases_only_their_own_cases(analyst, analyst2):
    mine = flag(make_line(outstanding="9000.00"), "MULTI_HEAD")
    theirs = flag(make_line(outstanding="1000.00"), "MULTI_HEAD")
    services.case_claim(case_id=mine.pk, actor=op(analyst))
    services.case_claim(case_id=theirs.pk, actor=op(analyst2))

    released = services.cases_assign(case_ids=[mine.pk, theirs.pk], assignee_id=None, actor=op(analyst))

    assert released == [mine.pk]
    assert (fresh(mine).assignee_id, fresh(theirs).assignee_id) == (None, analyst2.pk)
    [event] = AuditEvent.objects.filter(action="case.release")
    assert (event.object_id, event.before, event.after) == (mine.pk, {"assignee_id": analyst.pk}, {"assignee_id": None})


def test_a_senior_reviewer_releases_anyones_cases(senior, analyst):
    case = frozen_multi_head_case()
    services.case_claim(case_id=case.pk, actor=op(analyst))

    assert services.cases_assign(case_ids=[case.pk], assignee_id=None, actor=op(senior)) == [case.pk]

    assert fresh(case).assignee_id is None
    assert AuditEvent.objects.get(action="case.release").actor_user_id == senior.pk


def test_assigning_to_an_unknown_operator_is_refused(senior):
    case = frozen_multi_head_case()

    with pytest.raises(DomainError) as excinfo:
        services.cases_assign(case_ids=[case.pk], assignee_id=987654321, actor=op(senior))

    assert str(excinfo.value) == "operator 987654321 does not exist, is inactive or cannot decide cases"
    assert fresh(case).assignee_id is None
    assert not AuditEvent.objects.filter(action="case.assign").exists()


def test_resolved_cases_are_not_assigned(senior, analyst):
    case = frozen_multi_head_case()
    decide(case, senior, "keep_frozen")

    assert services.cases_assign(case_ids=[case.pk], assignee_id=analyst.pk, actor=op(senior)) == []
    assert fresh(case).assignee_id is None


def test_re_evaluation_keeps_the_queue_exposure_in_step_with_the_outstanding_principal():
    case = flag(make_line(outstanding="5000.00"), "MULTI_HEAD")
    assert fresh(case).exposure == Decimal("5000.00")
    key_before = fresh(case).queue_key

    CreditLine.objects.filter(pk=case.line_id).update(outstanding=Decimal("60000.00"))
    evaluate_lines([case.line_id])

    case = fresh(case)
    assert case.exposure == Decimal("60000.00")
    assert case.queue_key < key_before  # higher exposure, earlier in the queue
    assert case.risk_tier == 1
