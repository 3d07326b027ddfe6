"""The dashboard in a real browser: a risk manager narrows the dates, clicks one day's MULTI_HEAD bar and lands on
the queue holding exactly the cases that bar counted; in Chinese too."""

from __future__ import annotations

import os
import re
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from riskops.dashboard.services import dashboard_refresh
from tests.factories import default_ruleset, flag, make_line
from tests.helpers import browser_login, browser_operator, need_chromium

need_chromium()

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def at_noon(days_ago: int) -> datetime:
    day = timezone.localdate() - timedelta(days=days_ago)
    return datetime.combine(day, time(12), tzinfo=timezone.get_default_timezone())


def test_a_manager_narrows_the_dates_clicks_a_multi_head_bar_and_gets_exactly_its_cases(browser, live_server, tmp_path):
    default_ruleset()
    browser_operator("rita", "risk_manager")
    on_day = [flag(make_line(), "MULTI_HEAD", now=at_noon(10)) for _ in range(3)]
    flag(make_line(), "OVERDUE", now=at_noon(10))  # the same day, another family: not in the bar
    flag(make_line(), "MULTI_HEAD", now=at_noon(11))  # the day before: not in the bar
    flag(make_line(), "MULTI_HEAD", now=at_noon(30))  # outside the narrowed range
    flag(make_line(), "MULTI_HEAD")  # today
    dashboard_refresh()
    shots = Path(os.environ.get("RISKOPS_SCREENSHOTS", tmp_path))

    page = browser_login(browser, live_server, "rita")
    assert page.url.endswith("/dashboard/")
    page.locator("#plot-freezes .main-svg").first.wait_for()
    assert page.locator("#tile-freezes_today .n").inner_text() == "1"

    start, end = timezone.localdate() - timedelta(days=15), timezone.localdate() - timedelta(days=5)
    page.fill("#id_start", start.isoformat())
    page.fill("#id_end", end.isoformat())
    page.click("#dashboard-filters button[type=submit]")
    page.wait_for_url(re.compile(r".*/dashboard/\?start=.*"))
    page.locator("#plot-freezes .main-svg").first.wait_for()
    page.screenshot(path=str(shots / "dashboard-narrowed-en.png"), full_page=True)

    data = page.evaluate("JSON.parse(document.getElementById('dashboard-data').textContent)")
    series = [s["name"] for s in data["freezes"]["series"]]
    assert series == ["freeze:MULTI_HEAD", "freeze:OVERDUE"]
    day = (timezone.localdate() - timedelta(days=10)).isoformat()
    index = data["freezes"]["x"].index(day)
    assert data["freezes"]["series"][0]["y"][index] == 3

    # Where a person clicks: the middle of the bar (Plotly's drag layer over it takes the click and finds the bar).
    box = page.locator("#plot-freezes .trace.bars").nth(0).locator(".point").nth(index).bounding_box()
    assert box and box["height"] > 10
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_url(re.compile(r".*/queue/\?.*figure=freeze.*"))
    assert f"figure_from={day}" in page.url and "figure_key=MULTI_HEAD" in page.url
    assert "multi-head borrowing" in page.locator("#drill-down").inner_text()
    rows = page.locator("tr.case")
    hrefs = {rows.nth(i).get_attribute("data-row-href") for i in range(rows.count())}
    assert hrefs == {f"/cases/{case.pk}/" for case in on_day}
    assert page.locator(".queue-head .count").inner_text() == "3 cases"

    # The same page in Chinese: the words and Plotly's own follow the language.
    page.goto(f"{live_server.url}/dashboard/?start={start}&end={end}")
    page.click("form.lang button[value=zh-hans]")
    page.wait_for_url(re.compile(r".*/dashboard/.*"))
    page.locator("#plot-freezes .main-svg").first.wait_for()
    assert "看板" in page.locator("main h1").inner_text()
    page.screenshot(path=str(shots / "dashboard-narrowed-zh.png"), full_page=True)
