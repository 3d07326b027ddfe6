"""import_events: docs/IMPORT.md's samples, the error report, dry runs, bad arguments, and resuming after a kill."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from accounts.models import CreditInquiry, CreditLine, Drawdown, Installment, Signal, SignalStatus, TouchedLine
from ingest.models import IngestBatch
from ingest.parsing import KINDS
from tests.helpers import ROOT, current_database_url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ruleset")]

SAMPLES = ROOT / "docs" / "import-samples"


def run(*args: str, on_commit: Any) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    with on_commit(execute=True):
        call_command("import_events", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_docs_import_md_lists_every_field_of_every_kind():
    doc = (ROOT / "docs" / "IMPORT.md").read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \|.*$", doc, re.MULTILINE)}
    assert set(KINDS) <= rows.keys()
    for name, kind in KINDS.items():
        listed = set(re.findall(r"`(\w+)`", rows[name])) | (
            {"upstream_id", "account", "occurred_at"} if kind.is_event else set()
        )
        assert set(kind.fields) - {"kind"} <= listed, name


def test_the_samples_import_and_give_the_flags_the_docs_describe(django_capture_on_commit_callbacks):
    for sample in sorted(SAMPLES.glob("*.csv")) + sorted(SAMPLES.glob("*.jsonl")):
        out, err = run(str(sample), on_commit=django_capture_on_commit_callbacks)
        assert "0 with errors" in out, (sample.name, out, err)

    assert CreditLine.objects.count() == 4
    assert sorted(CreditInquiry.objects.values_list("upstream_id", flat=True))[:2] == ["inq-5001", "inq-5002"]
    active = set(Signal.objects.filter(status=SignalStatus.ACTIVE).values_list("line__account_no", "code"))
    # The flag that holds whatever day the test runs: an installment due 2026-11-01 stays overdue. (The others the
    # docs describe pass with time: the inquiries' 30-day window, ABNORMAL_USE's 90 days, PROFILE_STALE's year.)
    assert ("LA-000102", "OVERDUE") in active
    assert not TouchedLine.objects.exists()  # the engine reacted to every file
    la102 = CreditLine.objects.get(account_no="LA-000102")
    assert (la102.status, la102.limit) == ("frozen", Decimal("6000.00"))
    # 3,000 drawn, 1,400 repaid; the limit cut to 6,000 upstream leaves 6,000 - 1,600 available at most.
    assert la102.outstanding == Decimal("1600.00")
    assert Installment.objects.get(upstream_id="ins-9001-1").paid_at is not None
    assert Installment.objects.get(upstream_id="ins-9001-2").paid_at is None

    # Imported again: everything is already there.
    out, _err = run(str(SAMPLES / "3-drawdown.csv"), on_commit=django_capture_on_commit_callbacks)
    assert "0 stored, 2 already there, 0 with errors" in out
    assert CreditLine.objects.get(account_no="LA-000102").outstanding == Decimal("1600.00")


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_dry_run_reports_every_error_by_line_and_stores_nothing(tmp_path, django_capture_on_commit_callbacks):
    run(str(SAMPLES / "1-accounts.csv"), on_commit=django_capture_on_commit_callbacks)
    path = _write(
        tmp_path,
        "drawdowns.csv",
        "upstream_id,account,occurred_at,amount,term_months\n"
        "d-1,LA-000101,2026-11-01T10:00:00+08:00,100.00,3\n"
        "d-2,LA-000101,2026-11-01T10:00:00+08:00,12.345,3\n"
        "d-3,NOPE,2026-11-01T10:00:00+08:00,100.00,3\n",
    )
    report = tmp_path / "errors.csv"

    with pytest.raises(CommandError, match=r"^2 rows have errors \(dry run\)$"):
        run(
            path,
            "--kind",
            "drawdown",
            "--dry-run",
            "--report",
            str(report),
            on_commit=django_capture_on_commit_callbacks,
        )

    assert report.read_text().splitlines() == [
        "line,field,message",
        '3,amount,"must be an amount in yuan with at most 2 decimals, e.g. 1200.50"',
        "4,account,unknown account 'NOPE'",
    ]
    assert Drawdown.objects.count() == 0
    assert IngestBatch.objects.filter(status="checked").count() == 1


def test_all_or_nothing_imports_nothing_from_a_file_with_an_error(tmp_path, django_capture_on_commit_callbacks):
    run(str(SAMPLES / "1-accounts.csv"), on_commit=django_capture_on_commit_callbacks)
    path = _write(
        tmp_path,
        "inquiries.jsonl",
        '{"kind": "credit_inquiry", "upstream_id": "q-1", "account": "LA-000101", "occurred_at": "2026-11-01T10:00:00+08:00", "institution": "A"}\n'
        "{not json\n",
    )

    with pytest.raises(CommandError, match=r"^1 errors; nothing was imported \(--all-or-nothing\)$"):
        run(path, "--all-or-nothing", on_commit=django_capture_on_commit_callbacks)
    assert CreditInquiry.objects.count() == 0
    with pytest.raises(CommandError, match=r"^1 rows have errors$"):
        run(path, on_commit=django_capture_on_commit_callbacks)
    assert list(CreditInquiry.objects.values_list("upstream_id", flat=True)) == ["q-1"]  # without the flag: partial


@pytest.mark.parametrize(
    ("args", "text", "message"),
    [
        (["missing.csv"], None, "missing.csv: no such file"),
        (["data.xlsx"], "", "data.xlsx: unknown format '.xlsx'; use .csv or .jsonl"),
        (["empty.csv"], "", "empty.csv: the file is empty (a CSV file starts with a header row)"),
        (["x.csv"], "upstream_id,account,colour\n", "x.csv: line 1: unknown column(s) colour (docs/IMPORT.md lists each kind's columns)"),
        (["x.csv"], "upstream_id,account\n", "x.csv: the header has no kind column; add one, name the file after its kind (drawdown.csv), or give the kind of every row (--kind), one of: "
         "account, profile_update, credit_inquiry, drawdown, installment, transfer, income_record, repayment, limit_change"),
        (["x.csv", "--chunk", "0"], "kind\n", "--chunk must be from 1 to 10000"),
    ],
)  # fmt: skip
def test_a_bad_file_or_argument_stops_with_a_clear_message(
    tmp_path, args, text, message, django_capture_on_commit_callbacks
):
    if text is not None:
        _write(tmp_path, args[0], text)
    path = str(tmp_path / args[0]) if text is not None or args[0] != "missing.csv" else "missing.csv"
    with pytest.raises(CommandError) as raised:
        run(path, *args[1:], on_commit=django_capture_on_commit_callbacks)
    assert str(raised.value).removeprefix(str(tmp_path) + "/") == message
    assert IngestBatch.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_an_import_killed_midway_resumes_storing_only_what_is_missing(tmp_path):
    accounts = 200
    lines = ["kind,upstream_id,account,occurred_at,limit,amount,term_months"]
    lines += [f"account,,R{i:05d},2025-01-01T00:00:00+08:00,10000.00,," for i in range(accounts)]
    lines += [f"drawdown,d{n:06d},R{n % accounts:05d},2026-10-01T00:00:00+08:00,,1.00,1" for n in range(40_000)]
    path = _write(tmp_path, "big.csv", "\n".join(lines) + "\n")
    env = dict(os.environ, DATABASE_URL=current_database_url(), DEBUG="false", SECRET_KEY="import-test-" + "x" * 40)
    cmd = [sys.executable, "manage.py", "import_events", path, "--chunk", "2000", "--backfill"]

    first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert first.stdout is not None
    seen = [first.stdout.readline() for _ in range(3)]  # three batches committed
    first.kill()
    first.wait(timeout=30)
    stored = Drawdown.objects.count()
    assert 0 < stored < 40_000, seen

    second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    assert second.returncode == 0, second.stdout + second.stderr
    assert (
        f"{40_000 - stored:,} stored, {stored + accounts:,} already there, 0 with errors"
        in second.stdout.splitlines()[-1]
    )
    assert Drawdown.objects.count() == 40_000
    # Each drawdown of 1.00 counted once: 200 per account.
    assert set(CreditLine.objects.values_list("outstanding", flat=True)) == {Decimal("200.00")}
