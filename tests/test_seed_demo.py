"""seed_demo: the same seed gives the same rows, the data looks like real borrowers, every signal family fires at a
plausible rate with near misses on the right side of each threshold, and bad input changes nothing."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date, datetime, timedelta
from io import StringIO

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Model
from django.utils import timezone

from accounts import demo
from accounts.models import (
    Case,
    CreditLine,
    LineChange,
    Note,
    Notification,
    RuleSet,
    Signal,
)
from accounts.queue_filters import SLA_CHOICES, QueueFilters
from accounts.selectors.case import EVENT_MODELS
from accounts.selectors.queue import queue_queryset
from accounts.validation import valid_national_id
from appeals.models import Appeal, AppealAlert, AppealPriority, AppealRuleOutcome
from appeals.services import appeals_age
from riskops.models import AuditEvent
from tests.factories import make_line, make_role_operator
from tests.helpers import logged_in, page

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
            # A year of events, for a flagged account up to when the engine reacted to its last ones.
            assert first > NOW_DT - timedelta(days=366, hours=max(hours for hours, _share in demo.AS_OF_HOURS))
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
    stats = demo.load(accounts=3000, seed=11, now=NOW_DT, plan=plan)
    demo.evaluate(now=NOW_DT, as_of=stats.as_of)

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


def test_reset_replaces_accounts_signals_cases_and_audit_but_keeps_rulesets_guidance_and_users():
    from accounts.models import Guidance

    operator = get_user_model().objects.create_user("reviewer", password="x-long-password")
    rulesets = RuleSet.objects.count()
    guidance = sorted(Guidance.objects.values_list("code", "version"))
    assert len(guidance) == 4  # the migration's first versions (the reset emptied them: the status page gave no advice)
    seed("--accounts", "300", "--seed", "1", "--now", NOW)
    assert Signal.objects.exists() and Case.objects.exists() and AuditEvent.objects.exists()

    seed("--accounts", "30", "--seed", "1", "--now", NOW, "--no-engine", "--reset")

    assert CreditLine.objects.count() == 30
    assert min(CreditLine.objects.values_list("id", flat=True)) == 1
    for model in (Signal, Case, LineChange, Notification, AuditEvent):
        assert not model.objects.exists(), model
    assert RuleSet.objects.count() == rulesets == 1
    assert sorted(Guidance.objects.values_list("code", "version")) == guidance
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


# --- One story in time: events, then freezes and cases, then appeals, notes and decisions, then the SLA clock.

STORY_ACCOUNTS = "1500"
STORY_APPEALS = "30"


def seed_story(*extra: str) -> datetime:
    """Seed as `make run` does, for the present (the queue's SLA filter and the inbox read the clock); the demo's
    now, which every page then sees as a few seconds ago."""
    before = timezone.now()
    seed("--accounts", STORY_ACCOUNTS, "--seed", "42", "--reset", "--appeals", STORY_APPEALS, *extra)
    now = max(c.opened_at for c in Case.objects.only("opened_at"))
    assert before <= now <= timezone.now()
    return now


def reviewers_on_duty() -> tuple[User, User]:
    """An analyst and a senior reviewer who joined a month before the demo's story."""
    joined = timezone.now() - timedelta(days=30)
    analyst = make_role_operator("analyst")
    senior = make_role_operator("senior_reviewer")
    get_user_model().objects.filter(pk__in=[analyst.pk, senior.pk]).update(date_joined=joined)
    return analyst, senior


def test_demo_appeals_come_after_the_freeze_and_the_case_they_contest(settings):
    reviewers_on_duty()
    seed_story()

    appeals = list(Appeal.objects.select_related("case", "line").prefetch_related("documents"))
    assert len(appeals) == int(STORY_APPEALS)
    freezes = defaultdict(list)
    for line_id, at in LineChange.objects.filter(kind="freeze").values_list("line_id", "at"):
        freezes[line_id].append(at)
    for appeal in appeals:
        fired = Signal.objects.filter(case_id=appeal.case_id).values_list("fired_at", flat=True)
        assert freezes[appeal.line_id], appeal.pk
        assert max(freezes[appeal.line_id]) < appeal.submitted_at, appeal.pk
        assert appeal.case.opened_at < appeal.submitted_at, appeal.pk
        assert max(fired) < appeal.submitted_at, appeal.pk
        assert appeal.sla_due_at == appeal.submitted_at + timedelta(hours=settings.APPEAL_SLA_HOURS)
        assert {d.uploaded_at for d in appeal.documents.all()} == {appeal.submitted_at}
        submitted = AuditEvent.objects.get(action="appeal.submit", object_id=appeal.pk)
        assert submitted.at == appeal.submitted_at


def _evidence(signal: Signal) -> list[tuple[str, int, datetime, date | None]]:
    """(kind, id, occurred at, due date of an installment) of every event the signal cites."""
    found = []
    for kind, ids in signal.evidence["events"].items():
        model = EVENT_MODELS[kind]
        for row in model.objects.filter(pk__in=ids).values(
            "pk", "occurred_at", *(["due_date"] * (kind == "installment"))
        ):
            found.append((kind, row["pk"], row["occurred_at"], row.get("due_date")))
    return found


def test_demo_evidence_predates_the_freeze_it_justified_and_the_appeal_against_it():
    reviewers_on_duty()
    seed_story()

    changes = {
        s: (at, kind) for s, at, kind in LineChange.objects.exclude(signal=None).values_list("signal_id", "at", "kind")
    }
    appealed = {a.case_id: a.submitted_at for a in Appeal.objects.all()}
    checked = contested = 0
    for signal in Signal.objects.exclude(severity="low"):
        freeze = changes.get(signal.pk)
        for kind, pk, occurred, due in _evidence(signal):
            assert occurred <= signal.fired_at, (signal.pk, kind, pk)
            if freeze is not None:
                assert occurred <= freeze[0], (signal.pk, kind, pk)
                assert due is None or due <= timezone.localdate(freeze[0]), (signal.pk, kind, pk)
            if signal.case_id in appealed:
                assert occurred < appealed[signal.case_id], (signal.pk, kind, pk)
                contested += 1
            checked += 1
    assert checked > 1000 and contested > 30


def test_demo_decisions_and_notes_come_after_the_appeals_they_decide():
    reviewers_on_duty()
    now = seed_story()

    decided = list(Appeal.objects.exclude(decision=None).select_related("decision", "case").order_by("id"))
    assert len(decided) >= 4
    assert {"approved", "rejected"} <= {a.status for a in decided}
    for appeal in decided:
        decision = appeal.decision
        assert decision is not None
        assert appeal.submitted_at < decision.proposed_at <= now, appeal.pk
        if decision.reviewed_at is not None:
            assert decision.proposed_at < decision.reviewed_at <= now, appeal.pk
            assert decision.reviewed_by_id != decision.proposed_by_id
        if appeal.decided_at is not None:
            # Stamped in the call that settled it (the appeal a moment before the case's rows in the same call).
            settled = decision.reviewed_at or decision.proposed_at
            assert abs(appeal.decided_at - settled) < timedelta(seconds=1), appeal.pk
            assert appeal.case.resolved_at is not None
            assert abs(appeal.case.resolved_at - settled) < timedelta(seconds=1), appeal.pk
            outcomes = AppealRuleOutcome.objects.filter(appeal=appeal).values_list("decided_at", flat=True)
            assert set(outcomes) == {appeal.decided_at}, appeal.pk
        notes = Note.objects.filter(case_id=appeal.case_id).values_list("created_at", flat=True)
        assert notes and all(appeal.submitted_at < at < decision.proposed_at for at in notes), appeal.pk
    approved = {
        line_id: at
        for line_id, at in Appeal.objects.filter(status="approved").values_list("line_id", "decided_at")
        if at is not None
    }
    unfrozen = dict(LineChange.objects.filter(kind="unfreeze").values_list("line_id", "at"))
    assert unfrozen and set(unfrozen) == set(approved)
    assert all(abs(approved[line_id] - at) < timedelta(seconds=1) for line_id, at in unfrozen.items())


def test_demo_history_of_every_account_reads_in_time_order_and_ends_at_its_now():
    reviewers_on_duty()
    now = seed_story()

    with connection.cursor() as cur:
        # appeal_decide stamps the appeal with the time it started and writes its audit row after the case's
        # decision rows, stamped a few milliseconds later in the same call: the one step back allowed.
        cur.execute(
            "SELECT action, prev_action, prev - at FROM (SELECT action, at, lag(at) OVER w AS prev, "
            "lag(action) OVER w AS prev_action FROM riskops_auditevent WINDOW w AS (PARTITION BY account_id ORDER BY id)"
            ") t WHERE at < prev"
        )
        back = cur.fetchall()
        assert {(a, p) for a, p, _ in back} <= {("appeal.decide", "case.update")}
        assert all(step < timedelta(seconds=1) for _a, _p, step in back)
        cur.execute(
            "SELECT count(*) FROM (SELECT created_at < lag(created_at) OVER (PARTITION BY line_id ORDER BY id) AS back "
            "FROM accounts_note) t WHERE back"
        )
        assert cur.fetchone()[0] == 0
    assert Note.objects.exists()
    # Nothing happens after the demo's now but what is due later (SLA deadlines) and what the worker sends.
    deadlines = {"sla_due_at", "appeal_due_at", "due_date", "sent_at"}
    later = []
    models: list[type[Model]] = [
        *apps.get_app_config("accounts").get_models(),
        *apps.get_app_config("appeals").get_models(),
        AuditEvent,
    ]
    for model in models:
        for f in model._meta.concrete_fields:
            if f.get_internal_type() == "DateTimeField" and f.name not in deadlines:
                n = model._default_manager.filter(**{f"{f.name}__gt": now}).count()
                if n:
                    later.append((model.__name__, f.name, n))
    assert later == []


def test_demo_queue_has_cases_in_every_sla_state():
    reviewers_on_duty()
    seed_story()

    counts = {value: queue_queryset(QueueFilters(sla=value), user_id=None).count() for value, _label in SLA_CHOICES}
    on_time = counts[""] - counts["due_soon"] - counts["breached"]
    assert set(counts) == {"", "due_soon", "breached"}
    assert all(counts.values()) and on_time > 0, counts
    # A backlog, not a collapse: most cases are within their SLA.
    assert counts["breached"] + counts["due_soon"] < on_time


def test_demo_breach_panel_shows_breached_appeals_to_a_senior_after_make_run(settings):
    """`make run` on a first start: seed_demo, then create_demo_operators, with nobody in the database before."""
    settings.DEBUG = True
    seed_story()
    call_command("create_demo_operators", stdout=StringIO())

    senior = get_user_model().objects.get(username="senior_reviewer")
    body = page(logged_in(senior).get("/appeals/"))

    assert 'id="alerts"' in body
    panel = body.split('id="alerts"', 1)[1].split("</section>", 1)[0]
    listed = [int(i) for i in re.findall(r"Appeal #(\d+) \(JB\d{10}\) passed its deadline", panel)]
    assert len(listed) >= 3
    breached = set(Appeal.objects.filter(sla_due_at__lt=timezone.now(), decided_at=None).values_list("pk", flat=True))
    assert set(listed) <= breached
    # The inbox also has appeals still within their deadline, some of them due soon.
    open_appeals = Appeal.objects.filter(status="open")
    assert open_appeals.filter(sla_due_at__gt=timezone.now() + timedelta(hours=settings.APPEAL_DUE_SOON_HOURS)).exists()
    assert open_appeals.filter(priority=AppealPriority.DUE_SOON).exists()


def test_demo_breach_alerts_go_only_to_seniors_who_already_exist():
    _analyst, senior = reviewers_on_duty()
    now = seed_story()

    notified = list(Appeal.objects.exclude(breach_notified_at=None))
    assert len(notified) >= 3
    alerts = list(AppealAlert.objects.select_related("recipient", "appeal"))
    assert {(a.appeal_id, a.recipient_id) for a in alerts} == {(a.pk, senior.pk) for a in notified}
    for alert in alerts:
        assert alert.recipient.date_joined <= alert.created_at <= now
        assert alert.appeal.sla_due_at < alert.created_at == alert.appeal.breach_notified_at


def test_demo_breaches_wait_for_a_senior_when_none_exists_yet():
    now = seed_story()

    breached = Appeal.objects.filter(sla_due_at__lt=now, status="open")
    assert breached.count() >= 3
    assert not Appeal.objects.exclude(breach_notified_at=None).exists()
    assert not AppealAlert.objects.exists()

    senior = make_role_operator("senior_reviewer")
    appeals_age()

    assert set(AppealAlert.objects.values_list("appeal_id", "recipient_id")) == {
        (pk, senior.pk) for pk in breached.values_list("pk", flat=True)
    }
