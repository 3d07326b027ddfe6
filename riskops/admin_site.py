"""The admin panel's site: administrators (the `admin` role) and Django superusers only, logged in through the
console's own login page.

Django's site lets in any `is_staff` user and has a login page of its own that asks for `is_staff`; here the role
decides (`riskops.core.roles`), so the panel and the console agree on who is an administrator, and there is one
login page (the console's, with its throttling and audit).

Auditors do not enter: the panel is a tool to manage the data, and they only read, through the audit page and the
console's read-only pages, where every reveal of personal data is permissioned and audited.
"""

from __future__ import annotations

from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _

from riskops.core.auth import may_administer


class RiskOpsAdminSite(admin.AdminSite):
    site_header = _("RiskOps administration")
    site_title = _("RiskOps administration")
    index_title = _("Data administration")

    def has_permission(self, request: HttpRequest) -> bool:
        return may_administer(request.user)

    def admin_view(self, view: Any, cacheable: bool = False) -> Any:
        inner = super().admin_view(view, cacheable)

        @wraps(view)
        def refuse_operators(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            # A logged-in operator without the role is refused here, not sent to a login page.
            if request.user.is_authenticated and not self.has_permission(request):
                raise PermissionDenied
            return inner(request, *args, **kwargs)

        return refuse_operators

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # A logged-in operator without the role is refused, not asked to log in again.
        if request.user.is_authenticated:
            raise PermissionDenied
        return redirect_to_login(request.GET.get("next") or request.get_full_path(), settings.LOGIN_URL)
