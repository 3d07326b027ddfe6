"""Operator roles are Django groups with permissions; services check them (`require`), pages only translate.

What each role may do is `GRANTS`; the role of a user comes from `riskops.core.auth.user_roles`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

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
# Each role as a reader names it (the group's name is the code's word for it).
ROLE_LABELS = {
    ANALYST: gettext_lazy("analyst"),
    SENIOR_REVIEWER: gettext_lazy("senior reviewer"),
    RISK_MANAGER: gettext_lazy("risk manager"),
    AUDITOR: gettext_lazy("auditor"),
    ADMIN: gettext_lazy("administrator"),
    INTEGRATION: gettext_lazy("integration"),
}

# Permission names (app label and codename), as services check them.
DECIDE_CASE = "accounts.decide_case"
APPROVE_DECISION = "accounts.approve_decision"
ASSIGN_CASE = "accounts.assign_case"
REVEAL_PII = "accounts.reveal_pii"
WRITE_GUIDANCE = "accounts.add_guidance"  # a new version of a borrower guidance text
SUBMIT_APPEAL = "appeals.submit_appeal"
INGEST_EVENTS = "ingest.ingest_events"
VIEW_AUDIT = "riskops.view_auditevent"  # the audit trail's page and its export
VIEW_OPERATOR_FIGURES = "riskops.view_operator_figures"  # the dashboard's decisions per operator
TUNE_RULES = "accounts.tune_rules"  # draft rule changes; approve another manager's draft going live

# What each role may do beyond reading (codenames of the permissions above). Auditors only read.
GRANTS = {
    ANALYST: ["decide_case"],
    SENIOR_REVIEWER: ["decide_case", "approve_decision", "assign_case", "reveal_pii"],
    RISK_MANAGER: [
        "decide_case",
        "approve_decision",
        "assign_case",
        "reveal_pii",
        "ingest_events",
        "add_guidance",
        "view_operator_figures",
        "tune_rules",
    ],
    AUDITOR: ["view_auditevent"],
    ADMIN: [
        "decide_case",
        "approve_decision",
        "assign_case",
        "reveal_pii",
        "ingest_events",
        "view_auditevent",
        "add_guidance",
        "view_operator_figures",
        "tune_rules",
    ],
    INTEGRATION: ["submit_appeal", "ingest_events"],
}
# The roles that may work cases (be assigned one).
DECIDERS = [role for role, codenames in GRANTS.items() if "decide_case" in codenames]
# Who gets the appeals' SLA alerts (a notification list, not a permission).
SENIORS = [SENIOR_REVIEWER, RISK_MANAGER]
# The roles whose users are Django staff: the admin panel (/admin/) lets in staff only.
STAFF_ROLES = [ADMIN]

# Checks that are not a permission of GRANTS: holding any operator role (`riskops.core.http.operator_required`,
# `riskops.core.api.IsOperator`), and Django staff status (the admin site).
OPERATOR = "operator"
STAFF = "staff"


@dataclass(frozen=True)
class Action:
    """One thing an operator does, in plain words, and the check every entry point of it goes through."""

    words: str
    check: str  # a permission of GRANTS ("accounts.decide_case"), OPERATOR or STAFF
    where: str  # the services or views that check it


# docs/ROLES.md is generated from this list and GRANTS (`python manage.py roles_matrix --write docs/ROLES.md`);
# tests/test_roles.py holds every URL to the same grants.
ACTIONS = [
    Action(
        "Read the console: queue, case pages, appeals inbox and pages, documents, events, jobs (personal data masked)",
        OPERATOR,
        "operator_required, IsOperator",
    ),
    Action("Claim cases and appeals; release their own", DECIDE_CASE, "case_claim, case_claim_next, appeal_claim"),
    Action(
        "Be assigned cases (offered in the Assign lists)", DECIDE_CASE, "operator_may_decide, operators_for_assignment"
    ),
    Action("Decide a case (an unfreeze that needs four eyes becomes a proposal)", DECIDE_CASE, "case_decide"),
    Action("Decide an appeal (approve, approve in part, reject, ask for documents)", DECIDE_CASE, "appeal_decide"),
    Action("Add notes; re-evaluate an account now", DECIDE_CASE, "note_add, case_reevaluate"),
    Action("Start jobs (re-evaluate, unfreeze, reminders, simulation)", DECIDE_CASE, "job_request"),
    Action("Approve or reject a four-eyes proposal (never their own)", APPROVE_DECISION, "decision_review"),
    Action("Work escalated cases and appeals", APPROVE_DECISION, "require_senior_for_escalated"),
    Action(
        "Approve a job waiting for a second reviewer; cancel anyone's job", APPROVE_DECISION, "job_approve, job_cancel"
    ),
    Action("Assign cases and appeals to others; release anyone's", ASSIGN_CASE, "cases_assign, appeals_assign"),
    Action("Reveal a borrower's personal data (audited)", REVEAL_PII, "borrower_reveal"),
    Action(
        "Import events: the events API (operators: also the Import page)",
        INGEST_EVENTS,
        "events_ingest, job_request_import",
    ),
    Action(
        "Submit appeals through the API; read the appeals it submitted", SUBMIT_APPEAL, "appeal_submit, IntegrationApi"
    ),
    Action(
        "Write what borrowers are told to do about each reason (a new version each time, audited)",
        WRITE_GUIDANCE,
        "guidance_publish",
    ),
    Action("Read the audit trail and export it (the export is audited)", VIEW_AUDIT, "reads_audit, audit_export"),
    Action(
        "See the dashboard's decisions per operator per day (managers' home is the dashboard)",
        VIEW_OPERATOR_FIGURES,
        "dashboard_view",
    ),
    Action(
        "Draft rule changes (a copy of a version, validated parameters, compared with any version)",
        TUNE_RULES,
        "ruleset_draft, rule_change, ruleset_discard",
    ),
    Action("Use the admin panel (/admin/)", STAFF, "may_administer (riskops.admin_site)"),
    Action(
        "Manage operators (roles, active, password) and API tokens in the admin panel (audited)",
        STAFF,
        "operator_record, operator_password_set, token_issue, tokens_revoke",
    ),
]


def ensure_roles() -> None:
    """Create the role groups with their permissions if missing (migrations do it; a flushed test DB needs it)."""
    from django.contrib.auth.models import Group, Permission

    for role, codenames in GRANTS.items():
        group, _created = Group.objects.get_or_create(name=role)
        group.permissions.add(
            *Permission.objects.filter(
                content_type__app_label__in=["accounts", "appeals", "ingest", "riskops"], codename__in=codenames
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


def role_may(role: str, check: str) -> bool:
    """Whether `role` passes `check` (a permission name, OPERATOR or STAFF), by GRANTS and the lists above."""
    if check == OPERATOR:
        return role in ROLES
    if check == STAFF:
        return role in STAFF_ROLES
    return check.split(".", 1)[1] in GRANTS[role]


def roles_that(check: str) -> list[str]:
    """The roles passing `check`, in the order of GRANTS."""
    return [role for role in GRANTS if role_may(role, check)]


def holders(perm: str) -> Q:
    """Users holding `perm` through a role or their own permissions (a filter for the user model)."""
    from django.contrib.auth import get_user_model

    app_label, codename = perm.split(".", 1)
    User = get_user_model()
    via_group = User.groups.through.objects.filter(
        group__permissions__codename=codename, group__permissions__content_type__app_label=app_label
    ).values("user_id")
    own = User.user_permissions.through.objects.filter(
        permission__codename=codename, permission__content_type__app_label=app_label
    ).values("user_id")
    return Q(pk__in=via_group) | Q(pk__in=own)
