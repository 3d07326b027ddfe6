"""Operators and API tokens: who may log in, with which roles, and which integrations hold a token.

Administrators (the admin role, or a superuser: `may_administer`) manage them in the admin panel
(`riskops.admin_operators`), which calls these services; every change is an audit event, with what changed before
and after (never a password or a whole token key):

- `operator_record`: after a user is created or changed (name, e-mail, active, superuser, roles), the event
  `operator.create` or `operator.change` with the fields that changed;
- `operator_password_set`: a password set by an administrator (`operator.password_set`, no hash or text);
- `token_issue` / `tokens_revoke`: an integration's API token (`token.issue`, `token.revoke`); the key is shown to
  the administrator once, when issued, and afterwards only by its first characters.

Roles are code (`riskops.core.roles.GRANTS`, docs/ROLES.md): an administrator gives an operator roles, never
permissions of their own, and only a superuser makes another superuser. Users are deactivated, never deleted:
their audit events, cases and decisions keep naming them.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework.authtoken.models import Token

from riskops.core.audit import Actor, Change, audit_write
from riskops.core.auth import may_administer
from riskops.core.errors import ConflictError, NotAllowed

OPERATOR_CREATE = "operator.create"
OPERATOR_CHANGE = "operator.change"
# Action names, not secrets (ruff's S105 reads "password" and "token" in a name as one).
OPERATOR_PASSWORD_SET = "operator.password_set"  # noqa: S105
TOKEN_ISSUE = "token.issue"  # noqa: S105
TOKEN_REVOKE = "token.revoke"  # noqa: S105
KEY_SHOWN = 4  # the characters of a token key shown after it was issued


def _require_administrator(actor: Actor) -> None:
    if not may_administer(actor.user):
        raise NotAllowed(_("Only an administrator manages operators and API tokens"))


def key_hint(key: str) -> str:
    """A token key as lists and audit events show it: its first characters only."""
    return f"{key[:KEY_SHOWN]}…"


def operator_snapshot(user: Any) -> dict[str, Any]:
    """What an operator's audit events compare: identity, status and roles (read from the database)."""
    fresh = get_user_model().objects.filter(pk=user.pk).first()
    if fresh is None:
        return {}
    return {
        "username": fresh.get_username(),
        "first_name": fresh.first_name,
        "last_name": fresh.last_name,
        "email": fresh.email,
        "is_active": fresh.is_active,
        "is_superuser": fresh.is_superuser,
        "roles": sorted(fresh.groups.values_list("name", flat=True)),
    }


def operator_record(*, actor: Actor, user: Any, before: dict[str, Any] | None) -> bool:
    """Audit a user just created (`before` None) or changed (`before` = `operator_snapshot` taken before): one
    event with the fields that changed; nothing when none did. Returns whether an event was written."""
    _require_administrator(actor)
    after = operator_snapshot(user)
    if before is None:
        change = Change(OPERATOR_CREATE, "user", user.pk, None, after=after)
    else:
        changed = [k for k in after if before.get(k) != after[k]]
        if not changed:
            return False
        change = Change(
            OPERATOR_CHANGE,
            "user",
            user.pk,
            None,
            before={k: before.get(k) for k in changed},
            after={k: after[k] for k in changed},
        )
    audit_write(actor=actor, at=timezone.now(), changes=[change])
    return True


def operator_password_set(*, actor: Actor, user: Any) -> None:
    """Audit a password an administrator set for an operator (nothing of the password is recorded)."""
    _require_administrator(actor)
    audit_write(
        actor=actor,
        at=timezone.now(),
        changes=[Change(OPERATOR_PASSWORD_SET, "user", user.pk, None, after={"username": user.get_username()})],
    )


@transaction.atomic
def token_issue(*, actor: Actor, user: Any) -> Token:
    """Issue `user` an API token (one per user); refused when they hold one (revoke it first)."""
    _require_administrator(actor)
    if Token.objects.filter(user=user).exists():
        raise ConflictError(_("%(user)s already holds an API token: revoke it first") % {"user": user.get_username()})
    token = Token.objects.create(user=user)
    audit_write(
        actor=actor,
        at=timezone.now(),
        changes=[
            Change(
                TOKEN_ISSUE, "user", user.pk, None, after={"username": user.get_username(), "key": key_hint(token.key)}
            )
        ],
    )
    return token


@transaction.atomic
def tokens_revoke(*, actor: Actor, user_ids: list[int]) -> int:
    """Revoke the API tokens of these users (those that hold one); how many were revoked."""
    _require_administrator(actor)
    tokens = list(Token.objects.select_for_update().filter(user_id__in=user_ids).select_related("user"))
    Token.objects.filter(key__in=[t.key for t in tokens]).delete()
    audit_write(
        actor=actor,
        at=timezone.now(),
        changes=[
            Change(
                TOKEN_REVOKE,
                "user",
                t.user_id,
                None,
                before={"username": t.user.get_username(), "key": key_hint(t.key)},
            )
            for t in tokens
        ],
    )
    return len(tokens)
