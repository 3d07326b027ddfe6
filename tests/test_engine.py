"""The risk engine end to end: rules at their thresholds, evidence, signals, policy, cases, audit, outbox.

Every test evaluates at tests.factories.NOW against the default ruleset (DESIGN.md's four families).
"""

from __future__ import annotations

import logging
import re
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts import services
from accounts.engine import evaluate_lines
from accounts.models import (
    Case,
    CaseStatus,
    CreditLine,
    Installment,
    LineChange,
    LineStatus,
    Notification,
    NotificationKind,
    RuleAction,
    RuleCode,
    Severity,
    Signal,
    SignalStatus,
    Suppression,
)
from accounts.notifications import ConsoleSender, Outgoing, notifications_queue, notifications_send_pending
from appeals.links import read_link
from riskops.core.audit import Actor
from riskops.core.errors import DomainError
from riskops.models import AuditEvent
from tests.factories import (
    INSTITUTIONS,
    NOW,
    TODAY,
    default_ruleset,
    drawdown,
    income_record,
    inquiry,
    installment,
    make_line,
    make_operator,
    profile_update,
    transfer,
)
from tests.helpers import fresh

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ruleset")]

SECOND = timedelta(seconds=1)


# --- helpers


def evaluate(*lines: CreditLine):
    return evaluate_lines([line.pk for line in lines], now=NOW)


def codes_fired(line: CreditLine) -> set[tuple[str, str]]:
    return set(Signal.objects.filter(line=line, status=SignalStatus.ACTIVE).values_list("code", "severity"))


def inquiries(line: CreditLine, count: int, institutions: int, *, days_ago: int = 1) -> list:
    """`count` inquiries a day or so before NOW, cycling over `institutions` distinct lenders."""
    return [
        inquiry(line, NOW - timedelta(days=days_ago, hours=i), INSTITUTIONS[i % institutions]) for i in range(count)
    ]


def overdue(line: CreditLine, days_past_due: int, amount: str = "1000.00", **kwargs):
    return installment(line, TODAY - timedelta(days=days_past_due), amount, **kwargs)


def abnormal_use(line: CreditLine, *, amount: str = "10000.00", risky: str = "6000.00") -> list:
    d = drawdown(line, NOW - timedelta(days=5), amount)
    return [d, transfer(line, d.occurred_at + timedelta(days=1), risky, "securities")]


def stale_profile(line: CreditLine) -> list:
    return [income_record(line, NOW - timedelta(days=90), "5000.00")]


def notifications_of(line: CreditLine, kind: str) -> list[Notification]:
    return list(Notification.objects.filter(line=line, kind=kind))


def audit_of(line: CreditLine, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(account_id=line.pk, action=action).order_by("pk"))


def state() -> dict:
    """Everything the engine can change, to compare before and after an evaluation."""
    return {
        "signals": list(Signal.objects.order_by("pk").values_list("pk", "status", "case_id")),
        "cases": list(Case.objects.order_by("pk").values_list("pk", "status", "severity_rank", "updated_at")),
        "audit": AuditEvent.objects.count(),
        "line_changes": LineChange.objects.count(),
        "notifications": Notification.objects.count(),
        "suppressions": Suppression.objects.count(),
        "lines": list(
            CreditLine.objects.order_by("pk").values_list("pk", "status", "available", "frozen_since", "updated_at")
        ),
    }


# --- 1. every rule just under, at and just over its thresholds

# MULTI_HEAD


@pytest.mark.parametrize(("count", "fires"), [(3, False), (4, True), (5, True)])
def test_multi_head_fires_from_four_inquiries_from_three_institutions(count, fires):
    line = make_line()
    inquiries(line, count, institutions=3)
    assert codes_fired(line) == set()

    result = evaluate(line)

    assert result.fired == int(fires)
    assert codes_fired(line) == ({("MULTI_HEAD", "high")} if fires else set())
    assert fresh(line).status == (LineStatus.FROZEN if fires else LineStatus.ACTIVE)


@pytest.mark.parametrize(("institutions", "fires"), [(2, False), (3, True), (4, True)])
def test_multi_head_needs_three_distinct_institutions(institutions, fires):
    line = make_line()
    inquiries(line, 4, institutions=institutions)

    result = evaluate(line)

    assert result.fired == int(fires)
    assert codes_fired(line) == ({("MULTI_HEAD", "high")} if fires else set())
    assert fresh(line).status == (LineStatus.FROZEN if fires else LineStatus.ACTIVE)


@pytest.mark.parametrize(
    ("age", "counted"),
    [
        (timedelta(days=30) - SECOND, True),
        (timedelta(days=30), True),
        (timedelta(days=30) + SECOND, False),
    ],
    ids=["30d-1s", "30d", "30d+1s"],
)
def test_multi_head_window_is_the_thirty_days_ending_at_now_both_ends_included(age, counted):
    # "Within 30 days" is [NOW - 30 days, NOW], like the 7 days after a drawdown: an inquiry exactly
    # 30 days old still counts, one a second older does not.
    line = make_line()
    inquiries(line, 3, institutions=3)
    edge = inquiry(line, NOW - age, INSTITUTIONS[3])

    evaluate(line)

    signal = Signal.objects.filter(line=line, code=RuleCode.MULTI_HEAD).first()
    assert (signal is not None) == counted
    if counted:
        assert signal is not None
        assert edge.pk in signal.evidence["events"]["inquiry"]


def test_multi_head_ignores_inquiries_after_the_evaluation_time():
    line = make_line()
    inquiries(line, 3, institutions=3)
    inquiry(line, NOW + SECOND, INSTITUTIONS[3])

    assert evaluate(line).fired == 0
    assert codes_fired(line) == set()


