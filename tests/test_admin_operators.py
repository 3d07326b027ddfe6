"""Operators, roles and API tokens in the admin panel: managed by administrators through the services, every change
audited (never a password or a whole key), roles read-only, no superuser made by a non-superuser, nobody deleted."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from rest_framework.authtoken.models import Token

from riskops.core.audit import Actor
from riskops.core.errors import NotAllowed
from riskops.core.operators import token_issue, tokens_revoke
from riskops.models import AuditEvent
from tests.factories import make_role_operator
from tests.helpers import logged_in, messages_of, page

pytestmark = pytest.mark.django_db

USERS = "/admin/auth/user/"
TOKENS = "/admin/riskops/apitoken/"


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def change_form(user: User, **changes: object) -> dict[str, object]:
    """The user change form as the admin posts it, with `changes` applied."""
    data: dict[str, object] = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "groups": [g.pk for g in user.groups.all()],
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
    }
    if user.is_active:
        data["is_active"] = "on"
    if user.is_superuser:
        data["is_superuser"] = "on"
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_an_administrator_creates_an_operator_and_gives_roles_each_change_one_audit_event(
    as_admin: Client, administrator: User
) -> None:
    response = as_admin.post(
        f"{USERS}add/",
        {"username": "new-analyst", "password1": "a-long-pass-phrase-2026", "password2": "a-long-pass-phrase-2026",
         "usable_password": "true"},
    )  # fmt: skip
    assert response.status_code == 302, page(response)[:2000]
    user = User.objects.get(username="new-analyst")
    [created] = events("operator.create")
    assert (created.object_id, created.actor_user_id) == (user.pk, administrator.pk)
    assert created.after is not None and (created.after["username"], created.after["roles"]) == ("new-analyst", [])
    assert "password" not in str(created.after) and user.password not in str(created.after)

    analyst, senior = Group.objects.get(name="analyst"), Group.objects.get(name="senior_reviewer")
    response = as_admin.post(f"{USERS}{user.pk}/change/", change_form(user, groups=[analyst.pk, senior.pk]))
    assert response.status_code == 302
    assert sorted(user.groups.values_list("name", flat=True)) == ["analyst", "senior_reviewer"]
    [changed] = events("operator.change")
    assert changed.before == {"roles": []} and changed.after == {"roles": ["analyst", "senior_reviewer"]}

    user.refresh_from_db()
    as_admin.post(f"{USERS}{user.pk}/change/", change_form(user, is_active=None))
    user.refresh_from_db()
    assert user.is_active is False
    assert [e.after for e in events("operator.change")] == [
        {"roles": ["analyst", "senior_reviewer"]},
        {"is_active": False},
    ]
    # Saving without a change writes nothing.
    as_admin.post(f"{USERS}{user.pk}/change/", change_form(user))
    assert len(events("operator.change")) == 2


def test_only_a_superuser_makes_a_superuser(as_admin: Client) -> None:
    target = make_role_operator("analyst", "ana")
    response = as_admin.post(f"{USERS}{target.pk}/change/", change_form(target, is_superuser="on"))
    assert response.status_code == 302
    target.refresh_from_db()
    assert target.is_superuser is False
    assert events("operator.change") == []

    root = User.objects.create_superuser("root", password="root-pass-phrase-2026")
    logged_in(root).post(f"{USERS}{target.pk}/change/", change_form(target, is_superuser="on"))
    target.refresh_from_db()
    assert target.is_superuser is True
    [changed] = events("operator.change")
    assert (changed.before, changed.after, changed.actor_user_id) == (
        {"is_superuser": False},
        {"is_superuser": True},
        root.pk,
    )


def test_operators_get_roles_never_permissions_of_their_own_and_are_never_deleted(as_admin: Client) -> None:
    target = make_role_operator("analyst", "ana")
    form = page(as_admin.get(f"{USERS}{target.pk}/change/"))
    assert 'name="groups"' in form and 'name="user_permissions"' not in form
    assert as_admin.get(f"{USERS}{target.pk}/delete/").status_code == 403
    actions = re.findall(r'<option value="([a-z_]+)"', page(as_admin.get(USERS)))
    assert actions == ["revoke_tokens"]  # no bulk deletion either
    assert User.objects.filter(pk=target.pk).exists()


def test_setting_a_password_is_audited_without_the_password(as_admin: Client, administrator: User) -> None:
    target = make_role_operator("analyst", "ana")
    response = as_admin.post(
        f"{USERS}{target.pk}/password/",
        {"password1": "another-pass-phrase-2026", "password2": "another-pass-phrase-2026", "usable_password": "true"},
    )
    assert response.status_code == 302
    target.refresh_from_db()
    assert target.check_password("another-pass-phrase-2026")
    [event] = events("operator.password_set")
    assert (event.object_id, event.actor_user_id, event.after) == (target.pk, administrator.pk, {"username": "ana"})
    # A refused password (too short) sets nothing and records nothing.
    as_admin.post(f"{USERS}{target.pk}/password/", {"password1": "short", "password2": "short"})
    assert len(events("operator.password_set")) == 1


def test_roles_are_read_only_in_the_admin(as_admin: Client) -> None:
    analyst = Group.objects.get(name="analyst")
    before = set(analyst.permissions.values_list("codename", flat=True))
    assert as_admin.get("/admin/auth/group/").status_code == 200
    assert as_admin.get("/admin/auth/group/add/").status_code == 403
    response = as_admin.post(f"/admin/auth/group/{analyst.pk}/change/", {"name": "analyst", "permissions": []})
    assert response.status_code == 403
    assert set(analyst.permissions.values_list("codename", flat=True)) == before
    assert as_admin.get(f"/admin/auth/group/{analyst.pk}/delete/").status_code == 403


def test_an_api_token_is_shown_once_listed_by_its_start_and_revoked_through_the_service(
    as_admin: Client, administrator: User
) -> None:
    feed = make_role_operator("integration", "feed")
    response = as_admin.post(f"{TOKENS}add/", {"user": feed.pk}, follow=True)
    token = Token.objects.get(user=feed)
    assert any(token.key in m for m in messages_of(response))  # shown once, now
    [issued] = events("token.issue")
    assert issued.after == {"username": "feed", "key": f"{token.key[:4]}…"}
    assert token.key not in str(issued.after)

    listing = page(as_admin.get(TOKENS))
    assert token.key not in listing and f"{token.key[:4]}…" in listing
    assert f"{TOKENS}{feed.pk}/change/" in listing  # rows link by user id, never by key
    assert as_admin.get(f"{TOKENS}{feed.pk}/change/").status_code == 200
    assert token.key not in page(as_admin.get(f"{TOKENS}{feed.pk}/change/"))

    response = as_admin.post(f"{TOKENS}add/", {"user": feed.pk}, follow=True)
    assert Token.objects.filter(user=feed).count() == 1
    assert re.search(r"already", page(response)), page(response)[:3000]
    assert len(events("token.issue")) == 1

    response = as_admin.post(USERS, {"action": "revoke_tokens", "_selected_action": [feed.pk]}, follow=True)
    assert not Token.objects.filter(user=feed).exists()
    assert messages_of(response) == ["1 of 1 changed"]
    [revoked] = events("token.revoke")
    assert (revoked.object_id, revoked.actor_user_id, revoked.before) == (
        feed.pk,
        administrator.pk,
        {"username": "feed", "key": f"{token.key[:4]}…"},
    )


def test_only_administrators_manage_operators_and_tokens() -> None:
    manager = make_role_operator("risk_manager", "mgr")
    feed = make_role_operator("integration", "feed")
    for url in (USERS, f"{USERS}{feed.pk}/change/", TOKENS, f"{TOKENS}add/", "/admin/auth/group/"):
        assert logged_in(manager).get(url).status_code == 403, url
    with pytest.raises(NotAllowed):
        token_issue(actor=Actor.operator(manager), user=feed)
    Token.objects.create(user=feed)
    with pytest.raises(NotAllowed):
        tokens_revoke(actor=Actor.operator(manager), user_ids=[feed.pk])
    assert Token.objects.filter(user=feed).exists()
    assert events("token.issue") == events("token.revoke") == []
