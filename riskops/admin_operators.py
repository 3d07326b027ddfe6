"""The admin panel's operators, roles and API tokens, in place of Django's and DRF's own admins.

Every change goes through `riskops.core.operators` (audited); roles are read-only here (they are code:
`riskops.core.roles.GRANTS`, docs/ROLES.md); operators get roles, never permissions of their own; only a superuser
makes a superuser; users are deactivated, never deleted; a token's key is shown once, when it is issued.
"""

from __future__ import annotations

import contextlib
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.exceptions import NotRegistered
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from rest_framework.authtoken.admin import TokenChangeList
from rest_framework.authtoken.models import TokenProxy

from riskops.admin_base import ProjectAdmin, service_action
from riskops.core.auth import may_administer
from riskops.core.errors import DomainError
from riskops.core.http import actor
from riskops.core.operators import (
    key_hint,
    operator_password_set,
    operator_record,
    operator_snapshot,
    token_issue,
    tokens_revoke,
)
from riskops.core.roles import ROLE_LABELS
from riskops.models import ApiToken

for _model in (User, Group, TokenProxy):  # Django's and DRF's own
    with contextlib.suppress(NotRegistered):
        admin.site.unregister(_model)

_BEFORE = "_riskops_operator_before"  # the request's attribute holding the user as it was before the change


class AdministratorsOnly:
    """What every admin of this module lets an administrator do (the site lets only them in)."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return may_administer(request.user)

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return may_administer(request.user)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return may_administer(request.user)

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return may_administer(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class RoleFilter(admin.SimpleListFilter):
    """Operators by role, each named as a reader names it (Django's own filter lists the groups' code words)."""

    title = _("role")
    parameter_name = "role"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(ROLE_LABELS.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(groups__name=self.value()) if self.value() else queryset


@admin.register(User)
class OperatorAdmin(AdministratorsOnly, UserAdmin):  # type: ignore[type-arg]
    """Operators: their names, roles and whether they may log in; each save is one audit event of what changed."""

    list_display = ["username", "first_name", "last_name", "is_active", "is_superuser", "roles", "last_login"]
    list_filter = ["is_active", "is_superuser", RoleFilter]
    filter_horizontal = ["groups"]
    fieldsets = [
        (None, {"fields": ["username", "password"]}),
        (_("Personal info"), {"fields": ["first_name", "last_name", "email"]}),
        (_("Roles and access"), {"fields": ["groups", "is_active", "is_superuser"]}),
        (_("Important dates"), {"fields": ["last_login", "date_joined"]}),
    ]
    readonly_fields = ["last_login", "date_joined"]
    actions = ["revoke_tokens"]  # and no bulk deletion: users are deactivated (their audit events keep naming them)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description=_("roles"))
    def roles(self, user: User) -> str:
        return ", ".join(sorted(str(ROLE_LABELS.get(g.name, g.name)) for g in user.groups.all()))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields.append("is_superuser")  # only a superuser makes (or unmakes) one
        return fields

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        setattr(request, _BEFORE, operator_snapshot(obj) if change else None)
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)  # the roles (groups) are saved here
        operator_record(actor=actor(request), user=form.instance, before=getattr(request, _BEFORE, None))

    @admin.action(description=_("Revoke their API tokens"))
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        service_action(request, queryset, lambda who, ids: tokens_revoke(actor=who, user_ids=ids))

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:  # the password was set
            operator_password_set(actor=actor(request), user=self.get_object(request, id))
        return response


@admin.register(Group)
class RoleAdmin(AdministratorsOnly, GroupAdmin):
    """The roles and their permissions, as the code grants them (docs/ROLES.md): read here, never edited."""

    list_display = ["name"]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(AdministratorsOnly, ProjectAdmin):
    """Integrations' API tokens: issued (the key shown once) through the service, audited; revoked from the
    operators' list (an action on users: a token's own primary key is its secret, so rows here are picked by user).
    """

    list_display = ["user", "key_start", "created"]
    list_select_related = ["user"]
    fields = ["user"]
    ordering = ("user",)
    sortable_by = ("user",)
    search_fields = ["=user"]
    search_help_text = _("A user id, or the beginning of a user name.")
    actions = None

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Any], search_term: str) -> Any:
        found, distinct = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if term:
            found = found | queryset.filter(user__username__startswith=term)
        return found, distinct

    @admin.display(description=_("key"))
    def key_start(self, token: TokenProxy) -> str:
        return key_hint(token.key)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> Any:
        return TokenChangeList  # rows link by user id: a key never appears in a URL

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        if not object_id.isdigit():
            return None
        return self.get_queryset(request).filter(user_id=int(object_id)).first()

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # a token is issued or revoked, never edited

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        try:
            token = token_issue(actor=actor(request), user=obj.user)
        except DomainError as exc:
            messages.error(request, str(exc))
            return
        obj.key, obj.created = token.key, token.created
        messages.warning(
            request,
            gettext("The API token of %(user)s, shown only now: %(key)s")
            % {"user": obj.user.get_username(), "key": token.key},
        )

    def response_add(self, request: HttpRequest, obj: Any, post_url_continue: str | None = None) -> HttpResponse:
        return redirect("admin:riskops_apitoken_changelist")

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        return None  # audited by the service; Django's log would hold the key in its text
