"""The borrower's side in a real browser (Debian's Chromium, Playwright), on a phone-sized screen, in Chinese.

The issue's "must show": a borrower whose line was cut opens the link, reads why, updates the profile with an
income document and sees the limit restored; another, frozen for an overdue installment, sees the amount and what
to do, and after a repayment arrives through the events API the page says the reason no longer holds and that a
person will review the freeze.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlparse

import pytest
from django.utils import timezone

from accounts.engine import evaluate_lines
from accounts.models import CreditLine, Guidance, Installment, LineStatus, Signal, SignalStatus
from appeals.links import appeal_link
from tests.factories import default_ruleset, income_record, installment, make_line, make_role_operator
from tests.helpers import need_chromium, pdf, token_client

need_chromium()

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "locale": "zh-CN"}
# What risk managers wrote (the migration's rows are flushed between transactional tests).
GUIDANCE = {
    "PROFILE_STALE": ("请在本页更新您的工作单位和月收入。", "Please update your employer and income on this page."),
    "OVERDUE": ("请尽快还清逾期款项，按时还款有助于维护信用。", "Please repay the overdue amount soon."),
}


@pytest.fixture(autouse=True)
def _rules_and_guidance() -> None:
    default_ruleset()
    for code, (zh, en) in GUIDANCE.items():
        Guidance.objects.get_or_create(
            code=code, version=1, defaults={"text_zh": zh, "text_en": en, "created_at": timezone.now()}
        )


def guidance_zh(code: str) -> str:
    return Guidance.objects.filter(code=code).order_by("-version").values_list("text_zh", flat=True)[0]


def link_of(live_server, line: CreditLine) -> str:
    return f"{live_server.url}{urlparse(appeal_link(line.pk)).path}"


def test_a_borrower_with_a_cut_line_reads_why_updates_the_profile_with_a_document_and_gets_the_limit_back(
    browser, live_server
) -> None:
    from playwright.sync_api import expect

    line = make_line(limit="20000.00", available="15000.00", outstanding="5000.00", income="10000.00")
    income_record(line, timezone.now() - timedelta(days=90), "5000.00")
    evaluate_lines([line.pk])
    line.refresh_from_db()
    assert line.available == Decimal("7500.00")

    context = browser.new_context(**PHONE)
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    tab.goto(link_of(live_server, line))
    expect(tab.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(tab.locator("#line-state")).to_contain_text("您的可用额度已下调")
    expect(tab.locator("#line-state")).to_contain_text("当前可用 ¥7,500.00")
    reason = tab.locator("#reason-PROFILE_STALE")
    expect(reason).to_contain_text("月收入为 ¥5,000.00，而您资料中填写的是 ¥10,000.00")
    expect(reason.locator(".guidance")).to_contain_text("您可以这样做：" + guidance_zh("PROFILE_STALE"))
    assert tab.evaluate("() => document.documentElement.scrollWidth") <= 390  # nothing wider than the phone

    tab.fill("#id_employer", "杭州新公司有限公司")
    tab.fill("#id_monthly_income", "5200")
    tab.set_input_files(
        "#profile-form input[name=documents]",
        files=[{"name": "工资流水.pdf", "mimeType": "application/pdf", "buffer": pdf()}],
    )
    with tab.expect_response(lambda r: r.request.method == "POST") as posted:
        tab.click("#submit-profile")
    assert posted.value.status == 302
    expect(tab.locator("#profile-updated")).to_contain_text("谢谢，您的资料已更新")
    expect(tab.locator("#line-state")).to_contain_text("您的额度可正常使用")
    expect(tab.locator("#line-state")).to_contain_text("当前可用 ¥15,000.00")
    expect(tab.locator("#reason-PROFILE_STALE")).to_have_count(0)
    context.close()

    line.refresh_from_db()
    assert line.available == Decimal("15000.00")
    assert Signal.objects.get(line=line, code="PROFILE_STALE").clear_cause == "profile_update"


def test_a_borrower_frozen_for_an_overdue_sees_the_amount_and_after_a_repayment_that_a_person_will_review(
    browser, live_server
) -> None:
    from playwright.sync_api import expect

    line = make_line(limit="20000.00", outstanding="5000.00")
    due = installment(line, timezone.localdate() - timedelta(days=35), "1234.50")
    evaluate_lines([line.pk])
    line.refresh_from_db()
    assert line.status == LineStatus.FROZEN

    context = browser.new_context(**PHONE)
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    tab.goto(link_of(live_server, line))
    expect(tab.locator("#line-state")).to_contain_text("您的额度已被冻结")
    reason = tab.locator("#reason-OVERDUE")
    expect(reason).to_contain_text("待还 ¥1,234.50")
    expect(reason.locator(".guidance")).to_contain_text(guidance_zh("OVERDUE"))
    expect(tab.locator("#appeal-form")).to_be_visible()

    # The ledger sends the repayment through the events API; the engine reacts (eager here, a worker in `make run`).
    response = token_client(make_role_operator("integration", "ledger")).post(
        "/api/v1/events/",
        {
            "items": [
                {
                    "kind": "repayment",
                    "upstream_id": "pay-1",
                    "account": line.account_no,
                    "occurred_at": timezone.now().isoformat(),
                    "installment": Installment.objects.get(pk=due.pk).upstream_id,
                    "amount": "1234.50",
                }
            ]
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert Signal.objects.get(line=line, code="OVERDUE").status == SignalStatus.CLEARED

    tab.reload()
    expect(tab.locator("#reason-OVERDUE")).to_have_count(0)
    expect(tab.locator("#lifted-OVERDUE")).to_contain_text("逾期款项已还清")
    expect(tab.locator("#review-note")).to_contain_text("会有专人复核您的额度")
    expect(tab.locator("#line-state")).to_contain_text("您的额度已被冻结")  # a person lifts a freeze
    context.close()
    assert CreditLine.objects.get(pk=line.pk).status == LineStatus.FROZEN
