"""Defects a new analyst hit in the first hour (issue 13), each pinned by the test that failed before its fix."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

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


def _decide(client, case, kind: str, **extra: str):
    data = {"kind": kind, "reason_code": "evidence_confirmed", "version": case.version, "token": uuid.uuid4().hex}
    return client.post(f"/cases/{case.pk}/decide/", data | extra, headers=EN)


def test_a_cut_lines_case_offers_keep_the_cut_restore_it_and_ask_for_an_update(analyst):
    from tests.factories import flag

    case = flag(make_line(limit="20000.00", outstanding="5000.00"), "PROFILE_STALE")
    assert case is not None
    body = page(logged_in(analyst).get(f"/cases/{case.pk}/", headers=EN))

    offered = re.findall(r'<option value="(\w+)"', body.split('name="kind"', 1)[1].split("</select>", 1)[0])
    assert offered[:4] == ["keep_cut", "restore_available", "cut_limit", "request_update"]
    zh = page(logged_in(analyst).get(f"/cases/{case.pk}/", headers=ZH))
    assert "恢复被下调的额度" in zh and "维持下调" in zh and "请借款人更新资料" in zh


def test_restoring_a_cut_gives_the_available_amount_back_and_the_same_evidence_does_not_cut_again(analyst):
    from accounts.engine import evaluate_lines
    from accounts.models import LineChange, Notification, Signal
    from tests.factories import flag
    from tests.helpers import fresh

    case = flag(make_line(limit="20000.00", available="15000.00", outstanding="5000.00"), "PROFILE_STALE")
    assert case is not None
    line = fresh(case.line)
    assert line.available == Decimal("7500.00")  # the cut halved 15,000

    response = _decide(logged_in(analyst), case, "restore_available")

    assert response.status_code == 302
    line, case = fresh(line), fresh(case)
    assert (line.status, line.available, line.limit) == ("active", Decimal("15000.00"), Decimal("20000.00"))
    assert (case.status, case.outcome) == ("resolved", "available_restored")
    assert Signal.objects.get(line=line, code="PROFILE_STALE").status == "overturned"
    change = LineChange.objects.filter(line=line).latest("at")
    assert (change.kind, change.available_before, change.available_after) == (
        "restore_available",
        Decimal("7500.00"),
        Decimal("15000.00"),
    )
    message = Notification.objects.get(line=line, kind="limit_restored")
    assert "¥15,000.00" in message.body
    evaluate_lines([line.pk])
    assert fresh(line).available == Decimal("15000.00")


def test_keeping_the_cut_resolves_the_case_and_leaves_the_line_as_it_is(analyst):
    from tests.factories import flag
    from tests.helpers import fresh

    case = flag(make_line(), "PROFILE_STALE")
    assert case is not None
    before = fresh(case.line).available

    assert _decide(logged_in(analyst), case, "keep_cut").status_code == 302

    assert (fresh(case).status, fresh(case).outcome) == ("resolved", "kept_cut")
    assert fresh(case.line).available == before


def test_asking_for_a_profile_update_sends_the_request_and_keeps_the_case_open(analyst):
    from accounts.models import Notification
    from tests.factories import flag
    from tests.helpers import fresh

    case = flag(make_line(), "PROFILE_STALE")
    assert case is not None
    requests = Notification.objects.filter(line=case.line, kind="profile_update")
    before = requests.count()  # the engine's own, with the cut

    assert _decide(logged_in(analyst), case, "request_update").status_code == 302

    assert fresh(case).status != "resolved"
    assert requests.count() == before + 1


def test_a_large_restore_waits_for_a_second_reviewer_and_applies_on_approval(analyst, senior):
    from accounts import services
    from accounts.models import Decision
    from tests.factories import flag
    from tests.helpers import fresh, op

    case = flag(make_line(limit="60000.00", outstanding="0.00"), "PROFILE_STALE")
    assert case is not None

    _decide(logged_in(analyst), case, "restore_available")

    proposal = Decision.objects.get(case=case, kind="restore_available")
    assert (proposal.status, fresh(case).status) == ("proposed", "awaiting_approval")
    assert fresh(case.line).available == Decimal("30000.00")
    services.decision_review(decision_id=proposal.pk, actor=op(senior), approve=True)
    assert fresh(case.line).available == Decimal("60000.00")
    assert (fresh(case).status, fresh(case).outcome) == ("resolved", "available_restored")


def test_a_frozen_line_refuses_restore_and_keep_cut_with_the_services_message(analyst):
    from accounts import services
    from riskops.core.errors import DomainError
    from tests.factories import flag
    from tests.helpers import op

    case = flag(make_line(), "OVERDUE")
    assert case is not None
    for kind in ("restore_available", "keep_cut"):
        with pytest.raises(DomainError, match="The line's available amount is not cut; nothing to restore or keep"):
            services.case_decide(case_id=case.pk, actor=op(analyst), kind=kind, reason_code="evidence_confirmed",
                                 expected_version=None, idempotency_key=uuid.uuid4().hex)  # fmt: skip


# --- 1. the timeline: the operator's clock, the newest marker whole, the page's language


def _timeline(body: str) -> dict:
    import json

    found = re.search(r'<script id="timeline-data" type="application/json">(.*?)</script>', body, re.S)
    assert found is not None
    return json.loads(found.group(1))


def test_the_timeline_gives_times_on_the_operators_clock_and_ends_after_its_last_marker(analyst):
    from datetime import datetime, timedelta

    from django.utils import timezone

    from tests.factories import flag, inquiry

    line = make_line()
    fired_at = timezone.now()
    case = flag(line, "MULTI_HEAD", now=fired_at)
    assert case is not None
    late = inquiry(line, fired_at + timedelta(hours=2), "招商银行")  # upstream's clock a little ahead of ours

    timeline = _timeline(page(logged_in(analyst).get(f"/cases/{case.pk}/", headers=EN)))

    local = timezone.localtime(fired_at).strftime("%Y-%m-%d %H:%M:%S")
    (fired,) = [s for s in timeline["series"] if s["label"] == "signal fired"]
    assert fired["x"] == [local] and "+" not in fired["x"][0]  # 8 hours ahead of UTC, no offset for Plotly to drop
    assert timeline["zone"] == "Asia/Shanghai"
    end = datetime.fromisoformat(timeline["end"])
    newest = timezone.localtime(late.occurred_at).replace(tzinfo=None)
    assert end - newest >= timedelta(days=10)  # 3% of a year after the newest marker
    zh = _timeline(page(logged_in(analyst).get(f"/cases/{case.pk}/", headers=ZH)))
    (fired_zh,) = [s for s in zh["series"] if s["label"] == "信号触发"]
    assert fired_zh["text"] == ["多头借贷 (高)"]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_timeline_draws_its_newest_marker_whole_in_chinese_with_local_hover_times(browser, live_server):
    from django.utils import timezone

    from tests.factories import default_ruleset, flag
    from tests.helpers import browser_login, browser_operator, need_chromium

    need_chromium()
    default_ruleset()
    fired_at = timezone.now()
    case = flag(make_line(), "OVERDUE", now=fired_at)
    assert case is not None
    browser_operator("ana", "analyst")
    tab = browser_login(browser, live_server, "ana")
    tab.goto(f"{live_server.url}/cases/{case.pk}/")
    tab.click(".lang button[value=zh-hans]")
    tab.wait_for_selector("html[lang=zh-hans]")
    tab.wait_for_selector("#timeline .main-svg")

    ticks = tab.locator("#timeline .xtick text").all_text_contents()
    assert any("月" in t for t in ticks), ticks
    assert not any(re.search(r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\b", t) for t in ticks), ticks
    edges = tab.evaluate(
        "() => { const plot = document.querySelector('#timeline .nsewdrag').getBoundingClientRect();"
        " const right = Math.max(...[...document.querySelectorAll('#timeline .scatterlayer .point')]"
        ".map(p => p.getBoundingClientRect().right)); return [right, plot.right]; }"
    )
    assert edges[0] <= edges[1], edges  # the newest marker ends inside the plot
    star = tab.locator("#timeline .scatterlayer .trace").nth(-2).locator(".point").last
    star.hover(force=True)
    tab.wait_for_selector("#timeline .hoverlayer .hovertext")
    hover = tab.locator("#timeline .hoverlayer").text_content() or ""
    assert timezone.localtime(fired_at).strftime("%Y-%m-%d %H:%M") in hover, hover


# --- 5. a refresh after a reveal neither reveals nor audits again; the reveal's boxes sit by their labels


def test_refreshing_the_page_after_a_reveal_shows_it_again_without_a_second_audit(senior):
    from riskops.models import AuditEvent
    from tests.factories import flag

    case = flag(make_line(phone="13812345678"), "OVERDUE")
    assert case is not None
    client = logged_in(senior)

    shown = client.post(f"/cases/{case.pk}/reveal/", {"targets": ["phone"], "reason": "借款人来电，核实身份"},
                        headers=EN, follow=True)  # fmt: skip
    refreshed = client.get(shown.redirect_chain[-1][0], headers=EN)

    assert "<mark>13812345678</mark>" in page(shown) and "<mark>13812345678</mark>" in page(refreshed)
    assert AuditEvent.objects.filter(action="borrower.reveal").count() == 1


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_reveal_cards_boxes_sit_on_the_line_of_their_labels(browser, live_server):
    from tests.factories import default_ruleset, flag
    from tests.helpers import browser_login, browser_operator, need_chromium

    need_chromium()
    default_ruleset()
    case = flag(make_line(), "OVERDUE")
    assert case is not None
    browser_operator("sen", "senior_reviewer")
    tab = browser_login(browser, live_server, "sen")
    tab.goto(f"{live_server.url}/cases/{case.pk}/")

    boxes = tab.evaluate(
        "() => [...document.querySelectorAll('#reveal #id_targets label')].map(l => {"
        " const b = l.querySelector('input').getBoundingClientRect(); const r = l.getBoundingClientRect();"
        " return [b.top, b.bottom, b.width, r.top, r.bottom, r.height]; })"
    )
    assert len(boxes) == 3
    for top, bottom, width, label_top, label_bottom, label_height in boxes:
        assert width < 30 and label_height < 40  # a box, not a full-width bar; one line
        assert label_top - 1 <= top and bottom <= label_bottom + 1