# OVERDUE


@pytest.mark.parametrize(
    ("days_past_due", "severity", "action", "status"),
    [
        (1, Severity.LOW, RuleAction.REMIND, LineStatus.ACTIVE),
        (29, Severity.LOW, RuleAction.REMIND, LineStatus.ACTIVE),
        (30, Severity.HIGH, RuleAction.FREEZE, LineStatus.FROZEN),
        (31, Severity.HIGH, RuleAction.FREEZE, LineStatus.FROZEN),
    ],
)
def test_overdue_reminds_before_thirty_days_and_freezes_from_thirty(days_past_due, severity, action, status):
    line = make_line()
    overdue(line, days_past_due)
    assert fresh(line).status == LineStatus.ACTIVE

    result = evaluate(line)

    signal = Signal.objects.get(line=line)
    assert (signal.code, signal.severity, signal.action) == (RuleCode.OVERDUE, severity, action)
    assert signal.evidence["values"]["max_days_past_due"] == days_past_due
    assert fresh(line).status == status
    reminders = notifications_of(line, NotificationKind.OVERDUE_REMINDER)
    freezes = notifications_of(line, NotificationKind.FREEZE)
    if action == RuleAction.REMIND:
        assert (result.reminded, result.frozen) == (1, 0)
        assert len(reminders) == 1
        assert f"已逾期 {days_past_due} 天" in reminders[0].body
        assert freezes == []
        # A reminder educates; it is not a case for review.
        assert not Case.objects.filter(line=line).exists()
    else:
        assert (result.reminded, result.frozen) == (0, 1)
        assert reminders == []
        assert len(freezes) == 1
        assert Case.objects.filter(line=line, status=CaseStatus.OPEN).count() == 1


def test_overdue_ignores_an_installment_due_today():
    line = make_line()
    overdue(line, 0)

    result = evaluate(line)

    assert (result.fired, result.reminded) == (0, 0)
    assert codes_fired(line) == set()
    assert Notification.objects.filter(line=line).count() == 0


@pytest.mark.parametrize("days_past_due", [5, 45])
def test_overdue_never_counts_a_paid_installment(days_past_due):
    line = make_line()
    overdue(line, days_past_due, paid_at=NOW - timedelta(days=1))

    assert evaluate(line).fired == 0
    assert codes_fired(line) == set()
    assert fresh(line).status == LineStatus.ACTIVE


def test_overdue_reminder_shows_the_amount_as_money():
    line = make_line()
    overdue(line, 3, amount="12345.00")

    evaluate(line)

    [reminder] = notifications_of(line, NotificationKind.OVERDUE_REMINDER)
    head, link = reminder.body.split("详情：")
    assert head == "【借呗】您有一笔 ¥12,345.00 的还款已逾期 3 天，请尽快还款，按时还款有助于维护您的信用记录。"
    assert read_link(link.removeprefix(settings.PUBLIC_BASE_URL + "/a/").rstrip("/"), "l") == line.pk


def test_overdue_reminder_becomes_a_freeze_when_the_installment_reaches_thirty_days():
    line = make_line()
    overdue(line, 29)
    evaluate(line)
    [low] = Signal.objects.filter(line=line)
    assert low.severity == Severity.LOW

    evaluate_lines([line.pk], now=NOW + timedelta(days=1))

    low.refresh_from_db()
    assert low.status == SignalStatus.CLEARED
    assert codes_fired(line) == {("OVERDUE", "high")}
    assert fresh(line).status == LineStatus.FROZEN


# ABNORMAL_USE


@pytest.mark.parametrize(
    ("risky", "fires"),
    [("4999.00", False), ("5000.00", True), ("5001.00", True)],
    ids=["49.99%", "50%", "50.01%"],
)
def test_abnormal_use_fires_when_risky_transfers_reach_half_the_drawdown(risky, fires):
    line = make_line()
    d = drawdown(line, NOW - timedelta(days=5), "10000.00")
    # Split in two so the rule sums the transfers rather than reading one.
    transfer(line, d.occurred_at + timedelta(hours=1), "1000.00", "crypto")
    transfer(line, d.occurred_at + timedelta(days=2), str(Decimal(risky) - Decimal("1000.00")), "securities")

    result = evaluate(line)

    assert result.fired == int(fires)
    assert codes_fired(line) == ({("ABNORMAL_USE", "high")} if fires else set())
    assert fresh(line).status == (LineStatus.FROZEN if fires else LineStatus.ACTIVE)


@pytest.mark.parametrize(
    ("delay", "counted"),
    [(timedelta(0), True), (timedelta(days=7), True), (timedelta(days=7) + SECOND, False)],
    ids=["same-instant", "7d", "7d+1s"],
)
def test_abnormal_use_counts_transfers_up_to_seven_days_after_the_drawdown(delay, counted):
    line = make_line()
    d = drawdown(line, NOW - timedelta(days=10), "10000.00")
    transfer(line, d.occurred_at + delay, "6000.00", "futures")

    evaluate(line)

    assert codes_fired(line) == ({("ABNORMAL_USE", "high")} if counted else set())


def test_abnormal_use_ignores_transfers_before_the_drawdown():
    line = make_line()
    d = drawdown(line, NOW - timedelta(days=5), "10000.00")
    transfer(line, d.occurred_at - SECOND, "6000.00", "securities")

    assert evaluate(line).fired == 0
    assert codes_fired(line) == set()


