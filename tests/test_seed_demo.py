"""seed_demo: the same seed gives the same rows, the data looks like real borrowers, every signal family fires at a
plausible rate with near misses on the right side of each threshold, and bad input changes nothing."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime, timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection

from accounts import demo
from accounts.engine import evaluate_all
from accounts.models import (
    Case,
    CreditLine,
    LineChange,
    Notification,
    RuleSet,
    Signal,
)
from accounts.validation import valid_national_id
from riskops.models import AuditEvent
from tests.factories import make_line

NOW = "2026-06-15T12:00:00+08:00"
NOW_DT = datetime.fromisoformat(NOW)

pytestmark = pytest.mark.django_db


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def digest(max_line_id: int | None = None) -> dict[str, str]:
    """An md5 of every demo table's rows in id order (optionally only the first accounts' rows)."""
    result = {}
    with connection.cursor() as cur:
        for model in demo.MODELS:
            table = model._meta.db_table
            where = ""
            if max_line_id is not None:
                column = "id" if model in (demo.Borrower, CreditLine) else "line_id"
                where = f"WHERE {column} <= {int(max_line_id)}"
            cur.execute(f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY id), '')) FROM {table} t {where}")  # noqa: S608 - table names from the models, values bound
            result[table] = cur.fetchone()[0]
    return result


def test_the_same_seed_gives_identical_rows_whatever_the_chunk_size():
    seed("--accounts", "400", "--seed", "5", "--now", NOW, "--no-engine")
    first = digest()
    seed("--accounts", "400", "--seed", "5", "--now", NOW, "--no-engine", "--reset", "--chunk-size", "100")

    assert digest() == first


def test_a_different_seed_gives_different_borrowers():
    seed("--accounts", "200", "--seed", "5", "--now", NOW, "--no-engine")
    first = digest()
    seed("--accounts", "200", "--seed", "6", "--now", NOW, "--no-engine", "--reset")

    assert digest()["accounts_borrower"] != first["accounts_borrower"]


def test_a_bigger_run_starts_with_the_same_accounts():
    seed("--accounts", "100", "--seed", "9", "--now", NOW, "--no-engine")
    small = digest()
    seed("--accounts", "250", "--seed", "9", "--now", NOW, "--no-engine", "--reset")

    assert digest(max_line_id=100) == small


def test_borrowers_lines_and_events_look_like_real_data():
    seed("--accounts", "1000", "--seed", "3", "--now", NOW, "--no-engine")

    lines = list(CreditLine.objects.select_related("borrower"))
    assert len(lines) == 1000
    assert len({line.account_no for line in lines}) == 1000
    assert len({line.borrower.phone for line in lines}) == 1000
    for line in lines:
        b = line.borrower
        assert re.fullmatch(r"JB\d{10}", line.account_no)
        assert re.fullmatch(r"1[3-9]\d{9}", b.phone)
        assert re.fullmatch(r"\d{17}[\dX]", b.national_id)
        assert valid_national_id(b.national_id)
        assert 20 <= NOW_DT.year - int(b.national_id[6:10]) <= 57
        assert re.fullmatch(r"[\u4e00-\u9fff]{2,4}", b.name)
        assert b.declared_monthly_income is not None
        assert b.declared_monthly_income > 0 and b.declared_monthly_income.as_tuple().exponent == -2
        assert 2_000 <= line.limit <= 200_000
        assert 0 <= line.available <= line.limit
        if line.status == "active":
            assert line.available + line.outstanding == line.limit
    statuses = {line.status for line in lines}
    assert statuses <= {"active", "closed"}

    with connection.cursor() as cur:
        events = 0
        for model in demo.EVENT_MODELS:
            table = model._meta.db_table
            cur.execute(f"SELECT count(*), min(occurred_at), max(occurred_at) FROM {table}")  # noqa: S608 - table names from the models, values bound
            n, first, last = cur.fetchone()
            events += n
            assert first > NOW_DT - timedelta(days=366)
            assert last <= NOW_DT
        cur.execute(
            "SELECT count(*) FROM accounts_installment i JOIN accounts_drawdown d ON d.id = i.drawdown_id "
            "WHERE d.line_id <> i.line_id OR i.due_date <= (d.occurred_at AT TIME ZONE 'Asia/Shanghai')::date"
        )
        assert cur.fetchone()[0] == 0
        cur.execute(
            "SELECT count(*) FROM accounts_installment "
            "WHERE (paid_at IS NULL AND paid_amount <> 0) OR (paid_at IS NOT NULL AND paid_amount <> amount)"
        )
        assert cur.fetchone()[0] == 0
    assert 20 <= events / 1000 <= 30


def test_ids_continue_after_the_loaded_rows():
    seed("--accounts", "50", "--seed", "1", "--now", NOW, "--no-engine")

    line = make_line()

    assert line.pk == 51
    assert line.borrower_id == 51


def test_every_signal_family_fires_at_a_plausible_rate():
    out = seed("--accounts", "2000", "--seed", "42", "--now", NOW)

    fired: dict[tuple[str, str], int] = defaultdict(int)
    for code, severity in Signal.objects.values_list("code", "severity"):
        fired[(code, severity)] += 1
    for code, severity in [
        ("MULTI_HEAD", "high"),
        ("OVERDUE", "high"),
        ("ABNORMAL_USE", "high"),
        ("PROFILE_STALE", "medium"),
    ]:
        assert 0.04 <= fired[(code, severity)] / 2000 <= 0.10, (code, fired[(code, severity)])
    assert 0.02 <= fired[("OVERDUE", "low")] / 2000 <= 0.08
    assert CreditLine.objects.filter(status="frozen").count() > 0
    assert Case.objects.filter(status="open").count() > 0
    assert "Loaded 2,000 accounts" in out
    assert "Engine: evaluated" in out and "MULTI_HEAD" in out and "cases opened" in out


def test_near_misses_and_edges_land_on_the_planned_side_of_each_threshold():
    plan: list[tuple[int, str, str]] = []
    demo.load(accounts=3000, seed=11, now=NOW_DT, plan=plan)
    evaluate_all(now=NOW_DT)

    severities: dict[tuple[int, str], set[str]] = defaultdict(set)
    for line_id, code, severity in Signal.objects.values_list("line_id", "code", "severity"):
        severities[(line_id, code)].add(severity)
    expected = {variant: severity for variants in demo.PLAN_VARIANTS.values() for variant, _share, severity in variants}
    seen = {variant for _line, _family, variant in plan}
    assert seen == set(expected)
    wrong = []
    for line_id, family, variant in plan:
        got = severities.get((line_id, family), set())
        want = expected[variant]
        if want is None:
            ok = not (got - {"low"}) if family == "OVERDUE" else not got
        else:
            ok = want in got and (want != "low" or got == {"low"})
        if not ok:
            wrong.append((line_id, family, variant, got))
    assert wrong == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--accounts", "0"], "--accounts must be an integer between 1 and 5,000,000; got '0'"),
        (["--accounts", "5000001"], "--accounts must be an integer between 1 and 5,000,000; got '5000001'"),
        (["--accounts", "many"], "--accounts must be an integer between 1 and 5,000,000; got 'many'"),
        (["--accounts", "10", "--seed", "x"], "--seed must be an integer; got 'x'"),
        (
            ["--accounts", "10", "--now", "yesterday"],
            "--now must be an ISO 8601 datetime such as 2026-06-15T12:00:00+08:00; got 'yesterday'",
        ),
        (["--accounts", "10", "--chunk-size", "5"], "--chunk-size must be an integer between 100 and 100,000; got '5'"),
        ([], "Error: the following arguments are required: --accounts"),
        (["--accounts", "10", "--appeals", "5000"], "--appeals must be from 0 to 1,000; got 5000"),
    ],
)
def test_invalid_arguments_are_refused_with_a_clear_message_and_change_nothing(args, message):
    with pytest.raises(CommandError) as exc:
        seed(*args, "--reset")

    assert str(exc.value) == message
    assert not CreditLine.objects.exists()


def test_refuses_to_load_over_existing_accounts_without_reset():
    seed("--accounts", "20", "--seed", "1", "--now", NOW, "--no-engine")

    with pytest.raises(CommandError) as exc:
        seed("--accounts", "20", "--seed", "2", "--now", NOW, "--no-engine")

    assert str(exc.value) == (
        "The database already holds 20 credit lines; nothing was loaded. Run again with --reset to replace them "
        "(this deletes all accounts, events, signals, cases and audit events)."
    )
    assert CreditLine.objects.count() == 20


def test_reset_replaces_accounts_signals_cases_and_audit_but_keeps_rulesets_and_users():
    operator = get_user_model().objects.create_user("reviewer", password="x-long-password")
    rulesets = RuleSet.objects.count()
    seed("--accounts", "300", "--seed", "1", "--now", NOW)
    assert Signal.objects.exists() and Case.objects.exists() and AuditEvent.objects.exists()

    seed("--accounts", "30", "--seed", "1", "--now", NOW, "--no-engine", "--reset")

    assert CreditLine.objects.count() == 30
    assert min(CreditLine.objects.values_list("id", flat=True)) == 1
    for model in (Signal, Case, LineChange, Notification, AuditEvent):
        assert not model.objects.exists(), model
    assert RuleSet.objects.count() == rulesets == 1
    assert get_user_model().objects.filter(pk=operator.pk).exists()


def test_demo_appeals_go_through_intake_with_real_documents(settings):
    from appeals.documents import sniff
    from appeals.models import Appeal, AppealStatus

    out = seed("--accounts", "400", "--now", NOW, "--reset", "--appeals", "6")

    assert "Appeals: 6 demo borrowers appealed with documents" in out
    appeals = list(Appeal.objects.select_related("line", "case").prefetch_related("documents").order_by("id"))
    assert len(appeals) == 6
    for appeal in appeals:
        assert appeal.status == AppealStatus.OPEN
        assert appeal.line.status == "frozen" and appeal.case.appeal_state == "open"
        for doc in appeal.documents.all():
            data = (settings.APPEAL_DOCUMENTS_DIR / doc.stored_name).read_bytes()
            assert sniff(data) == doc.content_type
    assert {d.content_type for a in appeals for d in a.documents.all()} == {"application/pdf", "image/png"}
