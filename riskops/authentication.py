"""API token authentication that loads the user, their roles and their permissions in one query.

DRF's TokenAuthentication reads the token and its user (one query), and the role check that every API view makes
then reads the groups and permissions (another). The lending app's appeal intake is the busiest API, so both come
from one statement here; `riskops.roles.load_roles_and_permissions` and `user.has_perm` then read what it cached.
Same answers as DRF's class: an unknown key or an inactive user is refused with DRF's own messages.
"""

from __future__ import annotations

import functools
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from riskops.prepared import execute_prepared
from riskops.roles import remember_roles_and_permissions


@functools.cache
def _user_query() -> tuple[str, list[str]]:
    User = get_user_model()
    concrete = User._meta.concrete_fields
    fields = [f.attname for f in concrete]
    columns = ", ".join(f"u.{connection.ops.quote_name(str(f.column))}" for f in concrete)
    return (
        f"""
        SELECT {columns},
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
        FROM {Token._meta.db_table} t JOIN {User._meta.db_table} u ON u.id = t.user_id
        WHERE t.key = %s
        """,
        fields,
    )


class TokenWithRolesAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        sql, fields = _user_query()
        with connection.cursor() as cur:
            execute_prepared(cur, "riskops_token_user", sql, [key])
            row = cur.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        n = len(fields)
        user = get_user_model().from_db(connection.alias, fields, row[:n])
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        roles, group_perms, user_perms = row[n:]
        remember_roles_and_permissions(user, set(roles), set(group_perms), set(user_perms))
        return user, Token(key=key, user=user)
