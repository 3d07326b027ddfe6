"""Reminders before harm and the borrower's message budget: at most NOTIFICATION_DAILY_MAX texts in any 24 hours,
none in the quiet hours of the borrower's time zone, what is held back recorded and sent later, once each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from accounts import notifications
from accounts.engine import evaluate_lines
from accounts.models import CreditLine, HeldReason, Notification, NotificationKind
from accounts.notifications import BUDGETED, Outgoing, notifications_queue, notifications_send_pending, quiet_until
from accounts.services import lines_remind_due
from ingest.services import events_ingest
from riskops.core.audit import Actor
from tests.factories import installment, make_line
from tests.helpers import in_threads, linked

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ruleset")]

SHANGHAI = ZoneInfo("Asia/Shanghai")
SENT: list[int] = []


class RecordingSender:
    """The SMS gateway (outside the project): records what it was asked to send."""

    def send(self, notification: Notification, phone: str) -> None:
        SENT.append(notification.pk)


@pytest.fixture(autouse=True)
def _gateway(settings: Any) -> None:
    SENT.clear()
    settings.NOTIFICATION_SENDER = f"{__name__}.RecordingSender"
    settings.NOTIFICATION_DAILY_MAX = 3
    settings.NOTIFICATION_QUIET_HOURS = (21 * 60, 8 * 60)


def at(monkeypatch: Any, moment: datetime) -> None:
    """The sender's clock (the outbox reads timezone.now())."""
    monkeypatch.setattr(notifications.timezone, "now", lambda: moment)


def queue(line: CreditLine, kinds: list[str], when: datetime) -> None:
    params = {
        "available": "1.00",
        "reason": "r",
        "link": "l",
        "amount": "1.00",
        "days": 1,
        "due": "d",
        "advice": "a",
        "appeal": 1,
        "hours": 72,
    }
    notifications_queue(
        [Outgoing(line.pk, kind, f"t:{line.pk}:{i}:{kind}", params) for i, kind in enumerate(kinds)], at=when
    )


NOON = datetime(2026, 12, 3, 12, 0, tzinfo=SHANGHAI)


