"""Exempting one account from one rule until a time, with a reason: the engine then fires no new signal of that
rule for the account (`accounts.engine` reads exemptions with the suppressions); it expires by itself. Audited."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import CreditLine, Exemption, RuleCode
from riskops.core.audit import Actor, Change, audit_write
from riskops.core.errors import DomainError
from riskops.core.roles import TUNE_RULES, require

MAX_EXEMPTION_DAYS = 180
MIN_REASON = 10


def exemption_grant(*, line_id: int, code: str, until: datetime, reason: str, actor: Actor) -> Exemption:
    require(actor, TUNE_RULES, _("Your role cannot exempt accounts from rules"))
    reason = reason.strip()
    if code not in RuleCode.values:
        raise DomainError(_("unknown rule %(code)r") % {"code": code})
    if len(reason) < MIN_REASON:
        raise DomainError(_("Say why, in at least %(n)s characters") % {"n": MIN_REASON})
    now = timezone.now()
    if not now < until <= now + timedelta(days=MAX_EXEMPTION_DAYS):
        raise DomainError(
            _("An exemption lasts until a time in the next %(days)s days, not %(until)s")
            % {"days": MAX_EXEMPTION_DAYS, "until": timezone.localtime(until).strftime("%Y-%m-%d %H:%M")}
        )
    with transaction.atomic():
        if not CreditLine.objects.filter(pk=line_id).exists():
            raise DomainError(_("No such account"))
        exemption = Exemption.objects.create(
            line_id=line_id, code=code, until=until, reason=reason, created_at=now, created_by=actor.user
        )
        audit_write(
            actor=actor,
            at=now,
            changes=[
                Change(
                    "exemption.grant",
                    "exemption",
                    exemption.pk,
                    line_id,
                    None,
                    {"code": code, "until": until.isoformat()},
                    reason,
                )
            ],
        )
    return exemption
