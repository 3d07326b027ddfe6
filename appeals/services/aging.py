"""The appeals' SLA clock: priorities as deadlines near, alerts to senior reviewers on a breach, and appeals whose
request for more information went unanswered going back to review. Run by celery beat."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from appeals.models import CLOCK_STATES, Appeal, AppealAlert, AppealPriority, AppealStatus
from appeals.services.common import appeal_priority, lock_appeal, set_case_marker
from riskops.core.audit import Actor, Change, audit_write
from riskops.core.errors import NotAllowed
from riskops.core.roles import SENIORS

logger = logging.getLogger(__name__)


def appeals_age(*, now: datetime | None = None) -> dict[str, int]:
    """Raise the priority of appeals as their deadline nears; alert senior reviewers once per breach.

    Safe on many workers at once (breaches are claimed with SKIP LOCKED).
    """
    now = now or timezone.now()
    soon = now + timedelta(hours=settings.APPEAL_DUE_SOON_HOURS)
    with transaction.atomic():
        # appeal_priority, as one UPDATE of the appeals whose priority it changes.
        priority = models.Case(
            models.When(sla_due_at__lt=now, then=models.Value(AppealPriority.BREACHED.value)),
            models.When(sla_due_at__lt=soon, then=models.Value(AppealPriority.DUE_SOON.value)),
            default=models.Value(AppealPriority.NORMAL.value),
        )
        changed = Appeal.objects.filter(status__in=CLOCK_STATES).exclude(priority=priority).update(priority=priority)
        breached = list(
            Appeal.objects.select_for_update(skip_locked=True)
            .filter(status__in=CLOCK_STATES, sla_due_at__lt=now, breach_notified_at__isnull=True)
            .values_list("pk", "line_id", "sla_due_at")[:1000]
        )
        if breached:
            _alert(breached, now)
    expired = _return_unanswered(now)
    return {"priority_changed": changed, "breached": len(breached), "unanswered": expired}


def _alert(breached: list[tuple[int, int, datetime]], now: datetime) -> None:
    """Alert every active senior reviewer of each breach, once. With no senior to tell, nothing is marked: the
    breaches wait, and the first run after a senior exists alerts them (marked alerted, they were never shown)."""
    seniors = list(
        get_user_model()
        .objects.filter(is_active=True, groups__name__in=SENIORS)
        .values_list("pk", flat=True)
        .distinct()
    )
    if not seniors:
        logger.warning("%d appeals passed their SLA and no senior reviewer exists to alert", len(breached))
        return
    Appeal.objects.filter(pk__in=[b[0] for b in breached]).update(breach_notified_at=now)
    AppealAlert.objects.bulk_create(
        [AppealAlert(appeal_id=b[0], recipient_id=s, created_at=now) for b in breached for s in seniors],
        ignore_conflicts=True,
    )
    audit_write(
        actor=Actor.system("appeal SLA aging"),
        at=now,
        changes=[
            Change(
                "appeal.sla_breach",
                "appeal",
                pk,
                line_id,
                None,
                {"sla_due_at": due.isoformat(), "seniors_alerted": len(seniors)},
            )
            for pk, line_id, due in breached
        ],
    )
    logger.warning("%d appeals passed their SLA; %d senior reviewers alerted", len(breached), len(seniors))


def _return_unanswered(now: datetime) -> int:
    """Appeals whose request for more information went unanswered until its link expired go back to review.

    While an appeal waits for the borrower, only that appeal can settle its case; without this, a borrower who
    never answers would leave the case unsettled forever. The clock resumes where it was paused, and the reviewer
    decides on what the appeal holds.
    """
    cutoff = now - timedelta(days=settings.APPEAL_LINK_DAYS)
    waiting = list(
        Appeal.objects.filter(status=AppealStatus.AWAITING_INFO, sla_paused_at__lt=cutoff)
        .order_by("sla_paused_at")
        .values_list("pk", flat=True)[:1000]
    )
    returned = 0
    for appeal_id in waiting:
        with transaction.atomic():
            case, appeal = lock_appeal(appeal_id)  # line, case, then appeal: the order every service uses
            if appeal.status != AppealStatus.AWAITING_INFO or appeal.sla_paused_at is None:
                continue  # answered or decided meanwhile
            if appeal.sla_paused_at >= cutoff:
                continue
            paused_at = appeal.sla_paused_at
            appeal.sla_due_at += now - paused_at
            appeal.sla_paused_at = None
            appeal.priority = appeal_priority(appeal.sla_due_at, now)
            appeal.status = AppealStatus.OPEN
            appeal.version += 1
            appeal.updated_at = now
            appeal.save()
            set_case_marker(case.pk, AppealStatus.OPEN, appeal.sla_due_at)
            audit_write(
                actor=Actor.system("appeal SLA aging"),
                at=now,
                changes=[
                    Change(
                        "appeal.more_info_unanswered",
                        "appeal",
                        appeal.pk,
                        appeal.line_id,
                        {"status": AppealStatus.AWAITING_INFO, "waiting_since": paused_at.isoformat()},
                        {"status": AppealStatus.OPEN, "sla_due_at": appeal.sla_due_at.isoformat()},
                    )
                ],
            )
            returned += 1
    if returned:
        logger.info(
            "%d appeals went back to review: the borrower did not answer within %d days",
            returned,
            settings.APPEAL_LINK_DAYS,
        )
    return returned


def appeal_alerts_read(*, actor: Actor) -> int:
    """Mark the operator's SLA breach alerts as read."""
    if actor.user_id is None:
        raise NotAllowed(_("Only a logged-in operator can do this"))
    return AppealAlert.objects.filter(recipient_id=actor.user_id, read_at__isnull=True).update(read_at=timezone.now())