def test_a_burst_of_a_thousand_events_for_one_borrower_sends_the_budget_and_the_rest_later_once_each(monkeypatch):
    now = timezone.now()
    day = timezone.localdate()
    items: list[dict[str, Any]] = [{"kind": "account", "account": "ACC-1", "occurred_at": (now - timedelta(days=400)).isoformat(), "limit": "20000.00", "phone": "13812345678", "employer": "杭州云栖科技有限公司", "monthly_income": "10000.00"}]  # fmt: skip
    lenders = ["招商银行", "平安普惠", "微众银行", "京东金融", "度小满"]
    items += [
        {"kind": "credit_inquiry", "upstream_id": f"q{i}", "account": "ACC-1",
         "occurred_at": (now - timedelta(days=20, minutes=i)).isoformat(), "institution": lenders[i % 5]}
        for i in range(600)
    ]  # fmt: skip
    items += [{"kind": "drawdown", "upstream_id": "d1", "account": "ACC-1", "occurred_at": (now - timedelta(days=100)).isoformat(), "amount": "12000.00", "term_months": 12}]  # fmt: skip
    items += [
        {"kind": "installment", "upstream_id": f"i{i}", "account": "ACC-1", "occurred_at": (now - timedelta(days=100)).isoformat(),
         "due_date": (day - timedelta(days=5) + timedelta(days=30 * i)).isoformat(), "amount": "1000.00", "drawdown": "d1"}
        for i in range(12)
    ]  # fmt: skip
    items += [
        {"kind": "income_record", "upstream_id": f"r{i}", "account": "ACC-1", "occurred_at": (now - timedelta(days=90, minutes=i)).isoformat(),
         "source": "bureau", "employer": "另一家公司", "monthly_income": "4000.00"}
        for i in range(386)
    ]  # fmt: skip
    assert len(items) == 1000
    for start in range(0, 1000, 100):  # ten batches, the engine reacting after each as it does in production
        batch = events_ingest(items=items[start : start + 100], actor=Actor.system("ledger"), source="api")
        assert batch.status == "stored", batch.errors
        evaluate_lines(list(CreditLine.objects.values_list("pk", flat=True)))
    line = CreditLine.objects.get(account_no="ACC-1")
    # And the operators' own messages on top: a credit-education notice, a request to update the profile.
    queue(line, [NotificationKind.CREDIT_EDUCATION, NotificationKind.PROFILE_UPDATE_REQUEST], now)
    budgeted = list(Notification.objects.filter(line=line, kind__in=BUDGETED).order_by("created_at", "id"))
    assert len(budgeted) > 3, [n.kind for n in budgeted]  # the burst asks for more than the budget

    clock = datetime.combine(day, datetime.min.time(), tzinfo=SHANGHAI) + timedelta(hours=10)
    rounds = 0
    while Notification.objects.filter(line=line, sent_at__isnull=True).exists():
        at(monkeypatch, clock)
        notifications_send_pending()
        sent = Notification.objects.filter(line=line, kind__in=BUDGETED, sent_at__gt=clock - timedelta(hours=24))
        window = sent.filter(sent_at__lte=clock)
        assert window.count() <= 3
        held = Notification.objects.filter(line=line, sent_at__isnull=True)
        reasons = {HeldReason.DAILY_MAX, HeldReason.BEHIND}  # over the budget, or behind one that is
        assert all(n.held_reason in reasons and (n.held_until or clock) > clock for n in held)
        clock += timedelta(hours=25)
        rounds += 1
        assert rounds < 20

    assert sorted(SENT) == sorted(set(SENT))  # once each
    assert set(SENT) >= {n.pk for n in budgeted}
    assert rounds == -(-len(budgeted) // 3)  # three a day, in the order they were written
    order = list(
        Notification.objects.filter(line=line, kind__in=BUDGETED)
        .order_by("sent_at", "created_at", "id")
        .values_list("pk", flat=True)
    )
    assert order == [n.pk for n in budgeted]


def test_quiet_hours_hold_a_message_until_the_morning_of_the_borrowers_own_zone(monkeypatch):
    shanghai = make_line(phone="13812345678")
    london = make_line(phone="13812345679")
    CreditLine.objects.filter(pk=london.pk).update(borrower=london.borrower)
    london.borrower.time_zone = "Europe/London"
    london.borrower.save(update_fields=["time_zone"])
    late = datetime(2026, 12, 3, 23, 30, tzinfo=SHANGHAI)  # 15:30 in London
    for line in (shanghai, london):
        queue(line, [NotificationKind.FREEZE, NotificationKind.APPEAL_RECEIVED], late)
    at(monkeypatch, late)

    notifications_send_pending()

    freeze = Notification.objects.get(line=shanghai, kind=NotificationKind.FREEZE)
    assert freeze.sent_at is None and freeze.held_reason == HeldReason.QUIET_HOURS
    assert freeze.held_until == datetime(2026, 12, 4, 8, 0, tzinfo=SHANGHAI)
    # The receipt of an appeal the borrower just sent goes out at any hour; London's borrower is awake.
    assert Notification.objects.get(line=shanghai, kind=NotificationKind.APPEAL_RECEIVED).sent_at is not None
    assert Notification.objects.get(line=london, kind=NotificationKind.FREEZE).sent_at is not None

    at(monkeypatch, datetime(2026, 12, 4, 8, 1, tzinfo=SHANGHAI))
    notifications_send_pending()
    notifications_send_pending()
    assert SENT.count(freeze.pk) == 1


@pytest.mark.parametrize(
    ("moment", "until"),
    [
        (datetime(2026, 12, 3, 20, 59, tzinfo=SHANGHAI), None),
        (datetime(2026, 12, 3, 21, 0, tzinfo=SHANGHAI), datetime(2026, 12, 4, 8, 0, tzinfo=SHANGHAI)),
        (datetime(2026, 12, 4, 7, 59, tzinfo=SHANGHAI), datetime(2026, 12, 4, 8, 0, tzinfo=SHANGHAI)),
        (datetime(2026, 12, 4, 8, 0, tzinfo=SHANGHAI), None),
    ],
)
def test_quiet_hours_cross_midnight(moment, until):
    assert quiet_until(moment, "Asia/Shanghai") == (until.astimezone(UTC) if until else None)


@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_never_spend_the_budget_twice(monkeypatch):
    line = make_line()
    # Committed at once (transaction=True), the queued messages would be sent on commit by the eager task, before
    # the two workers race (and on the real clock: in the quiet hours, 21:00-08:00 in Shanghai, all held). The
    # workers below are the only senders.
    monkeypatch.setattr(notifications, "_schedule_send", lambda: None)
    at(monkeypatch, NOON)
    queue(line, [NotificationKind.FREEZE, NotificationKind.LIMIT_CUT, NotificationKind.OVERDUE_REMINDER,
                 NotificationKind.DUE_REMINDER, NotificationKind.CREDIT_EDUCATION], NOON)  # fmt: skip

    in_threads(notifications_send_pending, notifications_send_pending)
    notifications_send_pending()

    assert Notification.objects.filter(line=line, sent_at__isnull=False).count() == 3
    assert len(SENT) == 3
    held = Notification.objects.filter(line=line, sent_at__isnull=True)
    assert sorted(held.values_list("held_reason", flat=True)) == [HeldReason.BEHIND, HeldReason.DAILY_MAX]


def test_the_environment_names_a_bad_quiet_hours_value(monkeypatch):
    from riskops.settings import env_hours

    monkeypatch.setenv("NOTIFICATION_QUIET_HOURS", "21-8")
    with pytest.raises(ImproperlyConfigured, match=r"NOTIFICATION_QUIET_HOURS='21-8' is not a span of the day"):
        env_hours("NOTIFICATION_QUIET_HOURS", "21:00-08:00")
    monkeypatch.setenv("NOTIFICATION_QUIET_HOURS", "08:00-08:00")
    with pytest.raises(ImproperlyConfigured, match="is empty"):
        env_hours("NOTIFICATION_QUIET_HOURS", "21:00-08:00")
    monkeypatch.setenv("NOTIFICATION_QUIET_HOURS", "off")
    assert env_hours("NOTIFICATION_QUIET_HOURS", "21:00-08:00") is None


def test_an_unknown_time_zone_is_refused_at_ingestion():
    batch = events_ingest(
        items=[
            {
                "kind": "account",
                "account": "ACC-9",
                "occurred_at": timezone.now().isoformat(),
                "limit": "1000.00",
                "time_zone": "Mars/Olympus",
            }
        ],
        actor=Actor.system("ledger"),
        source="api",
    )
    assert batch.status == "rejected"
    assert [(e["field"], e["message"]) for e in batch.errors] == [
        ("time_zone", "must be a time zone name such as Asia/Shanghai")
    ]


# --- Reminders before harm


def test_a_borrower_who_was_overdue_before_is_reminded_days_before_the_due_date_once():
    today = timezone.localdate()
    was_late = make_line()
    installment(was_late, today - timedelta(days=40), paid_at=timezone.now() - timedelta(days=30))  # paid 10 days late
    coming = installment(was_late, today + timedelta(days=3), "1500.00")
    always_on_time = make_line()
    installment(always_on_time, today - timedelta(days=40), paid_at=timezone.now() - timedelta(days=41))
    installment(always_on_time, today + timedelta(days=3))
    frozen = make_line(status="frozen")
    installment(frozen, today - timedelta(days=40), paid_at=timezone.now() - timedelta(days=30))
    installment(frozen, today + timedelta(days=3))

    assert lines_remind_due(today=today, days_before=3) == 1
    assert lines_remind_due(today=today, days_before=3) == 0  # queued once, whatever the runs

    [reminder] = Notification.objects.filter(kind=NotificationKind.DUE_REMINDER)
    assert reminder.line_id == was_late.pk and reminder.dedupe_key == f"due_reminder:{coming.pk}"
    due = today + timedelta(days=3)
    assert f"您有一笔 ¥1,500.00 的还款将于 {due.month}月{due.day}日 到期" in reminder.body
    assert "/a/" in reminder.body
    assert lines_remind_due(today=today, days_before=0) == 0


def test_a_reminder_tier_overdue_is_followed_by_the_advice_risk_managers_wrote():
    from accounts.models import Guidance

    line = make_line()
    installment(line, timezone.localdate() - timedelta(days=5))
    evaluate_lines([line.pk])

    kinds = set(Notification.objects.filter(line=line).values_list("kind", flat=True))
    assert kinds == {NotificationKind.OVERDUE_REMINDER, NotificationKind.OVERDUE_ADVICE}
    advice = Notification.objects.get(line=line, kind=NotificationKind.OVERDUE_ADVICE)
    current = Guidance.objects.filter(code="OVERDUE").order_by("-version").first()
    assert current is not None and linked(advice.body, line.pk) == f"【借呗】温馨提示：{current.text_zh} 详情："


def test_a_payment_the_morning_after_the_due_date_in_shanghai_was_late_and_a_missed_day_is_caught_up():
    today = timezone.localdate()
    line = make_line()
    due = today - timedelta(days=40)
    # 02:00 in Shanghai the day after the due date: still the due date in UTC (the session's zone).
    paid = datetime.combine(due + timedelta(days=1), datetime.min.time(), tzinfo=SHANGHAI) + timedelta(hours=2)
    installment(line, due, paid_at=paid)
    coming = installment(line, today + timedelta(days=2))  # the run three days before was missed

    assert lines_remind_due(today=today, days_before=3) == 1
    assert Notification.objects.get(kind=NotificationKind.DUE_REMINDER).dedupe_key == f"due_reminder:{coming.pk}"


def test_a_later_message_waits_behind_an_earlier_held_one_of_the_same_borrower(monkeypatch):
    line = make_line()
    queue(line, [NotificationKind.FREEZE, NotificationKind.LIMIT_CUT, NotificationKind.OVERDUE_REMINDER], NOON)
    at(monkeypatch, NOON)
    notifications_send_pending()
    queue(line, [NotificationKind.CREDIT_EDUCATION], NOON + timedelta(minutes=1))  # held: the budget is spent
    at(monkeypatch, NOON + timedelta(minutes=1))
    notifications_send_pending()
    # An unfreeze is never held for the budget, but it must not overtake the held notice.
    notifications_queue(
        [Outgoing(line.pk, NotificationKind.UNFREEZE, "t:unfreeze", {"limit": "1.00", "link": "l"})],
        at=NOON + timedelta(minutes=2),
    )
    at(monkeypatch, NOON + timedelta(minutes=2))
    notifications_send_pending()

    education = Notification.objects.get(line=line, kind=NotificationKind.CREDIT_EDUCATION)
    unfreeze = Notification.objects.get(line=line, kind=NotificationKind.UNFREEZE)
    assert (education.sent_at, education.held_reason) == (None, HeldReason.DAILY_MAX)
    assert (unfreeze.sent_at, unfreeze.held_reason) == (None, HeldReason.BEHIND)
    assert education.held_until is not None and unfreeze.held_until == education.held_until

    at(monkeypatch, education.held_until + timedelta(seconds=1))
    notifications_send_pending()
    assert SENT[-2:] == [education.pk, unfreeze.pk]
