"""What borrowers are told to do about each reason (credit education): risk managers publish a new version, never
edit one (the status pages and messages sent keep naming the version they showed)."""

from __future__ import annotations

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Guidance, RuleCode
from riskops.core.audit import Actor, Change, audit_write
from riskops.core.errors import DomainError
from riskops.core.roles import WRITE_GUIDANCE, require

MAX_CHARS = 500  # a few sentences on a phone's screen
GUIDANCE_LOCKS = 7002  # the advisory-lock namespace of guidance versions (one writer per reason at a time)


def require_may_write_guidance(actor: Actor) -> None:
    require(actor, WRITE_GUIDANCE, _("Your role cannot change what borrowers are told"))


def guidance_publish(*, code: str, text_zh: str, text_en: str, actor: Actor) -> Guidance:
    """A new version of a reason's guidance, in both languages; the current one when nothing changed (a double
    submit publishes once). Audited as `guidance.publish` with the texts before and after."""
    require_may_write_guidance(actor)
    if code not in RuleCode.values:
        raise DomainError(_("Unknown reason: %(code)s") % {"code": code})
    texts = {"text_zh": text_zh.strip(), "text_en": text_en.strip()}
    for field, label in (("text_zh", _("The Chinese text")), ("text_en", _("The English text"))):
        if not texts[field]:
            raise DomainError(_("%(text)s is empty") % {"text": label})
        if len(texts[field]) > MAX_CHARS:
            raise DomainError(
                _("%(text)s has %(n)s characters; at most %(max)s fit on a phone's screen")
                % {"text": label, "n": len(texts[field]), "max": MAX_CHARS}
            )
    at = timezone.now()
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", [GUIDANCE_LOCKS, RuleCode.values.index(code)])
        current = Guidance.objects.filter(code=code).order_by("-version").first()
        if current is not None and (current.text_zh, current.text_en) == (texts["text_zh"], texts["text_en"]):
            return current
        guidance = Guidance.objects.create(
            code=code,
            version=(current.version + 1) if current else 1,
            created_at=at,
            created_by=actor.user,
            **texts,
        )
        before = (
            {"version": current.version, "text_zh": current.text_zh, "text_en": current.text_en} if current else None
        )
        audit_write(
            actor=actor,
            at=at,
            changes=[
                Change(
                    "guidance.publish",
                    "guidance",
                    guidance.pk,
                    None,
                    before,
                    {"code": code, "version": guidance.version, **texts},
                )
            ],
        )
    return guidance
