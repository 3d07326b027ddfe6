"""Personal data of borrowers: shown masked everywhere; a permitted operator reveals it, audited with a reason."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.core import signing
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


_REVEAL_SALT = "accounts.reveal"


def reveal_token(*, case_id: int, actor: Actor, fields: Iterable[str]) -> str:
    """A signed note that `actor` revealed `fields` of the case's borrower just now (audited by `borrower_reveal`):
    the case page's address after a reveal carries it, so a refresh shows the same data again for a few minutes
    without asking, or auditing, twice. It holds no personal data, only the case, the operator and field names."""
    return signing.dumps({"c": case_id, "u": actor.user_id, "f": sorted(set(fields))}, salt=_REVEAL_SALT)


def borrower_revealed(*, case_id: int, actor: Actor, token: str) -> dict[str, str]:
    """What `reveal_token` shows again: the fields, unmasked, when the token is this operator's for this case and
    younger than REVEAL_SECONDS; otherwise {} (the page shows the data masked)."""
    try:
        grant = signing.loads(token, salt=_REVEAL_SALT, max_age=settings.REVEAL_SECONDS)
    except signing.BadSignature:  # also SignatureExpired
        return {}
    fields = [f for f in grant.get("f", []) if f in REVEALABLE]
    if grant.get("c") != case_id or grant.get("u") != actor.user_id or not fields:
        return {}
    borrower = Case.objects.select_related("line__borrower").get(pk=case_id).line.borrower
    return {f: getattr(borrower, f) for f in fields}
