"""Who the user is and what their roles allow, in one query per request.

Django's ModelBackend spends a query on the user's groups and two more on their permissions; every page and API
call needs all three (the operator check, the role-dependent buttons). `RoleBackend` is a ModelBackend whose
permission methods answer from `user_access`: the roles, the group permissions and the user's own permissions,
read together once per request and kept on the user object. `TokenWithRolesAuthentication` reads them with the API
token and its user, so an API call spends one query on all of it. Same answers as Django's and DRF's classes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db import connection
from django.db.models import Model
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from riskops.core.roles import ADMIN

# The demo operators' passwords are their username and this (riskops create_demo_operators); they work only with
# DEBUG on: `RoleBackend.authenticate` refuses them otherwise, whoever set them.
DEMO_PASSWORD_SUFFIX = "-demo"  # noqa: S105 - not a password: the demo passwords' shape, refused when DEBUG is off

_ACCESS = "riskops_access"  # the attribute of the user object that holds its Access for this request

_GROUPS_AND_PERMISSIONS = """
    ARRAY(SELECT DISTINCT g.name FROM auth_user_groups ug JOIN auth_group g ON g.id = ug.group_id
          WHERE ug.user_id = u.id),
    ARRAY(SELECT DISTINCT ct.app_label || '.' || p.codename
          FROM auth_user_groups ug
          JOIN auth_group_permissions gp ON gp.group_id = ug.group_id
          JOIN auth_permission p ON p.id = gp.permission_id
          JOIN django_content_type ct ON ct.id = p.content_type_id
          WHERE ug.user_id = u.id),
    ARRAY(SELECT ct.app_label || '.' || p.codename
          FROM auth_user_user_permissions up
          JOIN auth_permission p ON p.id = up.permission_id
          JOIN django_content_type ct ON ct.id = p.content_type_id
          WHERE up.user_id = u.id)
"""


@dataclass(frozen=True)
class Access:
    roles: frozenset[str]
    group_perms: frozenset[str]
    user_perms: frozenset[str]


def user_access(user: Any) -> Access:
    """The user's roles and permissions, read once per user object (that is, per request)."""
    access = getattr(user, _ACCESS, None)
    if access is None:
        with connection.cursor() as cur:
            cur.execute(
                f"SELECT {_GROUPS_AND_PERMISSIONS} FROM {get_user_model()._meta.db_table} u WHERE u.id = %s",  # noqa: S608 - table names from the models, values bound
                [user.pk],
            )
            row = cur.fetchone()
        access = _access(*(row or ([], [], [])))
        setattr(user, _ACCESS, access)
    return access


def user_roles(user: Any) -> frozenset[str]:
    """The user's role names (`riskops.core.roles.ROLES`, or `integration`); none for an anonymous user."""
    if user is None or not user.is_authenticated:
        return frozenset()
    return user_access(user).roles


def may_administer(user: Any) -> bool:
    """Whether this user may use the admin panel and manage operators: an active superuser or holder of the admin
    role (`riskops.core.roles.ADMIN`)."""
    if user is None or not user.is_active or not user.is_authenticated:
        return False
    return bool(user.is_superuser or ADMIN in user_roles(user))


def user_granted(user: Any, perm: str) -> bool:
    """Whether an active user holds `perm` through a role or their own permissions, without a superuser's blanket
    pass: what only an integration is granted (submitting and reading appeals) stays the integration's."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    access = user_access(user)
    return perm in access.group_perms or perm in access.user_perms


def _access(roles: list[str], group_perms: list[str], user_perms: list[str]) -> Access:
    return Access(frozenset(roles), frozenset(group_perms), frozenset(user_perms))


class RoleBackend(ModelBackend):
    """ModelBackend (same login, same answers), with the permissions read by `user_access`; with DEBUG off, a demo
    password is refused (a failed login) whatever the user."""

    def authenticate(
        self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        if not settings.DEBUG and username and password == f"{username}{DEMO_PASSWORD_SUFFIX}":
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)

    def _answers_from_access(self, user_obj: Any, obj: Model | None) -> bool:
        return user_obj.is_active and not user_obj.is_anonymous and not user_obj.is_superuser and obj is None

    def get_user_permissions(self, user_obj: Any, obj: Model | None = None) -> set[str]:
        if self._answers_from_access(user_obj, obj):
            return set(user_access(user_obj).user_perms)
        return super().get_user_permissions(user_obj, obj)

    def get_group_permissions(self, user_obj: Any, obj: Model | None = None) -> set[str]:
        if self._answers_from_access(user_obj, obj):
            return set(user_access(user_obj).group_perms)
        return super().get_group_permissions(user_obj, obj)

    def get_all_permissions(self, user_obj: Any, obj: Model | None = None) -> set[str]:
        if self._answers_from_access(user_obj, obj):
            access = user_access(user_obj)
            return set(access.group_perms | access.user_perms)
        return super().get_all_permissions(user_obj, obj)


@functools.cache
def _token_query() -> tuple[str, list[str]]:
    User = get_user_model()
    concrete = User._meta.concrete_fields
    fields = [f.attname for f in concrete]
    columns = ", ".join(f"u.{connection.ops.quote_name(str(f.column))}" for f in concrete)
    return (
        f"SELECT {columns}, {_GROUPS_AND_PERMISSIONS} FROM {Token._meta.db_table} t"  # noqa: S608 - table names from the models, values bound
        f" JOIN {User._meta.db_table} u ON u.id = t.user_id WHERE t.key = %s",
        fields,
    )


class TokenWithRolesAuthentication(TokenAuthentication):
    """DRF's token check, with the user's roles and permissions read in the same query."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        sql, fields = _token_query()
        with connection.cursor() as cur:
            cur.execute(sql, [key])
            row = cur.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        n = len(fields)
        user = get_user_model().from_db(connection.alias, fields, row[:n])
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        setattr(user, _ACCESS, _access(*row[n:]))
        return user, Token(key=key, user=user)
