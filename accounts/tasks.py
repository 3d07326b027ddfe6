"""Celery tasks: thin, take ids, call services, safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from accounts import engine, notifications
from accounts.services import cases, lines, touched
from riskops.core.audit import Actor


@shared_task(name="accounts.tasks.notifications_send_pending", acks_late=True)
def notifications_send_pending() -> int:
    """Drain the outbox in chunks; what fails stays for the periodic sweep."""
    total = 0
    for _ in range(100):
        sent = notifications.notifications_send_pending(limit=500)
        total += sent
        if sent < 500:
            break
    return total


@shared_task(name="accounts.tasks.engine_evaluate_lines", acks_late=True)
def engine_evaluate_lines(line_ids: list[int]) -> dict[str, int]:
    result = engine.evaluate_lines(line_ids, actor=Actor.engine())
    return {"evaluated": result.evaluated, "fired": result.fired, "cleared": result.cleared}


@shared_task(name="accounts.tasks.cases_release_idle_claims", acks_late=True)
def cases_release_idle_claims() -> int:
    return len(cases.cases_release_idle_claims())


@shared_task(name="accounts.tasks.reminders_before_due", acks_late=True)
def reminders_before_due() -> int:
    """Remind borrowers who were overdue before, REMINDER_DAYS_BEFORE_DUE days ahead (once per installment)."""
    return lines.lines_remind_due(today=timezone.localdate(), days_before=settings.REMINDER_DAYS_BEFORE_DUE)


@shared_task(name="accounts.tasks.engine_react", acks_late=True)
def engine_react() -> int:
    """Evaluate the lines that new upstream data touched, in engine batches, until none is waiting."""
    return touched.touched_evaluate_all()