@pytest.mark.parametrize("category", ["consumption", "real_estate", "other"])
def test_abnormal_use_ignores_ordinary_counterparties(category):
    line = make_line()
    d = drawdown(line, NOW - timedelta(days=5), "10000.00")
    transfer(line, d.occurred_at + timedelta(days=1), "10000.00", category)
    transfer(line, d.occurred_at + timedelta(days=1), "4999.00", "gambling")

    assert evaluate(line).fired == 0
    assert codes_fired(line) == set()


@pytest.mark.parametrize("category", ["securities", "futures", "crypto", "gambling"])
def test_abnormal_use_counts_each_risky_category(category):
    line = make_line()
    d = drawdown(line, NOW - timedelta(days=5), "10000.00")
    transfer(line, d.occurred_at + timedelta(days=1), "5000.00", category)

    evaluate(line)

    signal = Signal.objects.get(line=line, code=RuleCode.ABNORMAL_USE)
    assert signal.evidence["values"]["drawdowns"][0]["categories"] == [category]


@pytest.mark.parametrize(
    ("age", "counted"),
    [(timedelta(days=89), True), (timedelta(days=90), False), (timedelta(days=120), False)],
    ids=["89d", "90d", "120d"],
)
def test_abnormal_use_ignores_drawdowns_older_than_the_lookback(age, counted):
    line = make_line()
    d = drawdown(line, NOW - age, "10000.00")
    transfer(line, d.occurred_at + timedelta(days=1), "9000.00", "crypto")

    evaluate(line)

    assert codes_fired(line) == ({("ABNORMAL_USE", "high")} if counted else set())


# PROFILE_STALE


@pytest.mark.parametrize(
    ("external_income", "fires"),
    [("7001.00", False), ("7000.00", True), ("6999.00", True)],
    ids=["29.99%", "30%", "30.01%"],
)
def test_profile_stale_fires_on_an_income_drop_of_thirty_percent(external_income, fires):
    line = make_line(income="10000.00")
    income_record(line, NOW - timedelta(days=90), external_income)

    result = evaluate(line)

    assert result.fired == int(fires)
    assert codes_fired(line) == ({("PROFILE_STALE", "medium")} if fires else set())


@pytest.mark.parametrize(("days_old", "fires"), [(59, False), (60, True), (61, True)])
def test_profile_stale_waits_sixty_days_for_the_borrower_to_update(days_old, fires):
    line = make_line(income="10000.00")
    income_record(line, NOW - timedelta(days=days_old), "5000.00")

    evaluate(line)

    assert codes_fired(line) == ({("PROFILE_STALE", "medium")} if fires else set())


def test_profile_stale_fires_on_an_employer_change_alone():
    line = make_line(income="10000.00", employer="杭州云栖科技有限公司")
    income_record(line, NOW - timedelta(days=90), "10000.00", employer="上海浦江物流有限公司")

    evaluate(line)

    signal = Signal.objects.get(line=line)
    assert signal.code == RuleCode.PROFILE_STALE
    assert signal.evidence["values"]["employer_changed"] is True
    assert signal.evidence["values"]["income_drop"] == "0.0000"


def test_profile_stale_ignores_a_record_matching_the_profile():
    line = make_line(income="10000.00")
    income_record(line, NOW - timedelta(days=90), "9500.00")

    assert evaluate(line).fired == 0


@pytest.mark.parametrize(
    ("update_after_record", "fires"),
    [(None, True), (-SECOND, True), (timedelta(0), False), (timedelta(days=10), False)],
    ids=["no-update", "update-before", "same-instant", "update-after"],
)
def test_profile_stale_is_prevented_by_a_profile_update_after_the_record(update_after_record, fires):
    line = make_line(income="10000.00")
    record = income_record(line, NOW - timedelta(days=90), "5000.00")
    if update_after_record is not None:
        profile_update(line, record.occurred_at + update_after_record)

    evaluate(line)

    assert codes_fired(line) == ({("PROFILE_STALE", "medium")} if fires else set())


@pytest.mark.parametrize(
    ("available", "after"),
    [("20000.00", "10000.00"), ("12345.67", "6172.84"), ("0.01", "0.01")],
)
def test_profile_stale_cuts_the_available_amount_by_half_and_asks_for_an_update(available, after):
    # Half a cent rounds half up; a cent cannot be halved below itself.
    line = make_line(limit="20000.00", available=available, income="10000.00")
    stale_profile(line)

    result = evaluate(line)

    line = fresh(line)
    assert line.status == LineStatus.ACTIVE
    assert line.limit == Decimal("20000.00")
    assert line.available == Decimal(after)
    assert result.cut == 1
    assert result.frozen == 0
    assert len(notifications_of(line, NotificationKind.PROFILE_UPDATE_REQUEST)) == 1
    [cut_notice] = notifications_of(line, NotificationKind.LIMIT_CUT)
    assert f"¥{Decimal(after):,.2f}" in cut_notice.body


# --- 2. evidence names the events that qualified, and only those


def test_multi_head_evidence_lists_only_the_inquiries_inside_the_window(ruleset):
    line = make_line()
    old = inquiry(line, NOW - timedelta(days=40), INSTITUTIONS[4])
    recent = [
        inquiry(line, NOW - timedelta(days=20), INSTITUTIONS[0]),
        inquiry(line, NOW - timedelta(days=3), INSTITUTIONS[1]),
        inquiry(line, NOW - timedelta(days=10), INSTITUTIONS[2]),
        inquiry(line, NOW - timedelta(days=1), INSTITUTIONS[0]),
    ]
    other_line = make_line()
    inquiry(other_line, NOW - timedelta(days=2), INSTITUTIONS[3])

    evaluate(line)

    signal = Signal.objects.get(line=line)
    assert signal.evidence == {
        "events": {"inquiry": [recent[0].pk, recent[2].pk, recent[1].pk, recent[3].pk]},
        "values": {"inquiries": 4, "institutions": 3},
        "thresholds": {"min_inquiries": 4, "min_institutions": 3, "window_days": 30},
    }
    assert old.pk not in signal.evidence["events"]["inquiry"]
    assert signal.ruleset_version == ruleset.version
    assert signal.rule.ruleset_id == ruleset.pk
    assert signal.fired_at == NOW


