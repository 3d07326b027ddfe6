"""Operator roles are Django groups; pages and actions check their permissions on the server."""

ANALYST = "analyst"
SENIOR_REVIEWER = "senior_reviewer"
RISK_MANAGER = "risk_manager"
AUDITOR = "auditor"
ADMIN = "admin"

ROLES = [ANALYST, SENIOR_REVIEWER, RISK_MANAGER, AUDITOR, ADMIN]
# Not an operator role: the lending app's API user, which may only submit and read appeals.
INTEGRATION = "integration"

# What each role may do beyond reading (accounts.Case permissions). Auditors only read.
GRANTS = {
    ANALYST: ["decide_case"],
    SENIOR_REVIEWER: ["decide_case", "approve_decision", "assign_case", "reveal_pii"],
    RISK_MANAGER: ["decide_case", "approve_decision", "assign_case", "reveal_pii"],
    AUDITOR: [],
    ADMIN: ["decide_case", "approve_decision", "assign_case", "reveal_pii"],
    INTEGRATION: ["submit_appeal"],
}


def ensure_roles() -> None:
    """Create the role groups with their permissions if missing (migrations do it; a flushed test DB needs it)."""
    from django.contrib.auth.models import Group, Permission

    for role, codenames in GRANTS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label__in=["accounts", "appeals"], codename__in=codenames)
        )


def load_roles_and_permissions(user) -> set[str]:  # type: ignore[no-untyped-def]
    """The user's role names, fetching their permissions in the same query.

    Django's ModelBackend would spend a query on the groups and two more on the permissions of every page; this
    fills the backend's per-request caches (`_user_perm_cache`, `_group_perm_cache`, `_perm_cache`) from one query,
    so `user.has_perm(...)` afterwards costs nothing and gives the same answers.
    """
    from django.db import connection

    cached = getattr(user, "_riskops_roles", None)
    if cached is not None:  # filled by riskops.authentication with the user, in the same query
        return set(cached)
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT 'group', g.name, ct.app_label, p.codename
            FROM auth_user_groups ug
            JOIN auth_group g ON g.id = ug.group_id
            LEFT JOIN auth_group_permissions gp ON gp.group_id = g.id
            LEFT JOIN auth_permission p ON p.id = gp.permission_id
            LEFT JOIN django_content_type ct ON ct.id = p.content_type_id
            WHERE ug.user_id = %s
            UNION ALL
            SELECT 'user', NULL, ct.app_label, p.codename
            FROM auth_user_user_permissions up
            JOIN auth_permission p ON p.id = up.permission_id
            JOIN django_content_type ct ON ct.id = p.content_type_id
            WHERE up.user_id = %s
            """,
            [user.pk, user.pk],
        )
        rows = cur.fetchall()
    roles = {name for source, name, _app, _code in rows if source == "group"}
    remember_roles_and_permissions(
        user,
        roles,
        {f"{app}.{code}" for source, _n, app, code in rows if source == "group" and code},
        {f"{app}.{code}" for source, _n, app, code in rows if source == "user"},
    )
    return roles


def remember_roles_and_permissions(user, roles: set[str], group_perms: set[str], user_perms: set[str]) -> None:  # type: ignore[no-untyped-def]
    """Fill ModelBackend's per-request permission caches, so `has_perm` answers without a query."""
    user._riskops_roles = frozenset(roles)
    if user.is_active and not user.is_superuser:
        user._group_perm_cache = group_perms
        user._user_perm_cache = user_perms
        user._perm_cache = group_perms | user_perms
