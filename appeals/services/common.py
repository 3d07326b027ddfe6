"""What the appeal services share: the lock order, the case's appeal marker, the SLA priority."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils.translation import gettext as _

from accounts.models import Case
from accounts.services.cases import case_lock
from appeals.models import Appeal, AppealPriority
from riskops.core.errors import NotFound


def appeal_priority(due: datetime, now: datetime) -> int:
    if due < now:
        return AppealPriority.BREACHED
    if due < now + timedelta(hours=settings.APPEAL_DUE_SOON_HOURS):
        return AppealPriority.DUE_SOON
    return AppealPriority.NORMAL


def set_case_marker(case_id: int, state: str, due: datetime | None) -> None:
    """The case's marker of its open appeal (`Case.appeal_state`), which the queue reads; kept by this app."""
    Case.objects.filter(pk=case_id).update(appeal_state=state, appeal_due_at=due)


def lock_appeal(appeal_id: int) -> tuple[Case, Appeal]:
    """Lock the appeal's line, case and the appeal, in the order every service uses."""
    case_id = Appeal.objects.filter(pk=appeal_id).values_list("case_id", flat=True).first()
    if case_id is None:
        raise NotFound(_("Appeal %(id)s does not exist") % {"id": appeal_id})
    case = case_lock(case_id)
    return case, Appeal.objects.select_for_update().get(pk=appeal_id)
