"""Rule changes: a risk manager copies a version into a draft and edits its rules; versions that were ever active
are immutable (the database refuses their change, migration 0025). Every change is audited with before and after.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Rule, RuleAction, RuleSet, Severity
from accounts.rule_params import ParamsInvalid, clean_params
from riskops.core.audit import Actor, Change, audit_write
from riskops.core.errors import DomainError
from riskops.core.roles import TUNE_RULES, require

RULESET_LOCK = 7003  # the advisory lock of ruleset versions (one new version at a time: their numbers)
MAX_NOTE = 200


def require_may_tune(actor: Actor) -> None:
    require(actor, TUNE_RULES, _("Your role cannot change the rules"))


def rule_fields(rule: Rule) -> dict[str, Any]:
    """What a version holds of a rule (what a diff compares and the audit records)."""
    return {
        "params": rule.params,
        "severity": rule.severity,
        "action": rule.action,
        "enabled": rule.enabled,
        "restore_on_clear": rule.restore_on_clear,
    }


def ruleset_draft(*, source: RuleSet, actor: Actor, note: str = "") -> RuleSet:
    """A new draft version holding a copy of `source`'s rules (any version: the active one, an older one, a draft).
    Audited as `ruleset.draft`."""
    require_may_tune(actor)
    note = note.strip() or _("copy of v%(version)s") % {"version": source.version}
    if len(note) > MAX_NOTE:
        raise DomainError(_("The note has %(n)s characters; at most %(max)s") % {"n": len(note), "max": MAX_NOTE})
    at = timezone.now()
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [RULESET_LOCK])
        version = (RuleSet.objects.aggregate(v=Max("version"))["v"] or 0) + 1
        draft = RuleSet.objects.create(
            version=version, note=note, created_at=at, created_by=actor.user, based_on=source
        )
        rules = list(source.rules.order_by("code"))
        Rule.objects.bulk_create([Rule(ruleset=draft, code=r.code, **rule_fields(r)) for r in rules])
        audit_write(
            actor=actor,
            at=at,
            changes=[
                Change(
                    "ruleset.draft",
                    "ruleset",
                    draft.pk,
                    None,
                    {"version": source.version},
                    {"version": version, "note": note, "rules": {r.code: rule_fields(r) for r in rules}},
                )
            ],
        )
    return draft


def rule_change(
    *,
    rule_id: int,
    actor: Actor,
    params: Any,
    severity: str,
    action: str,
    enabled: bool,
    restore_on_clear: bool | None,
) -> Rule:
    """Change one rule of a draft: its parameters checked (`accounts.rule_params`: every key of its family, none
    other, each in range), its severity and action among the choices. A live version's rule is refused. Nothing
    changes (and nothing is audited) when nothing differs. Audited as `rule.change` with before and after."""
    require_may_tune(actor)
    errors: dict[str, str] = {}
    try:
        cleaned = clean_params(_code_of(rule_id), params)
    except ParamsInvalid as e:
        errors.update(e.errors)
        cleaned = {}
    if severity not in Severity.values:
        errors["severity"] = _("not a severity")
    if action not in RuleAction.values or action == RuleAction.REMIND:
        # A reminder is OVERDUE's lower tier (its own threshold), not a rule's action.
        errors["action"] = _("not an action a rule takes")
    if errors:
        raise ParamsInvalid(errors)
    with transaction.atomic():
        rule = Rule.objects.select_for_update().select_related("ruleset").get(pk=rule_id)
        if not rule.ruleset.is_draft:
            raise DomainError(
                _("Version %(v)s has been live and cannot change: copy it into a draft") % {"v": rule.ruleset.version}
            )
        before = rule_fields(rule)
        rule.params, rule.severity, rule.action = cleaned, severity, action
        rule.enabled, rule.restore_on_clear = enabled, restore_on_clear
        after = rule_fields(rule)
        if after == before:
            return rule
        rule.save(update_fields=["params", "severity", "action", "enabled", "restore_on_clear"])
        audit_write(
            actor=actor,
            at=timezone.now(),
            changes=[
                Change(
                    "rule.change",
                    "rule",
                    rule.pk,
                    None,
                    {"version": rule.ruleset.version, "code": rule.code, **before},
                    {"version": rule.ruleset.version, "code": rule.code, **after},
                )
            ],
        )
    return rule


def ruleset_discard(*, ruleset_id: int, actor: Actor) -> int:
    """Delete a draft and its rules; a version that has been live is refused. Audited as `ruleset.discard`.
    Returns the discarded version's number."""
    require_may_tune(actor)
    with transaction.atomic():
        draft = RuleSet.objects.select_for_update().get(pk=ruleset_id)
        if not draft.is_draft:
            raise DomainError(_("Version %(v)s has been live: it is kept") % {"v": draft.version})
        rules = {r.code: rule_fields(r) for r in draft.rules.all()}
        draft.rules.all().delete()
        version = draft.version
        draft.delete()
        audit_write(
            actor=actor,
            at=timezone.now(),
            changes=[Change("ruleset.discard", "ruleset", ruleset_id, None, {"version": version, "rules": rules})],
        )
    return version


