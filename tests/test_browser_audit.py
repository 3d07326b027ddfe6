"""The audit page in a real browser: an auditor filters, pages, exports, and finds the export in the trail."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from django.utils import timezone

from riskops.audit_trail.selectors import PAGE_SIZE
from riskops.core.audit import Actor, Change, audit_write
from riskops.models import AuditEvent
from tests.factories import default_ruleset
from tests.helpers import browser_login, browser_operator, need_chromium

need_chromium()

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_auditor_filters_by_action_pages_older_exports_and_sees_the_export_in_the_trail(browser, live_server):
    default_ruleset()
    browser_operator("aud", "auditor")
    now = timezone.now()
    audit_write(actor=Actor.engine(), at=now, changes=[Change("signal.fire", "signal", i, None) for i in range(60)])
    audit_write(actor=Actor.system(), at=now, changes=[Change("job.fail", "job", 1, None, None, {"error": "x"})])
    fired = list(AuditEvent.objects.filter(action="signal.fire").order_by("-id").values_list("id", flat=True))

    page = browser_login(browser, live_server, "aud")
    page.click("nav >> text=Audit trail")
    page.wait_for_url("**/audit/")
    assert page.locator("#chain-state").inner_text().count("never verified") == 1

    page.select_option("#id_action", "signal.fire")
    page.click("#audit-filters button[type=submit]")
    page.wait_for_url("**/audit/?*action=signal.fire*")
    rows = page.locator("#audit-trail tbody tr[data-event-id]")
    assert rows.count() == PAGE_SIZE
    assert {rows.nth(i).get_attribute("data-action") for i in range(rows.count())} == {"signal.fire"}

    page.click("#audit-older")
    page.wait_for_url("**/audit/?*before=*")
    assert page.locator("#id_action").input_value() == "signal.fire"  # the filter is kept
    older = [int(rows.nth(i).get_attribute("data-event-id") or 0) for i in range(rows.count())]
    assert older == fired[PAGE_SIZE:]

    with page.expect_download() as download:
        page.click("#audit-export")
    body = Path(download.value.path()).read_text(encoding="utf-8-sig")
    exported = list(csv.DictReader(io.StringIO(body)))
    assert [int(r["id"]) for r in exported] == fired
    assert download.value.suggested_filename.startswith("audit-")

    page.goto(f"{live_server.url}/audit/")
    newest = page.locator("#audit-trail tbody tr[data-event-id]").first
    assert newest.get_attribute("data-action") == "audit.export"
    assert "aud" in newest.inner_text() and "audit trail exported" in newest.inner_text()
    event = AuditEvent.objects.get(action="audit.export")
    assert event.after == {"filter": {"action": "signal.fire"}, "up_to_id": event.pk - 1, "rows": 60}
