"""The Content-Security-Policy in a real browser: every console page works under it (the timeline draws, Swagger UI
loads, the admin opens, the help opens and closes) and Chromium reports no violation."""

from __future__ import annotations

import pytest

from tests.factories import default_ruleset, flag, make_line
from tests.helpers import browser_login, browser_operator, need_chromium

need_chromium()

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_console_pages_work_under_the_policy_with_no_violation(browser, live_server) -> None:
    default_ruleset()
    case = flag(make_line(), "OVERDUE", "MULTI_HEAD")
    admin = browser_operator("adm", "admin")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    tab = browser_login(browser, live_server, "adm")
    problems: list[str] = []
    tab.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    tab.on("pageerror", lambda e: problems.append(str(e)))

    tab.goto(f"{live_server.url}/cases/{case.pk}/")
    tab.locator("#timeline .scatterlayer .point").first.wait_for()
    # The help opens from its button and closes from its own (handlers in keys.js, none inline).
    tab.click("button.help-button")
    assert tab.locator("#key-help").is_visible()
    tab.click("#key-help button[data-help=close]")
    assert not tab.locator("#key-help").is_visible()

    for path, ready in [
        ("/queue/", "tr.case"),
        ("/dashboard/", "#plot-freezes .main-svg"),
        ("/appeals/", "main h1"),
        ("/jobs/", "main h1"),
        ("/api/docs/", ".swagger-ui .info"),
        ("/admin/", "#content"),
    ]:
        response = tab.goto(f"{live_server.url}{path}")
        assert response is not None
        assert "script-src 'self'" in response.headers["content-security-policy"], path
        tab.locator(ready).first.wait_for()

    assert problems == []
