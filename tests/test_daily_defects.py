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


# --- 4. "Next case" honours the queue's current filter


def test_next_case_claims_within_the_current_filter_and_says_when_it_has_none_left(analyst):
    from accounts.models import Case
    from tests.factories import flag

    abnormal = flag(make_line(limit="90000.00", outstanding="80000.00"), "ABNORMAL_USE")  # first in the whole queue
    overdue = flag(make_line(limit="20000.00", outstanding="1000.00"), "OVERDUE")
    assert abnormal is not None and overdue is not None
    client = logged_in(analyst)

    response = client.post("/queue/next/", {"query": "family=OVERDUE"})

    assert response["Location"] == f"/cases/{overdue.pk}/"
    assert Case.objects.get(pk=overdue.pk).assignee_id == analyst.pk
    assert Case.objects.get(pk=abnormal.pk).assignee_id is None
    again = client.post("/queue/next/", {"query": "family=OVERDUE"}, headers=EN, follow=True)
    assert again.redirect_chain[-1][0] == "/queue/?family=OVERDUE"
    assert "No unclaimed case is left in this filter." in again.content.decode()
    assert Case.objects.get(pk=abnormal.pk).assignee_id is None


# --- 5. a double-clicked "Add note" adds one note


def test_a_note_form_sent_twice_adds_one_note_and_a_new_form_adds_another(analyst):
    from accounts.models import Note
    from riskops.models import AuditEvent
    from tests.factories import flag

    case = flag(make_line(), "OVERDUE")
    assert case is not None
    client = logged_in(analyst)
    form = page(client.get(f"/cases/{case.pk}/", headers=EN))
    token = re.search(r'name="token" value="([0-9a-f]{32})" id="id_token"', form)
    assert token is not None

    for _click in range(2):
        response = client.post(f"/cases/{case.pk}/notes/", {"text": "Called the borrower", "token": token.group(1)})
        assert response.status_code == 302
    assert Note.objects.filter(case=case).count() == 1
    assert AuditEvent.objects.filter(action="note.add").count() == 1

    fresh = re.search(r'name="token" value="([0-9a-f]{32})" id="id_token"', page(client.get(f"/cases/{case.pk}/")))
    assert fresh is not None and fresh.group(1) != token.group(1)
    client.post(f"/cases/{case.pk}/notes/", {"text": "Second call", "token": fresh.group(1)})
    assert Note.objects.filter(case=case).count() == 2


# --- 3. a cut line is not described as frozen


def test_a_cut_line_is_described_as_cut_and_offers_no_frozen_only_decision(analyst):
    from tests.factories import flag

    cut = flag(make_line(), "PROFILE_STALE")
    frozen = flag(make_line(), "OVERDUE")
    assert cut is not None and frozen is not None
    client = logged_in(analyst)

    body = page(client.get(f"/cases/{cut.pk}/", headers=EN))
    assert "Why the available amount was cut" in body and "Why frozen" not in body
    assert 'value="keep_frozen"' not in body and 'value="unfreeze"' not in body
    refused = client.post(f"/cases/{cut.pk}/decide/", {"kind": "keep_frozen", "reason_code": "evidence_confirmed",
                                                         "version": 1, "token": "t" * 32}, headers=EN)  # fmt: skip
    assert refused.status_code == 400
    assert "Select a valid choice. keep_frozen is not one of the available choices." in page(refused)

    frozen_body = page(client.get(f"/cases/{frozen.pk}/", headers=EN))
    assert "Why frozen" in frozen_body and 'value="keep_frozen"' in frozen_body
    zh = page(client.get(f"/cases/{cut.pk}/", headers=ZH))
    assert "可用额度被下调的原因" in zh


# --- 12. the "Next case" key hint is readable, "开始" stays on one line


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_next_case_key_hint_is_readable_and_buttons_do_not_wrap(browser, live_server):
    from tests.factories import default_ruleset, flag
    from tests.helpers import browser_login, browser_operator, need_chromium

    need_chromium()
    default_ruleset()
    case = flag(make_line(), "OVERDUE")
    assert case is not None
    browser_operator("ana", "analyst")
    tab = browser_login(browser, live_server, "ana")

    kbd = tab.evaluate(
        "() => { const k = document.querySelector('#next-case kbd'); const s = getComputedStyle(k);"
        " const b = getComputedStyle(document.querySelector('#next-case'));"
        " return [s.color, s.backgroundColor, b.backgroundColor]; }"
    )
    assert kbd[0] != kbd[1] and kbd[1] in ("rgba(0, 0, 0, 0)", "transparent")  # the key shows on the button
    tab.goto(f"{live_server.url}/cases/{case.pk}/")
    tab.click(".lang button[value=zh-hans]")
    tab.wait_for_selector("html[lang=zh-hans]")
    height = tab.evaluate("() => document.querySelector('#job-start').getBoundingClientRect().height")
    line = tab.evaluate("() => parseFloat(getComputedStyle(document.querySelector('#job-start')).lineHeight) || 24")
    assert height < 2 * line, (height, line)  # "开始" on one line
