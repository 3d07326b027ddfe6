"""A borrower's appeal from the signed link to the unfreeze, in a real browser (Debian's Chromium, Playwright).

The issue's "must show": the borrower opens the signed link (Chinese by default, a phone-sized screen) and appeals
with a PDF and a photo; a reviewer opens the appeal from the queue, views the documents and approves with the
prefilled reply; the freeze was high severity, so a different senior reviewer approves the proposal; the line is
active, the borrower's message is in the outbox; re-evaluating does not re-freeze on the same evidence, but a new
qualifying event does.
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlparse

import pytest
from django.utils import timezone

from accounts.engine import evaluate_lines
from accounts.models import Case, CreditLine, LineStatus, Notification, NotificationKind, Signal, SignalStatus
from appeals import replies
from appeals.documents import check_document
from appeals.links import appeal_link
from appeals.models import Appeal, AppealChannel, AppealReason, AppealStatus
from riskops.core.audit import Actor
from tests.factories import default_ruleset, inquiry, make_line
from tests.helpers import browser_login, browser_operator, need_chromium, pdf, png

need_chromium()

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LOAN_SHOPPING_STATEMENT = (
    "我在 5 月申请了几家机构的贷款做比较，最后只在一家借了款，其他申请都已撤销，附上结清证明和截图。"
)
# The borrower's photo, in pixels.
PHOTO_SIZE = (24, 16)


@pytest.fixture
def frozen_line() -> CreditLine:
    """A line the engine froze for MULTI_HEAD (5 inquiries from 4 institutions in the last days), with its case.

    Events are dated from the real clock: the pages' services (intake, decisions, re-evaluation) use it too.
    """
    default_ruleset()
    now = timezone.now()
    line = make_line(limit="20000.00", outstanding="6000.00")
    for i, institution in enumerate(["平安普惠", "度小满", "招联金融", "马上消费", "平安普惠"]):
        inquiry(line, now - timedelta(days=i + 1), institution)
    evaluate_lines([line.pk], now=now)
    line.refresh_from_db()
    assert line.status == LineStatus.FROZEN
    assert Case.objects.filter(line=line).exclude(status="resolved").count() == 1
    return line


def test_a_borrower_appeals_with_proof_and_two_reviewers_unfreeze_the_line_for_good_until_new_evidence(
    browser, live_server, frozen_line: CreditLine
) -> None:
    from playwright.sync_api import expect

    line = frozen_line
    case = Case.objects.get(line=line)
    browser_operator("ana", "analyst")
    browser_operator("sen", "senior_reviewer")
    pdf_data, png_data = pdf(), png(PHOTO_SIZE)

    # --- The borrower: the link from the freeze message, on a phone, in Chinese whatever the browser prefers.
    borrower_context = browser.new_context(
        locale="en-US", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    borrower = borrower_context.new_page()
    borrower.set_default_timeout(15_000)
    link = f"{live_server.url}{urlparse(appeal_link(line.pk)).path}"
    response = borrower.goto(link)
    assert response is not None and response.status == 200
    expect(borrower.locator("html")).to_have_attribute("lang", "zh-hans")
    assert line.account_no[-4:] in borrower.locator(".account").inner_text()

    borrower.check(f"input[name=reason][value={AppealReason.LOANS_CLOSED}]")
    borrower.fill("textarea[name=statement]", LOAN_SHOPPING_STATEMENT)
    borrower.set_input_files(
        "input[name=documents]",
        files=[
            {"name": "结清证明.pdf", "mimeType": "application/pdf", "buffer": pdf_data},
            {"name": "IMG_2026.png", "mimeType": "image/png", "buffer": png_data},
        ],
    )
    with borrower.expect_response(lambda r: r.request.method == "POST") as posted:
        borrower.click("#submit-appeal")
    status = posted.value.status
    assert status == 302, f"the appeal form's POST answered {status}, not a redirect back to the link"
    borrower.wait_for_selector("#appeal-status")
    assert borrower.url == link
    appeal = Appeal.objects.get(line=line)
    expect(borrower.locator("#appeal-status")).to_contain_text(f"{appeal.pk}")
    assert (appeal.status, appeal.channel, appeal.reason, appeal.case_id) == (
        AppealStatus.OPEN,
        AppealChannel.LINK,
        AppealReason.LOANS_CLOSED,
        case.pk,
    )
    documents = {d.content_type: d for d in appeal.documents.all()}
    assert set(documents) == {"application/pdf", "image/png"}
    # The PDF is stored as sent; the photo as it was decoded and encoded anew (appeals.documents).
    assert (documents["application/pdf"].size, documents["image/png"].size) == (
        len(pdf_data),
        check_document("photo.png", png_data).size,
    )
    assert Notification.objects.filter(line=line, kind=NotificationKind.APPEAL_RECEIVED).count() == 1
    borrower_context.close()

    # --- The analyst: from the queue filtered to open appeals, to the case, to the appeal.
    page = browser_login(browser, live_server, "ana")
    page.select_option("#id_appeal", "open")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**/queue/?*appeal=open*")
    rows = page.locator("tr.case")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("span.badge.appeal")).to_be_visible()
    rows.first.locator(f"a:has-text('{line.account_no}')").click()
    page.wait_for_url(f"**/cases/{case.pk}/")
    page.click("#case-appeals a")
    page.wait_for_url(f"**/appeals/{appeal.pk}/")
    expect(page.locator("#statement")).to_contain_text(LOAN_SHOPPING_STATEMENT)
    expect(page.locator("#signals")).to_contain_text("MULTI_HEAD")  # the case's evidence beside the statement

    # The photo really rendered (decoded by the browser from the permission-checked view).
    preview = page.locator("img.preview")
    expect(preview).to_have_count(1)
    preview.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => { const i = document.querySelector('img.preview'); return i && i.complete && i.naturalWidth > 0; }"
    )
    assert preview.evaluate("i => [i.naturalWidth, i.naturalHeight]") == list(PHOTO_SIZE)

    # The PDF downloads, as a PDF, sandboxed, and never sniffed into anything else.
    pdf_link = page.locator("a.pdf-link")
    expect(pdf_link).to_have_attribute("download", "")
    expect(pdf_link).not_to_have_attribute("target", "_blank")
    href = pdf_link.get_attribute("href")
    assert href
    opened = page.request.get(f"{live_server.url}{href}")
    assert opened.status == 200
    headers = opened.headers
    assert headers["content-type"] == "application/pdf"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-disposition"].startswith("attachment; ")
    assert headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert opened.body() == pdf_data
    # The same URL is refused to someone who is not logged in.
    anonymous = browser.new_context()
    assert anonymous.request.get(f"{live_server.url}{href}", max_redirects=0).status in (302, 403)
    anonymous.close()

    # Approve with the reply the page prefilled; the high-severity freeze makes it a proposal.
    reply = page.locator("#form-approve textarea[name=reply]")
    expected_reply = replies.reply_template(AppealReason.LOANS_CLOSED, replies.APPROVE)
    expect(reply).to_have_value(expected_reply)
    page.click("#submit-approve")
    expect(page.locator("#appeal-status")).to_have_text("awaiting a second reviewer")
    expect(page.locator(".messages")).to_contain_text("a second senior reviewer must approve it")
    assert page.locator("#approve").count() == 0  # an analyst cannot approve
    line.refresh_from_db()
    assert line.status == LineStatus.FROZEN
    assert not Notification.objects.filter(line=line, kind=NotificationKind.APPEAL_APPROVED).exists()

    # --- A senior reviewer: from the appeals inbox, approves the proposal on the appeal page.
    senior = browser_login(browser, live_server, "sen")
    senior.goto(f"{live_server.url}/appeals/")
    senior.locator("#appeals tr.appeal").filter(has_text=line.account_no).locator("td").first.locator("a").click()
    senior.wait_for_url(f"**/appeals/{appeal.pk}/")
    expect(senior.locator("#reply")).to_contain_text(expected_reply)
    senior.click("#reply #approve")
    expect(senior.locator("#appeal-status")).to_have_text("approved")
    expect(senior.locator(".messages")).to_contain_text("Proposal approved and applied.")
    expect(senior.locator("#line-status")).to_have_text("active")

    line.refresh_from_db()
    assert line.status == LineStatus.ACTIVE
    appeal.refresh_from_db()
    assert (appeal.status, appeal.reply) == (AppealStatus.APPROVED, expected_reply)
    approved = Notification.objects.get(line=line, kind=NotificationKind.APPEAL_APPROVED)
    assert expected_reply in approved.body
    assert str(appeal.pk) in approved.body
    assert Signal.objects.get(line=line, code="MULTI_HEAD").status == SignalStatus.OVERTURNED

    # --- Re-evaluating the account on the same evidence does not re-freeze it (the case page's button)...
    senior.goto(f"{live_server.url}/cases/{case.pk}/")
    senior.click("#reevaluate")
    expect(senior.locator("#signals [role=status]")).to_contain_text("0 fired")
    expect(senior.locator("#signals [role=status]")).to_contain_text("1 suppressed")
    line.refresh_from_db()
    assert line.status == LineStatus.ACTIVE
    # ... nor does the engine's own pass.
    result = evaluate_lines([line.pk], actor=Actor.engine())
    assert (result.fired, result.frozen, result.suppressed) == (0, 0, 1)
    line.refresh_from_db()
    assert line.status == LineStatus.ACTIVE

    # --- A new qualifying event (another inquiry, from a new institution, in the window) re-freezes it.
    inquiry(line, timezone.now() - timedelta(hours=2), "新网银行")
    result = evaluate_lines([line.pk], actor=Actor.engine())
    assert (result.fired, result.frozen) == (1, 1)
    line.refresh_from_db()
    assert line.status == LineStatus.FROZEN
    assert Signal.objects.filter(line=line, code="MULTI_HEAD", status=SignalStatus.ACTIVE).count() == 1
    assert Case.objects.filter(line=line).exclude(status="resolved").exists()


def test_the_borrower_page_is_in_chinese_on_a_phone_unless_the_borrower_switches(
    browser, live_server, frozen_line: CreditLine
) -> None:
    from playwright.sync_api import expect

    chinese = re.compile(r"[\u4e00-\u9fff]")
    context = browser.new_context(
        locale="en-US", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    link = f"{live_server.url}{urlparse(appeal_link(frozen_line.pk)).path}"

    page.goto(link)  # the browser asks for English; the borrower's page answers in Chinese all the same
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    for selector in ("h1", "#submit-appeal", "#appeal-form legend", "label.choice >> nth=0"):
        text = page.locator(selector).inner_text()
        assert chinese.search(text), f"{selector} reads {text!r} on the Chinese page"
    # Usable on a phone: nothing wider than the screen.
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")

    page.click("nav.lang a")  # "English"
    page.wait_for_url("**?lang=en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#submit-appeal")).to_have_text("Submit appeal")
    context.close()
