"""Rule tuning in a real browser: a risk manager raises MULTI_HEAD's inquiry threshold in a draft, simulates and
backtests it and sees fewer freezes with the accounts spared; a second risk manager approves it, it goes live, the
re-evaluation job unfreezes those accounts, and the dashboard's frozen lines fall by as many."""

from __future__ import annotations

import os
import re
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from accounts.models import CreditLine, RuleSet
from tests.factories import default_ruleset, flag, make_line
from tests.helpers import browser_login, browser_operator, need_chromium

need_chromium()

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def at_noon(days_ago: int) -> datetime:
    day = timezone.localdate() - timedelta(days=days_ago)
    return datetime.combine(day, time(12), tzinfo=timezone.get_default_timezone())


def tile(page, figure: str) -> str:
    return page.locator(f'.tile[data-figure="{figure}"] .n').first.inner_text()


def test_a_threshold_raised_simulated_backtested_approved_by_another_manager_and_live(browser, live_server, tmp_path):
    default_ruleset()
    browser_operator("rita", "risk_manager")
    browser_operator("max", "risk_manager")
    # Frozen 10 days ago on 5 inquiries (the live threshold is 4): the raised threshold (6) releases them.
    spared = [flag(make_line(), "MULTI_HEAD", now=at_noon(10)) for _ in range(3)]
    # On 7 inquiries: frozen under both versions.
    kept = [flag(make_line(), "MULTI_HEAD", now=at_noon(10), inquiries=7) for _ in range(2)]
    assert CreditLine.objects.filter(status="frozen").count() == 5
    shots = Path(os.environ.get("RISKOPS_SCREENSHOTS", tmp_path))

    page = browser_login(browser, live_server, "rita")
    page.locator("#tile-frozen_now .n").wait_for()
    assert page.locator("#tile-frozen_now .n").inner_text() == "5"
    page.goto(f"{live_server.url}/rules/")
    page.fill("#id_note", "fewer multi-head freezes")
    page.click("text=Copy into a draft")
    page.wait_for_url(re.compile(r".*/rules/v2/$"))
    page.fill("#id_MULTI_HEAD-p_min_inquiries", "6")
    page.locator("#rule-MULTI_HEAD button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/rules/v2/.*"))
    assert page.locator('#table-diff tr[data-rule="MULTI_HEAD"][data-field="min_inquiries"] .after').inner_text() == "6"

    # Simulate: the job runs as the request commits; the report names the accounts it would release.
    page.click("text=Simulate on today's book")
    page.wait_for_url(re.compile(r".*/rules/simulations/\d+/$"))
    assert (tile(page, "freeze"), tile(page, "release")) == ("0", "3")
    released = page.locator("#sample-release tbody tr td:first-child").all_inner_texts()
    assert sorted(released) == sorted(c.line.account_no for c in spared)
    page.screenshot(path=str(shots / "rules-simulation-browser-en.png"), full_page=True)

    # Backtest the last 90 days: the draft would have spared the same three, from the day they were frozen on.
    page.goto(f"{live_server.url}/rules/v2/")
    page.click("#backtests button[type=submit]")
    page.wait_for_url(re.compile(r".*/rules/backtests/\d+/$"))
    assert tile(page, "caught") == "0"
    assert "of 3 accounts only the live version freezes" in page.locator('.tile[data-figure="spared"]').inner_text()
    spared_rows = page.locator("#sample-spared tbody tr td:first-child").all_inner_texts()
    assert sorted(spared_rows) == sorted(c.line.account_no for c in spared)
    page.locator("#plot-backtest .main-svg").first.wait_for()
    page.screenshot(path=str(shots / "rules-backtest-browser-en.png"), full_page=True)

    # The author cannot approve it.
    page.goto(f"{live_server.url}/rules/v2/activate/")
    assert "another risk manager must approve its activation" in page.locator("#authored").inner_text()
    assert page.locator("#activate").count() == 0

    # A second risk manager approves it, with the re-evaluation of the accounts the simulation named.
    other = browser_login(browser, live_server, "max")
    other.goto(f"{live_server.url}/rules/v2/activate/")
    assert other.locator("#evidence-fresh").count() == 1
    assert (tile(other, "freeze"), tile(other, "release")) == ("0", "3")
    assert other.locator("#id_reevaluate").is_checked()
    other.screenshot(path=str(shots / "rules-activate-browser-en.png"), full_page=True)
    other.click("#activate")
    other.wait_for_url(re.compile(r".*/jobs/\d+/$"))
    assert other.locator("#job-status").inner_text() == "succeeded"
    assert "Version 2 is live (it replaced version 1)." in other.locator(".messages").inner_text()
    assert RuleSet.objects.get(is_active=True).version == 2
    status = dict(CreditLine.objects.values_list("pk", "status"))
    assert [status[c.line_id] for c in spared] == ["active"] * 3
    assert [status[c.line_id] for c in kept] == ["frozen"] * 2

    # The dashboard's figures moved by as many.
    other.goto(f"{live_server.url}/dashboard/")
    assert other.locator("#tile-frozen_now .n").inner_text() == "2"
