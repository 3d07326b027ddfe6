"""Logins, failed logins, logouts and lockouts are audited with the client's address; repeated failures lock a
username from an address; the demo passwords work only with DEBUG on; idle sessions end; passwords are validated."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client

from riskops.core.sessions import LAST_SEEN
from riskops.models import AuditEvent
from tests.factories import make_role_operator
from tests.helpers import messages_of

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-9"


def _login(client: Client, username: str, password: str):
    return client.post("/login/", {"username": username, "password": password})


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


@pytest.fixture
def analyst():
    return make_role_operator("analyst", "ana", password=PASSWORD)


def test_a_login_and_a_logout_are_audited_with_the_address(analyst):
    client = Client(REMOTE_ADDR="10.1.2.3")
    assert _events("auth.login") == []

    response = _login(client, "ana", PASSWORD)
    assert response.status_code == 302
    (login,) = _events("auth.login")
    assert (login.actor_kind, login.actor_user_id, login.object_type, login.object_id) == (
        "operator",
        analyst.pk,
        "user",
        analyst.pk,
    )
    assert (login.after, login.client_address) == ({"username": "ana"}, "10.1.2.3")

    client.post("/logout/")
    (logout,) = _events("auth.logout")
    assert (logout.actor_user_id, logout.client_address, logout.reason) == (analyst.pk, "10.1.2.3", "")


def test_a_failed_login_is_audited_with_the_username_typed_and_never_the_password(analyst):
    client = Client(REMOTE_ADDR="10.9.9.9")
    response = _login(client, "ana", "wrong-password-1")
    assert response.status_code == 200
    assert "Your username and password didn't match" in response.content.decode()
    _login(client, "nobody", "wrong-password-2")

    known, unknown = _events("auth.login_failed")
    assert (known.actor_kind, known.actor_label, known.object_id, known.after, known.client_address) == (
        "system",
        "login page",
        analyst.pk,
        {"username": "ana"},
        "10.9.9.9",
    )
    assert (unknown.object_id, (unknown.after or {})["username"]) == (0, "nobody")
    texts = " ".join(str(e.after) + e.reason for e in AuditEvent.objects.all())
    assert "wrong-password" not in texts
    assert _events("auth.login") == []


def test_repeated_failures_lock_the_username_from_that_address_only(analyst, settings):
    settings.AXES_FAILURE_LIMIT = 3
    attacker = Client(REMOTE_ADDR="203.0.113.7")
    codes = [_login(attacker, "ana", f"guess-{n}-xxxxxx").status_code for n in range(3)]
    assert codes == [200, 200, 429]

    # Locked: even the right password is refused, with the lockout page, and nothing logs in.
    response = _login(attacker, "ana", PASSWORD)
    assert response.status_code == 429
    body = response.content.decode()
    assert "Too many failed logins" in body
    assert "Try again in 15 minutes" in body
    assert "_auth_user_id" not in attacker.session
    assert _events("auth.login") == []
    locked = _events("auth.locked_out")
    assert [(e.after, e.client_address) for e in locked][:1] == [({"username": "ana"}, "203.0.113.7")]

    # The operator, from their own address, still logs in (a lockout is per username and address).
    response = _login(Client(REMOTE_ADDR="10.0.0.5"), "ana", PASSWORD)
    assert response.status_code == 302
    assert len(_events("auth.login")) == 1


def test_130_wrong_passwords_are_stopped_at_the_limit(analyst):
    """The issue's probe: 130 wrong passwords in a row locked nothing. With the default limit (10) the 11th
    failure is answered by the lockout page, and every attempt after it, without checking the password."""
    client = Client(REMOTE_ADDR="198.51.100.1")
    codes = [_login(client, "ana", f"wrong-{n}-password").status_code for n in range(130)]
    assert codes[:9] == [200] * 9
    assert set(codes[9:]) == {429}
    assert len(_events("auth.login_failed")) >= 10


def test_the_demo_passwords_are_refused_with_debug_off(settings):
    make_role_operator("analyst", "analyst", password="analyst-demo")
    settings.DEBUG = False
    response = _login(Client(), "analyst", "analyst-demo")
    assert response.status_code == 200
    assert _events("auth.login") == []
    assert [(e.after or {})["username"] for e in _events("auth.login_failed")] == ["analyst"]

    settings.DEBUG = True
    assert _login(Client(), "analyst", "analyst-demo").status_code == 302


def test_an_idle_session_ends_and_the_logout_is_audited(analyst, settings):
    client = Client(REMOTE_ADDR="10.1.1.1")
    _login(client, "ana", PASSWORD)
    assert client.get("/queue/").status_code == 200
    seen = client.session[LAST_SEEN]

    # A request within the minute does not write the session again.
    client.get("/queue/")
    assert client.session[LAST_SEEN] == seen

    session = client.session
    session[LAST_SEEN] = int(time.time()) - settings.SESSION_IDLE_MINUTES * 60 - 5
    session.save()
    response = client.get("/queue/?status=open", follow=True)
    assert response.redirect_chain[0] == ("/login/?next=/queue/%3Fstatus%3Dopen", 302)
    assert messages_of(response) == ["Your session ended after 30 minutes without activity; please log in again."]
    (logout,) = _events("auth.logout")
    assert (logout.actor_user_id, logout.reason) == (analyst.pk, "idle")
    assert client.get("/queue/").status_code == 302  # still logged out


def test_sessions_last_a_working_day_at_most(settings):
    assert settings.SESSION_COOKIE_AGE == 12 * 3600


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short-pw", "This password is too short. It must contain at least 12 characters."),
        ("123456789012345", "This password is entirely numeric."),
        ("1qaz2wsx3edc", "This password is too common."),
    ],
)
def test_weak_passwords_are_refused(password, message):
    with pytest.raises(ValidationError) as refused:
        validate_password(password)
    assert message in refused.value.messages


def test_behind_a_declared_proxy_the_address_is_the_one_the_proxy_saw(analyst, settings):
    settings.PROXY_COUNT = 1
    client = Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.9")
    _login(client, "ana", PASSWORD)
    assert _events("auth.login")[0].client_address == "198.51.100.9"  # not the client's own claim (1.2.3.4)
    settings.PROXY_COUNT = 0
    _login(Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4"), "ana", PASSWORD)
    assert _events("auth.login")[1].client_address == "10.0.0.1"  # no proxy declared: the header is ignored