def _code_of(rule_id: int) -> str:
    code = Rule.objects.filter(pk=rule_id).values_list("code", flat=True).first()
    if code is None:
        raise DomainError(_("No such rule"))
    return code


MAX_SHADOW_DAYS = 90


def ruleset_shadow(*, ruleset_id: int, until: datetime, actor: Actor) -> RuleSet:
    """Run a draft in shadow from now until `until` (at most MAX_SHADOW_DAYS ahead): every live evaluation also
    evaluates it and records what it would have done (`accounts.engine`), with no effect on any account. One draft
    at a time. Audited as `ruleset.shadow`."""
    require_may_tune(actor)
    now = timezone.now()
    if not now < until <= now + timedelta(days=MAX_SHADOW_DAYS):
        raise DomainError(
            _("A shadow runs until a time in the next %(days)s days, not %(until)s")
            % {"days": MAX_SHADOW_DAYS, "until": timezone.localtime(until).strftime("%Y-%m-%d %H:%M")}
        )
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [RULESET_LOCK])
        draft = RuleSet.objects.select_for_update().get(pk=ruleset_id)
        if not draft.is_draft:
            raise DomainError(_("Version %(v)s has been live: only a draft runs in shadow") % {"v": draft.version})
        other = RuleSet.objects.filter(shadow_until__gt=now).exclude(pk=draft.pk).first()
        if other is not None:
            raise DomainError(
                _("Version %(v)s runs in shadow until %(until)s: stop it first")
                % {"v": other.version, "until": timezone.localtime(other.shadow_until).strftime("%Y-%m-%d %H:%M")}
            )
        before = {"shadow_from": _iso(draft.shadow_from), "shadow_until": _iso(draft.shadow_until)}
        if not (draft.shadow_until and draft.shadow_until > now):
            draft.shadow_from = now  # a shadow resumed keeps its start: its records compare from there
        draft.shadow_until = until
        draft.save(update_fields=["shadow_from", "shadow_until"])
        after = {"shadow_from": _iso(draft.shadow_from), "shadow_until": _iso(until)}
        audit_write(actor=actor, at=now, changes=[Change("ruleset.shadow", "ruleset", draft.pk, None, before, after)])
    return draft


def ruleset_shadow_stop(*, ruleset_id: int, actor: Actor) -> RuleSet:
    """End a draft's shadow now (its records are kept). Audited as `ruleset.shadow_stop`."""
    require_may_tune(actor)
    now = timezone.now()
    with transaction.atomic():
        draft = RuleSet.objects.select_for_update().get(pk=ruleset_id)
        if not (draft.shadow_until and draft.shadow_until > now):
            raise DomainError(_("Version %(v)s does not run in shadow") % {"v": draft.version})
        before = {"shadow_until": _iso(draft.shadow_until)}
        draft.shadow_until = now
        draft.save(update_fields=["shadow_until"])
        audit_write(
            actor=actor,
            at=now,
            changes=[Change("ruleset.shadow_stop", "ruleset", draft.pk, None, before, {"shadow_until": _iso(now)})],
        )
    return draft


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None
