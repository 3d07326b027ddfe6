"""Operator roles are Django groups with permissions; services check them (`require`), pages only translate.

What each role may do is `GRANTS`; the role of a user comes from `riskops.core.auth.user_roles`.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from riskops.core.errors import NotAllowed

ANALYST = "analyst"
SENIOR_REVIEWER = "senior_reviewer"
RISK_MANAGER = "risk_manager"
AUDITOR = "auditor"
ADMIN = "admin"

ROLES = [ANALYST, SENIOR_REVIEWER, RISK_MANAGER, AUDITOR, ADMIN]
# Not an operator role: an upstream system's API user (the lending app, the bureau feed, the payments ledger),
# which may submit and read appeals and send borrowers, lines and events.
INTEGRATION = "integration"

# Permission names (app label and codename), as services check them.
DECIDE_CASE = "accounts.decide_case"
APPROVE_DECISION = "accounts.approve_decision"
ASSIGN_CASE = "accounts.assign_case"
REVEAL_PII = "accounts.reveal_pii"
SUBMIT_APPEAL = "appeals.submit_appeal"
INGEST_EVENTS = "ingest.ingest_events"

# What each role may do beyond reading (codenames of the permissions above). Auditors only read.
GRANTS = {
    ANALYST: ["decide_case"],
    SENIOR_REVIEWER: ["decide_case", "approve_decision", "assign_case", "reveal_pii"],
    RISK_MANAGER: ["decide_case", "approve_decision", "assign_case", "reveal_pii", "ingest_events"],
    AUDITOR: [],
    ADMIN: ["decide_case", "approve_decision", "assign_case", "reveal_pii", "ingest_events"],
    INTEGRATION: ["submit_appeal", "ingest_events"],
}
# The roles that may work cases (be assigned one).
DECIDERS = [role for role, codenames in GRANTS.items() if "decide_case" in codenames]
SENIORS = [SENIOR_REVIEWER, RISK_MANAGER]


def ensure_roles() -> None:
    """Create the role groups with their permissions if missing (migrations do it; a flushed test DB needs it)."""
    from django.contrib.auth.models import Group, Permission

    for role, codenames in GRANTS.items():
        group, _created = Group.objects.get_or_create(name=role)
        group.permissions.add(
            *Permission.objects.filter(
                content_type__app_label__in=["accounts", "appeals", "ingest"], codename__in=codenames
            )
        )


def may(actor: Any, perm: str) -> bool:
    """Whether the actor (an `Actor`) is an active operator holding `perm`."""
    user = actor.user
    return user is not None and user.is_active and user.has_perm(perm)


def require(actor: Any, perm: str, message: str) -> None:
    """Refuse (`NotAllowed`, with `message`) unless the actor is an active operator holding `perm`."""
    if not may(actor, perm):
        raise NotAllowed(message)


def operator_id(actor: Any) -> int:
    """The acting operator's user id; refused for the engine, jobs, the system and borrowers."""
    if actor.user_id is None:
        raise NotAllowed(_("Only a logged-in operator can do this"))
    return int(actor.user_id)