def test_overdue_evidence_lists_only_the_installments_thirty_days_past_due():
    line = make_line()
    late = overdue(line, 35, amount="1000.00")
    overdue(line, 5, amount="500.00")
    overdue(line, 60, paid_at=NOW - timedelta(days=20))

    evaluate(line)

    signal = Signal.objects.get(line=line)
    assert signal.evidence == {
        "events": {"installment": [late.pk]},
        "values": {"max_days_past_due": 35, "overdue_amount": "1500.00", "as_of": TODAY.isoformat()},
        "thresholds": {"min_days_past_due": 30, "reminder_min_days_past_due": 1},
    }


def test_abnormal_use_evidence_lists_the_drawdown_and_only_its_risky_transfers():
    line = make_line()
    d = drawdown(line, NOW - timedelta(days=6), "10000.00")
    earlier = drawdown(line, NOW - timedelta(days=60), "3000.00")
    t1 = transfer(line, d.occurred_at + timedelta(hours=2), "3000.00", "securities")
    t2 = transfer(line, d.occurred_at + timedelta(days=3), "2500.00", "crypto")
    transfer(line, d.occurred_at + timedelta(days=1), "4000.00", "consumption")
    transfer(line, d.occurred_at - timedelta(days=1), "8000.00", "gambling")
    transfer(line, earlier.occurred_at + timedelta(days=1), "100.00", "gambling")

    evaluate(line)

    signal = Signal.objects.get(line=line)
    assert signal.evidence == {
        "events": {"drawdown": [d.pk], "transfer": sorted([t1.pk, t2.pk])},
        "values": {
            "drawdowns": [
                {
                    "drawdown_id": d.pk,
                    "amount": "10000.00",
                    "risky_transfers": "5500.00",
                    "share": "0.5500",
                    "categories": ["crypto", "securities"],
                }
            ],
            "max_share": "0.5500",
        },
        "thresholds": {
            "min_share": "0.5",
            "window_days": 7,
            "categories": ["securities", "futures", "crypto", "gambling"],
            "lookback_days": 90,
        },
    }


def test_profile_stale_evidence_records_the_income_drop_against_the_declared_income():
    line = make_line(income="10000.00")
    too_recent = income_record(line, NOW - timedelta(days=30), "4000.00")
    record = income_record(line, NOW - timedelta(days=90), "6500.00")

    evaluate(line)

    signal = Signal.objects.get(line=line)
    assert signal.evidence == {
        "events": {"income_record": [record.pk]},
        "values": {
            "declared_income": "10000.00",
            "external_income": "6500.00",
            "income_drop": "0.3500",
            "employer_changed": False,
            "days_since_record": 90,
        },
        "thresholds": {"min_income_drop": "0.3", "grace_days": 60, "cut_ratio": "0.5"},
    }
    assert too_recent.pk not in signal.evidence["events"]["income_record"]


# --- 3. evaluating twice changes nothing the second time


def test_evaluating_twice_on_the_same_data_changes_nothing_the_second_time():
    lines = [make_line() for _ in range(6)]
    inquiries(lines[0], 4, institutions=3)
    overdue(lines[1], 40)
    overdue(lines[2], 10)
    abnormal_use(lines[3])
    stale_profile(lines[4])
    inquiry(lines[5], NOW - timedelta(days=2), INSTITUTIONS[0])
    first = evaluate(*lines)
    assert (first.fired, first.frozen, first.cut, first.reminded, first.cases_opened) == (5, 3, 1, 1, 4)
    before = state()

    second = evaluate(*lines)

    assert (second.fired, second.cleared, second.frozen, second.cut, second.reminded, second.cases_opened) == (
        0,
        0,
        0,
        0,
        0,
        0,
    )
    assert second.evaluated == 6
    assert state() == before


# --- 4. clearing


def test_paying_the_overdue_installment_clears_the_signal_but_keeps_the_freeze_and_the_case():
    line = make_line()
    late = overdue(line, 35)
    evaluate(line)
    [signal] = Signal.objects.filter(line=line)
    case = Case.objects.get(line=line)
    frozen_since = fresh(line).frozen_since
    assert signal.status == SignalStatus.ACTIVE
    assert frozen_since == NOW

    Installment.objects.filter(pk=late.pk).update(paid_at=NOW + timedelta(hours=1), paid_amount=late.amount)
    result = evaluate_lines([line.pk], now=NOW + timedelta(days=1))

    assert result.cleared == 1
    assert result.fired == 0
    signal.refresh_from_db()
    assert signal.status == SignalStatus.CLEARED
    assert signal.cleared_at == NOW + timedelta(days=1)
    [clear] = audit_of(line, "signal.clear")
    assert clear.object_id == signal.pk
    assert clear.before == {"status": "active", "code": "OVERDUE", "severity": "high"}
    assert clear.after == {"status": "cleared"}
    assert clear.reason == "condition no longer holds"
    # Clearing never unfreezes: a person or a job decides that.
    line = fresh(line)
    assert line.status == LineStatus.FROZEN
    assert line.frozen_since == frozen_since
    case.refresh_from_db()
    assert case.status == CaseStatus.OPEN


