"""The case review in a real browser: Debian's Chromium driven by Playwright, against a live server."""

from __future__ import annotations

from datetime import timedelta

import pytest

from accounts.engine import evaluate_lines
from accounts.models import Case, CreditLine, Decision, LineStatus
from riskops.models import AuditEvent
from tests.factories import NOW, default_ruleset, inquiry, make_line
from tests.helpers import browser_login, browser_operator, need_chromium

need_chromium()

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def multi_head_freeze() -> CreditLine:
    """A line frozen by MULTI_HEAD (6 inquiries, 4 institutions) and a lower-priority PROFILE-free line."""
    default_ruleset()
    line = make_line(limit="30000.00", outstanding="12000.00")
    for i, institution in enumerate(["平安普惠", "度小满", "招联金融", "马上消费", "平安普惠", "度小满"]):
        inquiry(line, NOW - timedelta(days=i + 2), institution)
    other = make_line(limit="8000.00", outstanding="100.00", phone="13900001111")
    for i, institution in enumerate(["中银消费", "兴业消费", "捷信", "中银消费"]):
        inquiry(other, NOW - timedelta(days=i + 2), institution)
    evaluate_lines([line.pk, other.pk], now=NOW)
    line.refresh_from_db()
    assert line.status == LineStatus.FROZEN
    return line


def test_analyst_proposes_an_unfreeze_and_a_different_senior_reviewer_approves_it(
    browser, live_server, multi_head_freeze: CreditLine
) -> None:
    line = multi_head_freeze
    browser_operator("ana", "analyst")
    browser_operator("sen", "senior_reviewer")

    page = browser_login(browser, live_server, "ana")

    # Filter the queue; the filter lives in the URL.
    page.select_option("#id_family", "MULTI_HEAD")
    page.fill("#id_exposure_min", "10000")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**/queue/?*family=MULTI_HEAD*")
    rows = page.locator("tr.case")
    assert rows.count() == 1
    assert line.account_no in rows.first.inner_text()

    # Keyboard: ? shows the help, Escape hides it, n claims the next case.
    page.keyboard.press("?")
    assert page.locator("#key-help").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#key-help").is_visible()
    page.keyboard.press("n")
    page.wait_for_url("**/cases/*/")
    case = Case.objects.get(line=line)
    assert page.url.endswith(f"/cases/{case.pk}/")
    assert page.locator("#assignee").inner_text() == "ana"

    # The evidence of the MULTI_HEAD freeze, in plain words and event by event.
    why = page.locator("#signals").inner_text()
    assert "6 inquiries from 4 institutions in 30 days; threshold 4 from 3" in why
    assert page.locator("#signals table.evidence tr td a").count() == 6
    assert page.locator("#borrower-name").inner_text() == "王*明"
    page.wait_for_selector("#timeline .main-svg")

    # Propose an unfreeze: the active high-severity signal makes it a four-eyes decision.
    page.select_option("#id_kind", "unfreeze")
    page.select_option("#id_reason_code", "data_error")
    page.fill("#id_note", "Inquiries were one loan shopped around")
    page.click("#submit-decision")
    page.wait_for_selector("#proposal")
    assert "a different senior reviewer must approve" in page.locator(".messages").inner_text()
    assert page.locator("#approve").count() == 0
    line.refresh_from_db()
    assert line.status == LineStatus.FROZEN

    # The analyst cannot approve their own proposal through the endpoint either.
    decision = Decision.objects.get(case=case)
    status = page.evaluate(
        """async (url) => {
            const token = document.querySelector('input[name=csrfmiddlewaretoken]').value;
            const r = await fetch(url, {method: 'POST', headers: {'X-CSRFToken': token}});
            return r.status;
        }""",
        f"/decisions/{decision.pk}/approve/",
    )
    assert status == 403
    decision.refresh_from_db()
    assert decision.status == "proposed"

    # A different senior reviewer finds it among the cases awaiting approval and approves it.
    senior = browser_login(browser, live_server, "sen")
    senior.click("text=Awaiting approval")
    senior.wait_for_url("**/queue/?status=awaiting_approval")
    senior.click(f"text={line.account_no}")
    senior.wait_for_selector("#approve")
    senior.click("#approve")
    senior.wait_for_selector("text=Proposal approved and applied.")
    assert senior.locator("#line-status").inner_text() == "active"
    audit = senior.locator("#audit").inner_text()
    assert "decision.propose" in audit
    assert "decision.approve" in audit
    assert "line.unfreeze" in audit

    line.refresh_from_db()
    assert line.status == LineStatus.ACTIVE
    assert list(
        AuditEvent.objects.filter(account=line, action__startswith="decision.").values_list("action", "actor_label")
    ) == [("decision.propose", "ana"), ("decision.approve", "sen")]


def test_a_senior_reviewer_cannot_approve_their_own_proposal(browser, live_server, multi_head_freeze) -> None:
    browser_operator("sen1", "senior_reviewer")
    page = browser_login(browser, live_server, "sen1")
    case = Case.objects.get(line=multi_head_freeze)
    page.goto(f"{live_server.url}/cases/{case.pk}/")
    page.select_option("#id_kind", "unfreeze")
    page.select_option("#id_reason_code", "data_error")
    page.click("#submit-decision")
    page.wait_for_selector("#own-proposal")
    assert page.locator("#approve").count() == 0
    decision = Decision.objects.get(case=case)
    status = page.evaluate(
        """async (url) => {
            const token = document.querySelector('input[name=csrfmiddlewaretoken]').value;
            return (await fetch(url, {method: 'POST', headers: {'X-CSRFToken': token}})).status;
        }""",
        f"/decisions/{decision.pk}/approve/",
    )
    assert status == 403
    multi_head_freeze.refresh_from_db()
    assert multi_head_freeze.status == LineStatus.FROZEN


def test_the_case_page_speaks_chinese_after_the_switch(browser, live_server, multi_head_freeze) -> None:
    browser_operator("ana2", "analyst")
    page = browser_login(browser, live_server, "ana2")
    page.click("button[value=zh-hans]")
    page.wait_for_selector("text=案件队列")
    case = Case.objects.get(line=multi_head_freeze)
    page.goto(f"{live_server.url}/cases/{case.pk}/")
    assert "6 家机构查询征信" not in page.content()  # sanity: the sentence has its own numbers
    assert "30 天内 4 家机构查询征信 6 次；阈值为 3 家机构 4 次" in page.locator("#signals").inner_text()
    assert "¥30,000.00" in page.locator("#line-limit").inner_text()
