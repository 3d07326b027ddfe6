"""Celery tasks for appeals: thin, safe to run twice."""

from __future__ import annotations

from celery import shared_task

from appeals import services


@shared_task(name="appeals.tasks.appeals_age", acks_late=True)
def appeals_age() -> dict[str, int]:
    """Beat: raise priorities as deadlines near, alert senior reviewers of breaches (once each)."""
    return services.appeals_age()