def test_a_cleared_signal_is_not_cleared_again():
    line = make_line()
    late = overdue(line, 35)
    evaluate(line)
    Installment.objects.filter(pk=late.pk).update(paid_at=NOW, paid_amount=late.amount)
    evaluate(line)
    before = state()

    result = evaluate(line)

    assert result.cleared == 0
    assert state() == before


# --- 5. suppression after a person overturns a signal


def test_overturned_signal_is_suppressed_until_a_new_inquiry_qualifies():
    line = make_line()
    cited = inquiries(line, 4, institutions=3)
    evaluate(line)
    signal = Signal.objects.get(line=line)
    operator = make_operator()

    services.signal_overturn(signal_id=signal.pk, actor=Actor.operator(operator), reason="同一笔贷款的比价查询")

    signal.refresh_from_db()
    assert signal.status == SignalStatus.OVERTURNED
    assert signal.cleared_at is not None
    suppression = Suppression.objects.get(line=line)
    assert suppression.code == RuleCode.MULTI_HEAD
    assert suppression.signal_id == signal.pk
    assert suppression.created_by_id == operator.pk
    assert suppression.reason == "同一笔贷款的比价查询"
    assert sorted(suppression.event_ids) == sorted(f"inquiry:{i.pk}" for i in cited)
    [overturn] = audit_of(line, "signal.overturn")
    assert overturn.actor_user_id == operator.pk

    # Stands in for the operator's unfreeze decision, so a re-freeze would show.
    CreditLine.objects.filter(pk=line.pk).update(status=LineStatus.ACTIVE, frozen_since=None)
    before = state()

    again = evaluate(line)

    assert (again.suppressed, again.fired, again.frozen, again.cases_opened) == (1, 0, 0, 0)
    assert state() == before
    assert fresh(line).status == LineStatus.ACTIVE

    new_inquiry = inquiry(line, NOW - timedelta(hours=2), INSTITUTIONS[4])
    refired = evaluate(line)

    assert (refired.suppressed, refired.fired, refired.frozen) == (0, 1, 1)
    new_signal = Signal.objects.get(line=line, status=SignalStatus.ACTIVE)
    assert new_signal.pk != signal.pk
    assert new_inquiry.pk in new_signal.evidence["events"]["inquiry"]
    assert fresh(line).status == LineStatus.FROZEN


def test_an_old_inquiry_leaving_the_window_does_not_lift_the_suppression():
    line = make_line()
    inquiries(line, 4, institutions=3)
    leaving = inquiry(line, NOW - timedelta(days=25), INSTITUTIONS[4])
    evaluate(line)
    signal = Signal.objects.get(line=line)
    assert leaving.pk in signal.evidence["events"]["inquiry"]
    services.signal_overturn(signal_id=signal.pk, actor=Actor.operator(make_operator()), reason="已核实")

    # Ten days on the oldest inquiry has left the window; what still qualifies was all overturned.
    result = evaluate_lines([line.pk], now=NOW + timedelta(days=10))

    assert (result.suppressed, result.fired) == (1, 0)
    assert not Signal.objects.filter(line=line, status=SignalStatus.ACTIVE).exists()


@pytest.mark.parametrize("status", [SignalStatus.OVERTURNED, SignalStatus.CLEARED])
def test_overturning_a_signal_that_is_not_active_is_refused(status):
    line = make_line()
    late = overdue(line, 35)
    evaluate(line)
    signal = Signal.objects.get(line=line)
    actor = Actor.operator(make_operator())
    if status == SignalStatus.OVERTURNED:
        services.signal_overturn(signal_id=signal.pk, actor=actor, reason="首次处理")
    else:
        Installment.objects.filter(pk=late.pk).update(paid_at=NOW, paid_amount=late.amount)
        evaluate(line)
    before = state()

    with pytest.raises(DomainError) as excinfo:
        services.signal_overturn(signal_id=signal.pk, actor=actor, reason="再次处理")

    assert str(excinfo.value) == f"signal {signal.pk} is {status}, not active; nothing to overturn"
    assert state() == before


@pytest.mark.parametrize("reason", ["", "   "])
def test_overturning_needs_a_reason(reason):
    line = make_line()
    inquiries(line, 4, institutions=3)
    evaluate(line)
    signal = Signal.objects.get(line=line)
    before = state()

    with pytest.raises(DomainError) as excinfo:
        services.signal_overturn(signal_id=signal.pk, actor=Actor.operator(make_operator()), reason=reason)

    assert str(excinfo.value) == "a reason is required to overturn a signal"
    signal.refresh_from_db()
    assert signal.status == SignalStatus.ACTIVE
    assert state() == before


# --- 6. audit and line history


def test_freeze_writes_one_audit_event_and_one_history_row_with_the_reason():
    line = make_line(limit="20000.00", available="15000.00")
    inquiries(line, 4, institutions=3)
    assert audit_of(line, "line.freeze") == []

    evaluate(line)

    signal = Signal.objects.get(line=line)
    reason = f"MULTI_HEAD signal #{signal.pk} (ruleset v1)"
    [freeze] = audit_of(line, "line.freeze")
    assert (freeze.object_type, freeze.object_id, freeze.actor_kind, freeze.at) == (
        "credit_line",
        line.pk,
        "engine",
        NOW,
    )
    assert freeze.before == {"status": "active", "limit": "20000.00", "available": "15000.00"}
    assert freeze.after == {"status": "frozen", "limit": "20000.00", "available": "15000.00"}
    assert freeze.reason == reason
    [change] = LineChange.objects.filter(line=line)
    assert (change.kind, change.status_before, change.status_after) == ("freeze", "active", "frozen")
    assert (change.available_before, change.available_after) == (Decimal("15000.00"), Decimal("15000.00"))
    assert (change.reason, change.signal_id, change.actor_kind, change.at) == (reason, signal.pk, "engine", NOW)


