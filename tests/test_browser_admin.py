"""The admin panel as an administrator sees it, in a real browser (Debian's Chromium, Playwright): finds a frozen
account by the admin's search, opens it, sees the borrower masked, and cannot edit the audit trail or the active
ruleset. Screenshots of the list and the account, in English and in Chinese, go to ADMIN_SHOTS_DIR when it is set."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from accounts.engine import evaluate_lines
from accounts.models import CreditLine, LineStatus, RuleSet
from riskops.models import AuditEvent
from tests.factories import default_ruleset, inquiry, make_line
from tests.helpers import browser_login, browser_operator, need_chromium

need_chromium()

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CANARY = {"name": "司马相如", "phone": "13912340987", "national_id": "11010519491231002X"}


def _frozen_line() -> CreditLine:
    default_ruleset()
    now = timezone.now()
    line = make_line(name=CANARY["name"], phone=CANARY["phone"], national_id=CANARY["national_id"])
    for i, institution in enumerate(["平安普惠", "度小满", "招联金融", "马上消费", "平安普惠"]):
        inquiry(line, now - timedelta(days=i + 1), institution)
    evaluate_lines([line.pk], now=now)
    line.refresh_from_db()
    assert line.status == LineStatus.FROZEN
    return line


def _shot(tab, name: str) -> None:
    folder = os.environ.get("ADMIN_SHOTS_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(Path(folder) / name), full_page=True)


def _no_raw_personal_data(tab) -> None:
    html = tab.content()
    for raw in CANARY.values():
        assert raw not in html


def test_an_administrator_finds_a_frozen_account_sees_it_masked_and_cannot_edit_audit_or_the_active_ruleset(
    browser, live_server
) -> None:
    from playwright.sync_api import expect

    line = _frozen_line()
    for _ in range(3):  # other accounts, which the search leaves out
        make_line()
    browser_operator("adm", "admin")
    tab = browser_login(browser, live_server, "adm")

    # --- The credit lines: the frozen ones, then the account by its number.
    tab.goto(f"{live_server.url}/admin/accounts/creditline/?status__exact=frozen")
    tab.fill("#searchbar", line.account_no)
    tab.press("#searchbar", "Enter")
    rows = tab.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(line.account_no)
    expect(rows.first).to_contain_text("司**如 (139****0987)")
    _no_raw_personal_data(tab)
    _shot(tab, "en-creditline-list.png")

    rows.first.locator("th a").click()
    expect(tab.locator("h1")).to_contain_text("View credit line")
    expect(tab.locator(".field-borrower")).to_contain_text("司**如 (139****0987)")
    expect(tab.locator("input[name=_save]")).to_have_count(0)
    _no_raw_personal_data(tab)
    _shot(tab, "en-creditline-change.png")

    tab.locator(".field-borrower a").click()
    expect(tab.locator(".field-masked_national_id")).to_contain_text("****002X")
    _no_raw_personal_data(tab)

    # --- The audit trail: shown, no save button, a POST refused and nothing changed.
    event = AuditEvent.objects.filter(account_id=line.pk, action="line.freeze").get()
    before = AuditEvent.objects.values().get(pk=event.pk)
    url = f"{live_server.url}/admin/riskops/auditevent/{event.pk}/change/"
    tab.goto(url)
    expect(tab.locator("h1")).to_contain_text("View audit event")
    expect(tab.locator("input[name=_save]")).to_have_count(0)
    expect(tab.locator(".deletelink")).to_have_count(0)
    token = tab.locator("input[name=csrfmiddlewaretoken]").first.input_value()
    response = tab.request.post(url, form={"csrfmiddlewaretoken": token, "action": "line.unfreeze", "_save": "Save"})
    assert response.status == 403
    assert AuditEvent.objects.values().get(pk=event.pk) == before

    # --- The active ruleset: shown with its rules, no save button, a POST refused, nothing changed.
    ruleset = RuleSet.objects.get(is_active=True)
    url = f"{live_server.url}/admin/accounts/ruleset/{ruleset.pk}/change/"
    tab.goto(url)
    expect(tab.locator("h1")).to_contain_text("View ruleset")
    expect(tab.locator("input[name=_save]")).to_have_count(0)
    expect(tab.locator("textarea")).to_have_count(0)
    token = tab.locator("input[name=csrfmiddlewaretoken]").first.input_value()
    response = tab.request.post(
        url, form={"csrfmiddlewaretoken": token, "version": str(ruleset.version), "note": "edited", "_save": "Save"}
    )
    assert response.status == 403
    assert RuleSet.objects.get(pk=ruleset.pk).note == ruleset.note

    # --- In Chinese: switched on the console (its language buttons), the admin follows.
    tab.goto(f"{live_server.url}/queue/")
    tab.click("form.lang button[value=zh-hans]")
    tab.wait_for_load_state()
    tab.goto(f"{live_server.url}/admin/accounts/creditline/?status__exact=frozen&q={line.account_no}")
    expect(tab.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(tab.locator("#changelist-search input[type=submit]")).to_have_value("搜索")  # Django's own catalogue
    expect(tab.locator("#result_list")).to_contain_text("司**如 (139****0987)")
    _no_raw_personal_data(tab)
    _shot(tab, "zh-creditline-list.png")
    tab.goto(f"{live_server.url}/admin/accounts/creditline/{line.pk}/change/")
    expect(tab.locator("h1")).to_contain_text("查看")
    _no_raw_personal_data(tab)
    _shot(tab, "zh-creditline-change.png")
