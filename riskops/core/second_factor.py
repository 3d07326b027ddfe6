"""A second factor for operators: a time-based one-time password (TOTP, django-otp) from an authenticator app.

Optional for every operator (enrolled from the page behind their name); required for the roles in
SECOND_FACTOR_ROLES (e.g. `admin`: administrators and Django superusers), who are sent to enrol at their next login.
After the password, an operator with a device gives a code before any page; until then only the code page, the
enrolment page, the language switch and the logout answer. Enrolling, a wrong code and a verified code are audit
events. What the middleware needs is kept in the session at the login (`STATE`), so a page costs no query for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from riskops.core.audit import Actor, Change, audit_write
from riskops.core.auth import user_roles
from riskops.core.errors import NotAllowed
from riskops.core.http import client_address

STATE = "riskops_2fa"  # in the session: "verify" (give a code), "enrol" (must enrol), "" (nothing to do)
VERIFY, ENROL = "verify", "enrol"
ENROLLED = "auth.second_factor_enrolled"
REMOVED = "auth.second_factor_removed"
VERIFIED = "auth.second_factor_verified"
FAILED = "auth.second_factor_failed"
DEVICE_NAME = "authenticator"
OPEN_PATHS = ("/login/", "/logout/", "/i18n/", "/static/", "/favicon.ico", "/healthz")


def required_for(user: Any) -> bool:
    """Whether the user's roles make a second factor compulsory (SECOND_FACTOR_ROLES; superusers count as admin)."""
    roles = set(user_roles(user)) | ({"admin"} if user.is_superuser else set())
    return bool(roles & set(settings.SECOND_FACTOR_ROLES))


def confirmed_device(user: Any) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


@receiver(user_logged_in, dispatch_uid="riskops.second_factor_state")
def _state_at_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is None or not hasattr(request, "session"):
        return
    if confirmed_device(user) is not None:
        request.session[STATE] = VERIFY
    else:
        request.session[STATE] = ENROL if required_for(user) else ""


def _audit(request: HttpRequest, action: str, device_id: int) -> None:
    user: Any = request.user  # logged in: the views are login_required
    audit_write(
        actor=Actor.operator(user, client_address(request)),
        at=timezone.now(),
        changes=[Change(action, "user", int(user.pk), None, after={"device": device_id})],
    )


def enrolment_device(user: Any) -> TOTPDevice:
    """The unconfirmed device an enrolment shows (made once, shown again on a reload until confirmed)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("id").first()
    return device or TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)


def enrol_confirm(request: HttpRequest, token: str) -> bool:
    """Confirm the enrolment with a first code: the device becomes the user's, the session is verified."""
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(user=request.user, confirmed=False).first()
        if device is None or not device.verify_token(token):
            if device is not None:
                _audit(request, FAILED, device.pk)
            return False
        TOTPDevice.objects.filter(user=request.user).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        _audit(request, ENROLLED, device.pk)
    otp_login(request, device)
    request.session[STATE] = ""
    return True


def verify(request: HttpRequest, token: str) -> bool:
    """Check a code after the password; the session is verified when it matches."""
    device = confirmed_device(request.user)
    if device is None:
        return False
    if not device.verify_token(token):
        _audit(request, FAILED, device.pk)
        return False
    _audit(request, VERIFIED, device.pk)
    otp_login(request, device)
    request.session[STATE] = ""
    return True


def devices_remove(*, device_ids: list[int], actor: Actor) -> int:
    """An administrator removes operators' devices (a lost phone): each operator enrols again at the next login (or
    may log in with the password alone, if their role does not require a second factor). Audited per device."""
    from riskops.core.roles import ADMIN

    if actor.user is None or not (actor.user.is_superuser or ADMIN in user_roles(actor.user)):
        raise NotAllowed(_("Only an administrator can remove a second factor"))
    with transaction.atomic():
        devices = list(TOTPDevice.objects.select_for_update().filter(pk__in=device_ids).order_by("pk"))
        TOTPDevice.objects.filter(pk__in=[d.pk for d in devices]).delete()
        audit_write(
            actor=actor,
            at=timezone.now(),
            changes=[Change(REMOVED, "user", d.user_id, None, {"device": d.pk}, None) for d in devices],
        )
    return len(devices)


class SecondFactorMiddleware:
    """Sends an operator who still owes a code (or an enrolment) there, from any page but the open ones."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        state = request.session.get(STATE, "") if request.user.is_authenticated else ""
        if state and not request.path.startswith(OPEN_PATHS):
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": _("Give your second-factor code on the console first.")}, status=403)
            target = reverse("second_factor" if state == VERIFY else "second_factor_setup")
            return redirect(f"{target}?{urlencode({'next': request.get_full_path()})}")
        return self.get_response(request)