def test_cut_writes_one_audit_event_and_one_history_row_with_the_reason():
    line = make_line(limit="20000.00", available="20000.00", income="10000.00")
    stale_profile(line)

    evaluate(line)

    signal = Signal.objects.get(line=line)
    reason = f"PROFILE_STALE signal #{signal.pk} (ruleset v1)"
    [cut] = audit_of(line, "line.cut_available")
    assert cut.before == {"status": "active", "limit": "20000.00", "available": "20000.00"}
    assert cut.after == {"status": "active", "limit": "20000.00", "available": "10000.00"}
    assert cut.reason == reason
    [change] = LineChange.objects.filter(line=line)
    assert change.kind == "cut_available"
    assert (change.available_before, change.available_after) == (Decimal("20000.00"), Decimal("10000.00"))
    assert (change.limit_before, change.limit_after) == (Decimal("20000.00"), Decimal("20000.00"))
    assert (change.reason, change.signal_id) == (reason, signal.pk)
    assert audit_of(line, "line.freeze") == []


def test_firing_and_opening_a_case_are_audited():
    line = make_line()
    abnormal_use(line)

    evaluate(line)

    signal = Signal.objects.get(line=line)
    case = Case.objects.get(line=line)
    [fire] = audit_of(line, "signal.fire")
    assert (fire.object_type, fire.object_id) == ("signal", signal.pk)
    assert fire.after == {
        "code": "ABNORMAL_USE",
        "severity": "high",
        "ruleset_version": 1,
        "values": signal.evidence["values"],
    }
    [opened] = audit_of(line, "case.open")
    assert (opened.object_type, opened.object_id) == ("case", case.pk)
    assert opened.after == {"status": "open", "severity_rank": 3}
    assert sorted(AuditEvent.objects.filter(account_id=line.pk).values_list("action", flat=True)) == [
        "case.open",
        "line.freeze",
        "signal.fire",
    ]


def test_an_account_without_findings_leaves_no_trace():
    line = make_line()
    inquiry(line, NOW - timedelta(days=1), INSTITUTIONS[0])
    overdue(line, 10, paid_at=NOW - timedelta(days=9))
    transfer(line, NOW - timedelta(days=1), "300.00", "consumption")
    before = state()

    result = evaluate(line)

    assert result.evaluated == 1
    assert result.fired == 0
    assert state() == before


# --- 7. cases


def test_a_second_high_signal_on_a_flagged_line_joins_its_open_case():
    line = make_line()
    inquiries(line, 4, institutions=3)
    evaluate(line)
    case = Case.objects.get(line=line)
    assert case.severity_rank == 3

    overdue(line, 31)
    result = evaluate(line)

    assert result.fired == 1
    assert result.cases_opened == 0
    assert list(Case.objects.filter(line=line).values_list("pk", flat=True)) == [case.pk]
    assert set(Signal.objects.filter(line=line).values_list("code", "case_id")) == {
        ("MULTI_HEAD", case.pk),
        ("OVERDUE", case.pk),
    }
    assert len(audit_of(line, "case.open")) == 1
    assert audit_of(line, "case.update") == []


def test_a_high_signal_after_a_medium_one_raises_the_case_severity():
    line = make_line(income="10000.00")
    stale_profile(line)
    evaluate(line)
    case = Case.objects.get(line=line)
    assert case.severity_rank == 2
    assert audit_of(line, "case.update") == []

    inquiries(line, 4, institutions=3)
    later = NOW + timedelta(hours=1)
    evaluate_lines([line.pk], now=later)

    case.refresh_from_db()
    assert case.status == CaseStatus.OPEN
    assert case.severity_rank == 3
    assert case.updated_at == later
    [update] = audit_of(line, "case.update")
    assert (update.object_id, update.before, update.after) == (case.pk, {"severity_rank": 2}, {"severity_rank": 3})
    assert Case.objects.filter(line=line).count() == 1
    assert set(Signal.objects.filter(line=line).values_list("code", "case_id")) == {
        ("PROFILE_STALE", case.pk),
        ("MULTI_HEAD", case.pk),
    }


def test_a_medium_signal_does_not_lower_the_case_severity():
    line = make_line(income="10000.00")
    inquiries(line, 4, institutions=3)
    evaluate(line)
    case = Case.objects.get(line=line)

    stale_profile(line)
    evaluate(line)

    case.refresh_from_db()
    assert case.severity_rank == 3
    assert audit_of(line, "case.update") == []
    assert Signal.objects.get(line=line, code=RuleCode.PROFILE_STALE).case_id == case.pk


def test_each_flagged_line_gets_its_own_case():
    flagged = [make_line() for _ in range(3)]
    for line in flagged:
        inquiries(line, 4, institutions=3)
    normal = make_line()

    result = evaluate(*flagged, normal)

    assert result.cases_opened == 3
    assert sorted(Case.objects.values_list("line_id", flat=True)) == sorted(line.pk for line in flagged)


