"""State changes of lines through accounts.services, and concurrent evaluation of one account."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection

from accounts import services
from accounts.engine import evaluate_lines
from accounts.models import (
    Case,
    CreditLine,
    LineChange,
    LineStatus,
    Notification,
    NotificationKind,
    Signal,
)
from riskops.core.audit import Actor
from riskops.core.errors import DomainError
from riskops.models import AuditEvent
from tests.factories import NOW, default_ruleset, inquiry, make_line, make_operator


def history_and_audit(line: CreditLine) -> tuple[int, int, int]:
    return (
        LineChange.objects.filter(line=line).count(),
        AuditEvent.objects.filter(account_id=line.pk).count(),
        Notification.objects.filter(line=line).count(),
    )


@pytest.mark.django_db
def test_freezing_an_active_line_records_history_audit_and_a_notification():
    line = make_line()
    operator = make_operator()

    frozen = services.lines_freeze(
        line_ids=[line.pk], actor=Actor.operator(operator), reasons={line.pk: "借款人来电称手机遗失"}, at=NOW
    )

    assert frozen == [line.pk]
    line.refresh_from_db()
    assert (line.status, line.frozen_since) == (LineStatus.FROZEN, NOW)
    [change] = LineChange.objects.filter(line=line)
    assert (change.kind, change.actor_kind, change.actor_user_id) == ("freeze", "operator", operator.pk)
    assert change.reason == "借款人来电称手机遗失"
    [event] = AuditEvent.objects.filter(account_id=line.pk)
    assert (event.action, event.actor_user_id, event.actor_label) == ("line.freeze", operator.pk, operator.username)
    [notice] = Notification.objects.filter(line=line)
    # Without a rule code the borrower reads a neutral reason.
    assert "原因：风险核查" in notice.body


@pytest.mark.django_db
def test_freezing_a_frozen_line_does_nothing():
    line = make_line(status=LineStatus.FROZEN)
    frozen_since = line.frozen_since
    assert history_and_audit(line) == (0, 0, 0)

    frozen = services.lines_freeze(line_ids=[line.pk], actor=Actor.engine(), reasons={line.pk: "again"}, at=NOW)

    assert frozen == []
    line.refresh_from_db()
    assert (line.status, line.frozen_since) == (LineStatus.FROZEN, frozen_since)
    assert history_and_audit(line) == (0, 0, 0)


@pytest.mark.django_db
def test_freezing_twice_freezes_once():
    line = make_line()
    services.lines_freeze(line_ids=[line.pk], actor=Actor.engine(), reasons={}, at=NOW)
    assert history_and_audit(line) == (1, 1, 1)

    again = services.lines_freeze(line_ids=[line.pk], actor=Actor.engine(), reasons={}, at=NOW + timedelta(hours=1))

    assert again == []
    line.refresh_from_db()
    assert line.frozen_since == NOW
    assert history_and_audit(line) == (1, 1, 1)


@pytest.mark.django_db
def test_freezing_leaves_closed_lines_alone():
    line = make_line(status=LineStatus.CLOSED, available="0.00")

    assert services.lines_freeze(line_ids=[line.pk], actor=Actor.engine(), reasons={}, at=NOW) == []

    line.refresh_from_db()
    assert line.status == LineStatus.CLOSED
    assert history_and_audit(line) == (0, 0, 0)


@pytest.mark.django_db
def test_cutting_the_available_amount_skips_closed_lines():
    open_line = make_line(limit="20000.00", available="8000.00")
    closed = make_line(limit="20000.00", available="8000.00", status=LineStatus.CLOSED)

    cut = services.lines_cut_available(
        cuts={open_line.pk: Decimal("0.5"), closed.pk: Decimal("0.5")},
        actor=Actor.engine(),
        reasons={open_line.pk: "test", closed.pk: "test"},
        at=NOW,
    )

    assert cut == [open_line.pk]
    open_line.refresh_from_db()
    closed.refresh_from_db()
    assert open_line.available == Decimal("4000.00")
    assert (closed.status, closed.available) == (LineStatus.CLOSED, Decimal("8000.00"))
    assert history_and_audit(closed) == (0, 0, 0)
    [notice] = Notification.objects.filter(line=open_line)
    assert notice.kind == NotificationKind.LIMIT_CUT
    assert "¥4,000.00" in notice.body


@pytest.mark.django_db
def test_cutting_a_line_with_nothing_available_changes_nothing():
    line = make_line(available="0.00")

    assert services.lines_cut_available(cuts={line.pk: Decimal("0.5")}, actor=Actor.engine(), reasons={}) == []

    assert history_and_audit(line) == (0, 0, 0)


@pytest.mark.django_db
@pytest.mark.parametrize("ratio", ["-0.1", "1.5"])
def test_a_cut_ratio_outside_zero_to_one_is_refused(ratio):
    line = make_line(available="8000.00")

    with pytest.raises(DomainError) as excinfo:
        services.lines_cut_available(cuts={line.pk: Decimal(ratio)}, actor=Actor.engine(), reasons={})

    assert str(excinfo.value) == "a cut ratio must be between 0 and 1"
    line.refresh_from_db()
    assert line.available == Decimal("8000.00")
    assert history_and_audit(line) == (0, 0, 0)


@pytest.mark.django_db
@pytest.mark.parametrize("reason", ["", "  \n"])
def test_freezing_an_account_by_hand_needs_a_reason(reason):
    line = make_line()

    with pytest.raises(DomainError) as excinfo:
        services.account_freeze(line_id=line.pk, actor=Actor.operator(make_operator()), reason=reason)

    assert str(excinfo.value) == "a reason is required to freeze a line"
    line.refresh_from_db()
    assert line.status == LineStatus.ACTIVE
    assert history_and_audit(line) == (0, 0, 0)


@pytest.mark.django_db
def test_freezing_an_account_by_hand_reports_whether_it_changed():
    line = make_line()
    actor = Actor.operator(make_operator())

    assert services.account_freeze(line_id=line.pk, actor=actor, reason="疑似盗用") is True
    assert services.account_freeze(line_id=line.pk, actor=actor, reason="疑似盗用") is False

    line.refresh_from_db()
    assert line.status == LineStatus.FROZEN
    assert LineChange.objects.get(line=line).reason == "疑似盗用"


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_evaluations_of_one_account_freeze_it_once():
    default_ruleset()
    line = make_line()
    for i, institution in enumerate(["招商银行", "平安普惠", "微众银行", "京东金融"]):
        inquiry(line, NOW - timedelta(days=1, hours=i), institution)
    start = threading.Barrier(2)

    def evaluate_in_own_connection():
        try:
            start.wait(timeout=10)
            return evaluate_lines([line.pk], now=NOW)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(evaluate_in_own_connection) for _ in range(2)]
        results = [f.result(timeout=60) for f in futures]

    assert sorted(r.fired for r in results) == [0, 1]
    assert sorted(r.frozen for r in results) == [0, 1]
    assert Signal.objects.filter(line=line).count() == 1
    assert LineChange.objects.filter(line=line, kind="freeze").count() == 1
    assert AuditEvent.objects.filter(account_id=line.pk, action="line.freeze").count() == 1
    assert Case.objects.filter(line=line).count() == 1
    assert Notification.objects.filter(line=line, kind=NotificationKind.FREEZE).count() == 1
    line.refresh_from_db()
    assert line.status == LineStatus.FROZEN
