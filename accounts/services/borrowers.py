"""Personal data of borrowers: shown masked everywhere; a permitted operator reveals it, audited with a reason."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Case
from riskops.core.audit import Actor, Change, audit_write
from riskops.core.errors import DomainError, NotFound
from riskops.core.roles import REVEAL_PII, require

REVEALABLE = {"name", "phone", "national_id"}


def require_may_reveal(actor: Actor) -> None:
    """Refuse an actor whose role cannot reveal personal data (pages ask before they read the form)."""
    require(actor, REVEAL_PII, _("Your role cannot reveal personal data"))


def borrower_reveal(*, case_id: int, actor: Actor, fields: Iterable[str], reason: str) -> dict[str, str]:
    """Return unmasked personal data for a permitted operator, audited with the typed reason."""
    require_may_reveal(actor)
    wanted = sorted(set(fields))
    if not wanted or not set(wanted) <= REVEALABLE:
        raise DomainError(_("Choose what to reveal: name, phone or national id"))
    if len(reason.strip()) < 10:
        raise DomainError(_("Type the reason for revealing personal data (at least 10 characters)"))
    at = timezone.now()
    with transaction.atomic():
        case = Case.objects.select_related("line__borrower").filter(pk=case_id).first()
        if case is None:
            raise NotFound(_("Case %(id)s does not exist") % {"id": case_id})
        borrower = case.line.borrower
        audit_write(
            actor=actor,
            at=at,
            changes=[
                Change(
                    "borrower.reveal", "borrower", borrower.pk, case.line_id, None, {"fields": wanted}, reason.strip()
                )
            ],
        )
    return {f: getattr(borrower, f) for f in wanted}