@pytest.mark.parametrize("spread", [1, 10_000], ids=["consecutive", "scattered"])
def test_an_evaluation_changes_only_the_lines_it_was_given(spread):
    """The batch's read covers the id range when the batch fills it; the lines between that were not asked for keep
    their signals whatever their events say now."""
    first = make_line()
    with connection.cursor() as cur:  # the next lines far away in the id space, or next to the first
        cur.execute("SELECT setval(pg_get_serial_sequence('accounts_creditline', 'id'), %s)", [first.pk + spread - 1])
    middle, last = make_line(), make_line()
    asked, lines = [first, last], [first, middle, last]
    cited = inquiries(middle, 4, institutions=3)
    evaluate(*lines)
    assert codes_fired(middle) == {("MULTI_HEAD", "high")}

    for row in cited:
        type(row).objects.filter(pk=row.pk).delete()  # the middle line's condition no longer holds
    result = evaluate(*asked)

    assert result.evaluated == 2
    assert codes_fired(middle) == {("MULTI_HEAD", "high")}  # not asked for: not cleared
    assert fresh(middle).status == LineStatus.FROZEN
    assert evaluate(middle).cleared == 1


def test_a_signal_cleared_between_the_read_and_the_lock_is_found_again(monkeypatch):
    """The engine keeps the findings of signals already active only as keys; if such a signal is no longer active
    once the line is locked (someone cleared it meanwhile), the line is evaluated again under the lock."""
    import accounts.engine as engine

    line = make_line(income="10000.00")
    inquiries(line, 4, institutions=3)
    evaluate(line)
    first = Signal.objects.get(line=line, code="MULTI_HEAD", status=SignalStatus.ACTIVE)
    overdue(line, 40)  # something new, so the line gets locked

    lock = engine._lock_batch

    def cleared_meanwhile(lines, now):
        Signal.objects.filter(pk=first.pk).update(status=SignalStatus.CLEARED, cleared_at=NOW)
        return lock(lines, now)

    monkeypatch.setattr(engine, "_lock_batch", cleared_meanwhile)
    result = evaluate(line)

    assert result.fired == 2
    assert codes_fired(line) == {("MULTI_HEAD", "high"), ("OVERDUE", "high")}
    assert Signal.objects.get(line=line, code="MULTI_HEAD", status=SignalStatus.ACTIVE).pk != first.pk


# --- 8. a batch costs a fixed number of queries

# Savepoint in and out (2); read the batch: open lines, active signals, suppressions, stale exposures (1); read the
# rules, 4 rule queries (5); lock the lines that change and bring their cases' exposure in step (1); read their
# active signals and suppressions again (1); fire: insert + audit (2); freeze: lock, then lines + history + audit +
# outbox in one statement (2); cut: the same two (2); the advice risk managers wrote, when a reminder fires (1);
# outbox for update requests, reminders and advice (1); cases: open + raise + link + families + audit (5). An
# evaluation that changes nothing stops after the rule queries, and opens no transaction (no savepoint).
EVALUATION_QUERIES = 23


def mixed_batch(groups: int) -> list[CreditLine]:
    """Per group: one line of each family firing, a reminder, and a line with harmless activity."""
    lines = []
    for _ in range(groups):
        group = [make_line(income="10000.00") for _ in range(6)]
        inquiries(group[0], 4, institutions=3)
        overdue(group[1], 40)
        abnormal_use(group[2])
        stale_profile(group[3])
        overdue(group[4], 3)
        inquiry(group[5], NOW - timedelta(days=3), INSTITUTIONS[0])
        transfer(group[5], NOW - timedelta(days=3), "200.00", "consumption")
        lines.extend(group)
    return lines


@pytest.mark.parametrize("groups", [1, 5], ids=["6-lines", "30-lines"])
def test_evaluating_a_batch_costs_a_fixed_number_of_queries(groups, django_assert_num_queries):
    lines = mixed_batch(groups)

    with django_assert_num_queries(EVALUATION_QUERIES):
        result = evaluate(*lines)

    assert (result.evaluated, result.fired, result.frozen, result.cut, result.reminded, result.cases_opened) == (
        6 * groups,
        5 * groups,
        3 * groups,
        groups,
        groups,
        4 * groups,
    )


@pytest.mark.parametrize("groups", [1, 10], ids=["6-lines", "60-lines"])
def test_an_evaluation_that_changes_nothing_only_reads(groups, django_assert_num_queries):
    lines = mixed_batch(groups)
    evaluate(*lines)
    before = state()

    # The batch, the rules, the 4 rule queries: no transaction (no savepoint), no lock, no write.
    with django_assert_num_queries(6) as queries:
        result = evaluate(*lines)

    assert (result.evaluated, result.fired, result.cleared) == (6 * groups, 0, 0)
    written = ("FOR UPDATE", "INSERT", "UPDATE", "SAVEPOINT")
    assert not [q["sql"] for q in queries.captured_queries if any(word in q["sql"] for word in written)]
    assert state() == before


# --- 9. notifications


class RecordingSender:
    """Stands in for the SMS gateway."""

    calls: list[tuple[int, str, str]] = []

    def send(self, notification, phone):
        self.calls.append((notification.pk, phone, notification.body))


class FailingSender:
    def send(self, notification, phone):
        raise ConnectionError("gateway timeout")


@pytest.fixture
def recording_sender(settings):
    settings.NOTIFICATION_SENDER = f"{__name__}.RecordingSender"
    RecordingSender.calls = []
    return RecordingSender


def test_freeze_queues_one_notification_in_chinese_without_personal_data():
    line = make_line(name="王小明", phone="13812345678", national_id="330102199001011234")
    inquiries(line, 4, institutions=3)
    assert Notification.objects.filter(line=line).count() == 0

    evaluate(line)

    [notice] = Notification.objects.filter(line=line)
    assert notice.kind == NotificationKind.FREEZE
    head = "【借呗】您的额度已暂时冻结，原因：近期多头借贷。如有异议，可在 App 内或通过此链接提交申诉："
    tail = " ，我们将在 72 小时内处理。"
    assert notice.body.startswith(head) and notice.body.endswith(tail)
    # The link opens this line's appeal page (signed, expiring).
    link = notice.body[len(head) : -len(tail)]
    assert link.startswith("http://127.0.0.1:8000/a/")
    assert read_link(link.rsplit("/", 2)[1], "l") == line.pk
    for personal in ("王小明", "13812345678", "330102199001011234", "1234"):
        assert personal not in notice.body
    assert notice.sent_at is None
    assert notice.created_at == NOW


