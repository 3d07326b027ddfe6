"""The Import page: a risk manager uploads a file, it runs as an import job, the errors come back as a CSV."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.models import CreditInquiry, CreditLine
from ingest.models import IngestBatch
from riskops.models import AuditEvent, Job
from tests.factories import default_ruleset, make_role_operator
from tests.helpers import ROOT, browser_login, browser_operator, need_chromium

SAMPLES = ROOT / "docs" / "import-samples"
INQUIRIES = (
    "upstream_id,account,occurred_at,institution\n"
    "q-1,LA-000101,2026-11-20T10:00:00+08:00,招商银行\n"
    "q-2,NOPE,2026-11-21T10:00:00+08:00,招商银行\n"
    "q-3,LA-000101,not a time,招商银行\n"
)


def logged_in(role: str) -> Client:
    client = Client()
    client.force_login(make_role_operator(role))
    return client


def upload(client: Client, name: str, body: bytes, on_commit: Any, **fields: str) -> Any:
    with on_commit(execute=True):
        return client.post(
            "/jobs/import/", {"file": SimpleUploadedFile(name, body), **fields}, headers={"accept-language": "en"}
        )


@pytest.mark.django_db
def test_a_risk_manager_imports_the_samples_as_jobs_and_downloads_the_error_report(django_capture_on_commit_callbacks):
    client = logged_in("risk_manager")
    assert client.get("/jobs/import/").status_code == 200
    upload(client, "1-accounts.csv", (SAMPLES / "1-accounts.csv").read_bytes(), django_capture_on_commit_callbacks)
    assert CreditLine.objects.count() == 3

    response = upload(client, "2-credit_inquiry.csv", INQUIRIES.encode(), django_capture_on_commit_callbacks)

    job = Job.objects.latest("pk")
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    assert (job.kind, job.status, job.selected, job.done, job.changed, job.unchanged, job.failed) == (
        "import", "succeeded", 3, 3, 1, 0, 2,
    )  # fmt: skip
    assert list(CreditInquiry.objects.values_list("upstream_id", flat=True)) == ["q-1"]
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "unknown account &#x27;NOPE&#x27;" in page and f"/jobs/{job.pk}/errors.csv" in page
    report = client.get(f"/jobs/{job.pk}/errors.csv")
    assert report["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(report.content.decode("utf-8-sig"))))
    assert rows == [
        ["line", "field", "message"],
        ["3", "account", "unknown account 'NOPE'"],
        ["4", "occurred_at", "must be a date and time in ISO 8601, e.g. 2026-11-30T14:05:00+08:00"],
    ]
    # The export is audited: who took it, and how many rows.
    export = AuditEvent.objects.get(action="job.export_errors")
    assert (export.object_id, export.actor_kind, export.after) == (job.pk, "operator", {"rows": 2})
    assert IngestBatch.objects.get(job_id=job.pk).source == "upload"
    # Imported again: the row that was stored is recognised, nothing is stored twice.
    upload(client, "2-credit_inquiry.csv", INQUIRIES.encode(), django_capture_on_commit_callbacks)
    again = Job.objects.latest("pk")
    assert (again.changed, again.unchanged, again.failed) == (0, 1, 2)
    assert CreditInquiry.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("data.xlsx", b"x", "data.xlsx: unknown format &#x27;.xlsx&#x27;; use .csv or .jsonl"),
        ("x.csv", b"upstream_id,colour\n", "x.csv: line 1: unknown column(s) colour (docs/IMPORT.md lists each kind&#x27;s columns)"),
        ("credit_inquiry.csv", b"upstream_id,account,occurred_at,institution\n", "credit_inquiry.csv: the file has no rows"),
    ],
)  # fmt: skip
def test_a_bad_upload_says_why_and_starts_no_job(django_capture_on_commit_callbacks, settings, name, body, message):
    client = logged_in("risk_manager")

    response = upload(client, name, body, django_capture_on_commit_callbacks)

    assert response.status_code == 302
    assert message in client.get(response["Location"]).content.decode()
    assert Job.objects.count() == 0
    assert not any(Path(settings.IMPORT_DIR).glob("*")) if Path(settings.IMPORT_DIR).exists() else True


@pytest.mark.django_db
def test_a_file_over_the_limit_is_refused(django_capture_on_commit_callbacks, settings):
    settings.IMPORT_MAX_BYTES = 2048
    client = logged_in("admin")

    response = upload(client, "big.csv", b"x" * 4096, django_capture_on_commit_callbacks)

    assert "The file is 0.0 MB; at most 0 MB" in client.get(response["Location"]).content.decode()
    assert Job.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["analyst", "senior_reviewer", "auditor"])
def test_only_risk_managers_and_admins_may_import(role, django_capture_on_commit_callbacks):
    client = logged_in(role)

    assert client.get("/jobs/import/").status_code == 403
    response = upload(
        client, "1-accounts.csv", (SAMPLES / "1-accounts.csv").read_bytes(), django_capture_on_commit_callbacks
    )
    assert response.status_code == 403
    assert 'href="/jobs/import/"' not in client.get("/jobs/").content.decode()
    assert CreditLine.objects.count() == 0


need_chromium_here = pytest.mark.browser


@need_chromium_here
@pytest.mark.django_db(transaction=True)
def test_the_upload_page_in_a_browser_imports_every_sample_and_shows_the_errors(browser, live_server, tmp_path):
    need_chromium()
    default_ruleset()  # a transactional test's flush empties the migration's ruleset
    browser_operator("rita", "risk_manager")
    page = browser_login(browser, live_server, "rita")
    shots = Path(os.environ.get("RISKOPS_SCREENSHOTS", tmp_path))

    for sample in sorted(SAMPLES.glob("*.csv")) + sorted(SAMPLES.glob("*.jsonl")):
        page.click("nav >> text=Import")
        page.set_input_files("#id_file", str(sample))
        if sample.name == "1-accounts.csv":
            page.screenshot(path=str(shots / "import-page-en.png"), full_page=True)
        page.click("#import-submit")
        page.wait_for_url("**/jobs/*/")
        page.wait_for_function("document.querySelector('#job-status').textContent.trim() == 'succeeded'")
        assert page.locator("#job-failed").inner_text() == "0", sample.name
    assert CreditLine.objects.count() == 4
    assert CreditLine.objects.get(account_no="LA-000102").status == "frozen"  # OVERDUE, from the samples

    bad = tmp_path / "credit_inquiry.csv"
    bad.write_text(INQUIRIES, encoding="utf-8")
    page.click("nav >> text=Import")
    page.set_input_files("#id_file", str(bad))
    page.click("#import-submit")
    page.wait_for_url("**/jobs/*/")
    page.wait_for_function("document.querySelector('#job-status').textContent.trim() == 'succeeded'")
    assert page.locator("#job-failed").inner_text() == "2"
    assert "unknown account 'NOPE'" in page.locator("#import-errors").inner_text()
    with page.expect_download() as download:
        page.click("#import-errors-csv")
    report = Path(download.value.path()).read_text(encoding="utf-8-sig").splitlines()
    assert report[0] == "line,field,message" and report[1] == "3,account,unknown account 'NOPE'"
    page.screenshot(path=str(shots / "import-job-en.png"), full_page=True)

    page.click(".lang button[value=zh-hans]")
    page.wait_for_selector("html[lang=zh-hans]")
    assert "导入" in page.locator("nav").inner_text()
    assert "未知的账户 'NOPE'" in page.locator("#import-errors").inner_text()  # the kept errors, in Chinese
    page.screenshot(path=str(shots / "import-job-zh.png"), full_page=True)
    page.click("nav >> text=导入")
    page.screenshot(path=str(shots / "import-page-zh.png"), full_page=True)
