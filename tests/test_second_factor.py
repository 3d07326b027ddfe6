"""The second factor: optional for operators, required for the roles in SECOND_FACTOR_ROLES; enrolment with a first
code, a code after each password, wrong codes refused and throttled, every step audited."""

from __future__ import annotations

import pytest
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from riskops.models import AuditEvent
from tests.factories import make_role_operator

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-9"
EN = {"Accept-Language": "en"}


def _code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def _logged_in_by_password(username: str) -> Client:
    client = Client(headers=EN)
    assert client.post("/login/", {"username": username, "password": PASSWORD}).status_code == 302
    return client


def _actions() -> list[str]:
    return list(
        AuditEvent.objects.filter(action__startswith="auth.second").order_by("id").values_list("action", flat=True)
    )


def test_without_a_device_or_a_requirement_the_password_is_enough():
    make_role_operator("analyst", "ana", password=PASSWORD)
    client = _logged_in_by_password("ana")
    assert client.get("/queue/").status_code == 200


def test_a_required_role_enrols_at_its_next_login(settings):
    settings.SECOND_FACTOR_ROLES = ["admin"]
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    admin = make_role_operator("admin", "adm", password=PASSWORD)
    client = _logged_in_by_password("adm")

    response = client.get("/queue/?status=open")
    assert (response.status_code, response["Location"]) == (302, "/login/code/setup/?next=%2Fqueue%2F%3Fstatus%3Dopen")
    assert client.get("/admin/").status_code == 302
    api = client.get("/api/v1/jobs/1/")
    assert (api.status_code, api.json()) == (403, {"detail": "Give your second-factor code on the console first."})

    page = client.get("/login/code/setup/?next=/queue/").content.decode()
    assert "Your role requires a one-time code at each login." in page
    assert "<svg" in page  # the QR code, drawn inline
    device = TOTPDevice.objects.get(user=admin, confirmed=False)

    wrong = client.post("/login/code/setup/", {"token": "000000", "next": "/queue/"})
    assert "That code is not right, or has expired" in wrong.content.decode()
    assert not TOTPDevice.objects.filter(user=admin, confirmed=True).exists()

    right = client.post("/login/code/setup/", {"token": _code(device), "next": "/queue/"})
    assert (right.status_code, right["Location"]) == (302, "/queue/")
    assert client.get("/queue/").status_code == 200
    assert TOTPDevice.objects.get(user=admin).confirmed
    assert _actions() == ["auth.second_factor_failed", "auth.second_factor_enrolled"]


def test_an_operator_with_a_device_gives_a_code_after_the_password(settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    analyst = make_role_operator("analyst", "ana", password=PASSWORD)
    device = TOTPDevice.objects.create(user=analyst, name="authenticator", confirmed=True)
    client = _logged_in_by_password("ana")

    response = client.get("/cases/1/")
    assert (response.status_code, response["Location"]) == (302, "/login/code/?next=%2Fcases%2F1%2F")
    assert client.get("/login/code/setup/").status_code == 302  # no second enrolment before the code

    refused = client.post("/login/code/", {"token": "123456", "next": "/queue/"})
    assert "That code is not right, or has expired" in refused.content.decode()
    assert client.get("/queue/").status_code == 302

    accepted = client.post("/login/code/", {"token": _code(device), "next": "https://evil.example/"})
    assert (accepted.status_code, accepted["Location"]) == (302, "/")  # never sent off the site
    assert client.get("/queue/").status_code == 200
    assert _actions() == ["auth.second_factor_failed", "auth.second_factor_verified"]


def test_wrong_codes_are_throttled():
    analyst = make_role_operator("analyst", "ana", password=PASSWORD)
    device = TOTPDevice.objects.create(user=analyst, name="authenticator", confirmed=True)
    client = _logged_in_by_password("ana")
    client.post("/login/code/", {"token": "111111"})
    # Right away, even the right code waits out the delay a wrong one earned.
    client.post("/login/code/", {"token": _code(device)})
    assert client.get("/queue/").status_code == 302


def test_an_unknown_role_in_the_setting_stops_start_up():
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.helpers import current_database_url

    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "DATABASE_URL": current_database_url(), "SECOND_FACTOR_ROLES": "admin,boss"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "SECOND_FACTOR_ROLES names unknown roles ['boss']" in result.stderr


def test_an_administrator_removes_a_lost_device_from_the_admin_and_it_is_audited():
    analyst = make_role_operator("analyst", "ana", password=PASSWORD)
    device = TOTPDevice.objects.create(user=analyst, name="authenticator", confirmed=True)
    admin_user = make_role_operator("admin", "adm", password=PASSWORD)
    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    client = Client(headers=EN)
    client.force_login(admin_user)
    url = "/admin/otp_totp/totpdevice/"
    page = client.get(url).content.decode()
    assert "authenticator" in page and device.key not in page  # listed, the key never shown
    # django-otp's QR view (a 500 for a missing device) is not there: the admin's own "no such object" answers.
    assert client.get(f"{url}{device.pk}/config/", follow=True).status_code == 200
    response = client.post(url, {"action": "remove", "_selected_action": [str(device.pk)]}, follow=True)
    assert response.status_code == 200
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()
    (removed,) = AuditEvent.objects.filter(action="auth.second_factor_removed")
    assert (removed.actor_user_id, removed.object_id, removed.before) == (
        admin_user.pk,
        analyst.pk,
        {"device": device.pk},
    )
    # The analyst logs in with the password alone again (no role of theirs requires a second factor).
    assert _logged_in_by_password("ana").get("/queue/").status_code == 200