def test_a_freeze_message_names_every_freezing_reason():
    line = make_line()
    inquiries(line, 4, institutions=3)
    overdue(line, 40)

    evaluate(line)

    [notice] = Notification.objects.filter(line=line, kind=NotificationKind.FREEZE)
    assert "原因：近期多头借贷、还款逾期。" in notice.body


@pytest.mark.parametrize("phone", ["", "12345", "0571-8888888"])
def test_no_message_goes_to_a_borrower_without_a_valid_mobile_number_and_the_outbox_says_why(phone):
    line = make_line(phone=phone)
    inquiries(line, 4, institutions=3)

    evaluate(line)

    [notice] = Notification.objects.filter(line=line)
    assert (notice.kind, notice.channel, notice.sent_at, notice.last_error) == (
        NotificationKind.FREEZE,
        "none",
        NOW,
        "not sent: the borrower has no valid mobile number",
    )
    assert notifications_send_pending() == 0


def test_sending_marks_notifications_sent_and_never_resends_them(recording_sender):
    line = make_line(phone="13812345678")
    inquiries(line, 4, institutions=3)
    evaluate(line)
    [notice] = Notification.objects.filter(line=line)
    assert notice.sent_at is None

    assert notifications_send_pending() == 1

    notice.refresh_from_db()
    assert notice.sent_at is not None
    assert notice.attempts == 1
    assert recording_sender.calls == [(notice.pk, "13812345678", notice.body)]

    assert notifications_send_pending() == 0

    assert len(recording_sender.calls) == 1
    notice.refresh_from_db()
    assert notice.attempts == 1


@pytest.mark.parametrize("n", [3, 30])
def test_sending_costs_the_same_queries_for_3_or_30_notifications(n, recording_sender, django_assert_num_queries):
    lines = [make_line() for _ in range(n)]
    with transaction.atomic():
        notifications_queue(
            [Outgoing(line.pk, "credit_education", f"edu:{line.pk}", {"link": "-"}) for line in lines],
            at=timezone.now(),
        )

    # The outbox rows locked with their lines' phones; in one query the lines' sender locks, their texts of the last
    # 24 hours (the budget) and their older messages held; then one UPDATE for all (in a transaction's two ends).
    with django_assert_num_queries(5):
        assert notifications_send_pending() == n

    assert Notification.objects.filter(line__in=lines, sent_at__isnull=False, attempts=1, last_error="").count() == n
    assert len(recording_sender.calls) == n


def test_a_failing_gateway_records_the_error_and_leaves_the_notification_unsent(settings, caplog):
    settings.NOTIFICATION_SENDER = f"{__name__}.FailingSender"
    line = make_line(phone="13812345678")
    overdue(line, 35)
    evaluate(line)
    caplog.set_level(logging.WARNING, logger="accounts.notifications")

    assert notifications_send_pending() == 0

    [notice] = Notification.objects.filter(line=line)
    assert notice.sent_at is None
    assert notice.attempts == 1
    assert notice.last_error == "gateway timeout"
    assert "138****5678" in caplog.text
    assert "13812345678" not in caplog.text


def test_a_notification_that_failed_is_sent_on_the_next_sweep(settings, recording_sender):
    settings.NOTIFICATION_SENDER = f"{__name__}.FailingSender"
    line = make_line()
    overdue(line, 35)
    evaluate(line)
    notifications_send_pending()

    settings.NOTIFICATION_SENDER = f"{__name__}.RecordingSender"
    assert notifications_send_pending() == 1

    [notice] = Notification.objects.filter(line=line)
    assert notice.sent_at is not None
    assert notice.attempts == 2


def test_console_sender_logs_the_phone_masked(caplog):
    line = make_line(phone="13812345678")
    inquiries(line, 4, institutions=3)
    evaluate(line)
    [notice] = Notification.objects.filter(line=line)
    caplog.set_level(logging.INFO, logger="accounts.notifications")

    ConsoleSender().send(notice, "13812345678")

    assert "SMS to 138****5678 [freeze]" in caplog.text
    assert "13812345678" not in caplog.text
    # The link's token opens the borrower's page for days: the log keeps the address without it.
    token = re.search(r"/a/([^/\s]+)/", notice.body)
    assert token and token[1] not in caplog.text and "/a/…/" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_sending_does_not_skip_a_notification_whose_line_is_being_evaluated(recording_sender):
    # The sweep claims outbox rows only: an evaluation holding the line's lock must neither hold up
    # nor be held up by a slow gateway.
    default_ruleset()
    line = make_line(phone="13812345678")
    Notification.objects.create(
        line=line, kind=NotificationKind.FREEZE, dedupe_key="freeze:test", body="【借呗】测试", created_at=NOW
    )
    locked, release = threading.Event(), threading.Event()

    def hold_the_line_lock():
        try:
            with transaction.atomic():
                CreditLine.objects.select_for_update().get(pk=line.pk)
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_line_lock)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        sent = notifications_send_pending()
    finally:
        release.set()
        holder.join(timeout=30)

    assert sent == 1
    assert Notification.objects.get(dedupe_key="freeze:test").sent_at is not None
    assert [phone for _, phone, _ in recording_sender.calls] == ["13812345678"]
