"""Personal data never reaches the logs: a borrower's canary phone number, national id and name go through the
flows that log (an account sent by the events API with a bad item beside it, a freeze and its text message through
the console sender, an appeal by the API, a failed login typed with the phone as username, a reveal), with every
logger at DEBUG; none of the three values appears in any log record."""

from __future__ import annotations

import logging

import pytest
from django.test import Client

from accounts.models import CreditLine
from accounts.tasks import notifications_send_pending
from tests.factories import default_ruleset, flag, make_role_operator
from tests.helpers import logged_in, post_api, token_client

pytestmark = pytest.mark.django_db

PHONE = "13987654321"
NATIONAL_ID = "110101199003076632"
NAME = "甄隐士"
CANARIES = (PHONE, NATIONAL_ID, NAME, PHONE[-8:], NATIONAL_ID[-8:])


def test_no_personal_data_reaches_the_logs(caplog, settings):
    settings.NOTIFICATION_SENDER = "accounts.notifications.ConsoleSender"
    caplog.set_level(logging.DEBUG)
    default_ruleset()
    feed = make_role_operator("risk_manager", "feed")
    item = {"kind": "account", "account": "LA-CANARY", "occurred_at": "2026-01-05T10:00:00+08:00", "limit": "20000.00"}
    item |= {"name": NAME, "phone": PHONE, "national_id": NATIONAL_ID, "employer": "杭州云栖科技有限公司"}
    bad = {"kind": "account", "account": "LA-BAD", "occurred_at": "not a time", "phone": PHONE, "name": NAME}
    response = token_client(feed).post("/api/v1/events/", {"mode": "partial", "items": [item, bad]}, format="json")
    assert response.status_code == 207, response.content

    line = CreditLine.objects.get(account_no="LA-CANARY")
    case = flag(line, "OVERDUE", "MULTI_HEAD")
    assert notifications_send_pending() >= 1

    app = make_role_operator("risk_manager", "app")
    from django.contrib.auth.models import Group

    app.groups.add(Group.objects.get(name="integration"))
    assert post_api(token_client(app), line.account_no).status_code == 201

    Client().post("/login/", {"username": PHONE, "password": NATIONAL_ID})
    senior = logged_in(make_role_operator("senior_reviewer", "sen"))
    senior.post(
        f"/cases/{case.pk}/reveal/", {"targets": ["phone", "national_id"], "reason": "calling the borrower back"}
    )

    assert len(caplog.records) > 5  # the flows did log
    text = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    sms = [r.getMessage() for r in caplog.records if r.name == "accounts.notifications"]
    assert any(m.startswith(f"SMS to {PHONE[:3]}****{PHONE[-4:]}") for m in sms), sms  # the text went out, masked
    assert [c for c in CANARIES if c in text] == []
