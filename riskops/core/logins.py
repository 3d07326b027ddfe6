"""Logins, failed logins, logouts and lockouts are audit events, with the client's address.

Django's auth signals call these receivers (riskops.apps connects them by importing this module); django-axes counts
the failures and locks a username from an address after LOGIN_FAILURE_LIMIT of them (settings.AXES_*), and its
`user_locked_out` signal is audited here too. Audit events have an object id: a failed login for a username that
does not exist is recorded against user id 0, with the username as typed (never the password) in `after`; the
address is the event's `client_address`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone

from riskops.core.audit import Actor, Change, audit_write
from riskops.core.http import client_address
from riskops.core.sessions import IDLE_REASON as IDLE_REASON

LOGIN = "auth.login"
LOGOUT = "auth.logout"
LOGIN_FAILED = "auth.login_failed"
LOCKED_OUT = "auth.locked_out"
# Who acts when nobody is logged in yet: the login page (translated in console_text._ACTORS).
LOGIN_PAGE = "login page"
USERNAME_MAX = 150  # Django's username field


def _write(*, actor: Actor, action: str, user_id: int, username: str, request: Any, reason: str = "") -> None:
    address = client_address(request) if request is not None else None
    audit_write(
        actor=replace(actor, address=address),
        at=timezone.now(),
        changes=[Change(action, "user", user_id, None, after={"username": username[:USERNAME_MAX]}, reason=reason)],
    )


@receiver(user_logged_in, dispatch_uid="riskops.audit_login")
def audit_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    _write(actor=Actor.operator(user), action=LOGIN, user_id=user.pk, username=user.get_username(), request=request)


@receiver(user_logged_out, dispatch_uid="riskops.audit_logout")
def audit_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is None:  # a logout without a session: nothing to record
        return
    reason = getattr(request, "logout_reason", "") if request is not None else ""
    _write(
        actor=Actor.operator(user),
        action=LOGOUT,
        user_id=user.pk,
        username=user.get_username(),
        request=request,
        reason=reason,
    )


def _known_user_id(username: str) -> int:
    User = get_user_model()
    pk = User.objects.filter(**{User.USERNAME_FIELD: username}).values_list("pk", flat=True).first()
    return int(pk or 0)


@receiver(user_login_failed, dispatch_uid="riskops.audit_login_failed")
def audit_login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    username = str(credentials.get("username") or "")[:USERNAME_MAX]
    _write(
        actor=Actor.system(LOGIN_PAGE),
        action=LOGIN_FAILED,
        user_id=_known_user_id(username),
        username=username,
        request=request,
    )


@receiver(user_locked_out, dispatch_uid="riskops.audit_locked_out")
def audit_locked_out(sender: Any, request: Any, username: str | None = None, **kwargs: Any) -> None:
    name = str(username or "")[:USERNAME_MAX]
    _write(
        actor=Actor.system(LOGIN_PAGE),
        action=LOCKED_OUT,
        user_id=_known_user_id(name),
        username=name,
        request=request,
    )


def lockout_response(request: Any, original_response: Any = None, credentials: Any = None) -> HttpResponse:
    """The page a locked-out login gets (AXES_LOCKOUT_CALLABLE): 429, with how long the lock lasts."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return render(request, "registration/locked.html", {"cooloff_minutes": minutes}, status=429)
