"""Defects a new analyst hit in the first hour (issue 13), each pinned by the test that failed before its fix."""

from __future__ import annotations

import re

import pytest

from tests.factories import NOW, drawdown, make_line
from tests.helpers import logged_in, page

pytestmark = pytest.mark.django_db

ZH = {"accept-language": "zh-hans"}
EN = {"accept-language": "en"}


# --- 10. the event page: money with ¥ and separators, times in the operator's zone with the zone's name


def test_the_event_page_shows_money_and_times_as_the_rest_of_the_console_does(analyst):
    line = make_line()
    event = drawdown(line, NOW, "125600.00")

    body = page(logged_in(analyst).get(f"/events/drawdown/{event.pk}/", headers=EN))

    assert "¥125,600.00" in body and "125600.00" not in body
    assert "2026-06-15 12:00:00 CST" in body  # 04:00 UTC, in Asia/Shanghai
    zh = page(logged_in(analyst).get(f"/events/drawdown/{event.pk}/", headers=ZH))
    assert "上游编号" in zh and "发生时间" in zh
    assert "Upstream id" not in zh and "Occurred at" not in zh


# --- 12. a favicon on every page


def test_every_page_links_a_favicon_that_is_served(analyst, client):
    body = logged_in(analyst).get("/queue/").content.decode()

    assert '<link rel="icon" href="/static/riskops/favicon.svg" type="image/svg+xml">' in body
    assert client.get("/favicon.ico").status_code in (200, 301, 302)


# --- 6. actions only for the roles that can take them


def test_the_auditor_sees_no_release_and_the_assign_list_holds_only_those_who_decide(
    auditor, senior, analyst, integration
):
    from tests.factories import flag

    flag(make_line(), "OVERDUE")
    audit_page = logged_in(auditor).get("/queue/", headers=EN).content.decode()
    assert 'value="release"' not in audit_page

    senior_page = logged_in(senior).get("/queue/", headers=EN).content.decode()
    assert 'value="release"' in senior_page
    listed = set(
        re.findall(
            r'<option value="\d+">([^<]+)</option>',
            senior_page.split('aria-label="Assign to"', 1)[1].split("</select>", 1)[0],
        )
    )
    assert listed == {senior.username, analyst.username}  # not the auditor, not the lending app's API user


# --- 7. search by an account number's beginning, any upstream format


def test_the_queue_finds_cases_by_an_account_numbers_beginning_in_any_format(analyst):
    from accounts.models import CreditLine
    from tests.factories import flag

    lines = {}
    for ref in ["JB0000000123", "JB0000000456", "bureau:77-a", "bureau:78-b"]:
        line = make_line()
        CreditLine.objects.filter(pk=line.pk).update(account_no=ref)
        flag(line, "OVERDUE")
        lines[ref] = line

    def found(q: str) -> set[str]:
        body = logged_in(analyst).get("/queue/", {"q": q}, headers=EN).content.decode()
        assert "Search by an account number" not in body
        return {ref for ref in lines if ref in body}

    assert found("JB0000000123") == {"JB0000000123"}  # exact
    assert found("JB00000004") == {"JB0000000456"}  # the beginning of one
    assert found("jb000000") == {"JB0000000123", "JB0000000456"}  # typed in lower case
    assert found("bureau:7") == {"bureau:77-a", "bureau:78-b"}  # an upstream's own format
    assert found("bureau:78") == {"bureau:78-b"}
