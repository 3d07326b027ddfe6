"""The managers' dashboard (riskops.dashboard): every figure equals a direct count over the base tables (kept closed
days and today alike, after decisions, appeals and jobs moved them), the overturn rate's Wilson interval, the
drill-down links list exactly what was counted, bad input, roles, the page's queries, verify_dashboard.

History comes from seed_demo, which evaluates each account at the time its data ends (freezes spread over past
days); the moves of today go through the services every entry point calls.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from io import StringIO
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count, F
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts import services
from accounts.figures import params
from accounts.models import (
    Case,
    CaseStatus,
    CreditLine,
    Decision,
    Installment,
    LineChange,
    LineStatus,
    Signal,
    SignalStatus,
)
from appeals import services as appeal_services
from appeals.models import CLOCK_STATES, Appeal, AppealStatus
from riskops import jobs
from riskops.dashboard.selectors import counts_direct, daily_counts, dashboard, figure_link, late_commit, wilson
from riskops.dashboard.services import dashboard_keep_today, dashboard_refresh
from riskops.models import DailyFigure, DailyFiguresDay, DayMember
from tests.factories import make_role_operator
from tests.helpers import logged_in, op, submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager():
    return make_role_operator("risk_manager", "mia")


@pytest.fixture
def seeded():
    """A small demo book with its history, the dashboard's closed days counted (as seed_demo leaves it)."""
    call_command("seed_demo", accounts="900", appeals=12, seed="7", stdout=StringIO())
    assert DailyFiguresDay.objects.count() > 0


def window(days: int = 90):
    today = timezone.localdate()
    return today - timedelta(days=days - 1), today


def freezes_by_orm(start, end) -> dict[tuple[Any, str], int]:
    """Cases a signal froze per day and family, counted with the ORM (independently of accounts.figures' SQL)."""
    p = params(start, end)
    rows = (
        LineChange.objects.filter(kind="freeze", at__gte=p["start"], at__lt=p["end"], signal__case__isnull=False)
        .annotate(day=TruncDate("at", tzinfo=timezone.get_default_timezone()))
        .values("day", "signal__code")
        .annotate(n=Count("signal__case", distinct=True))
    )
    return {(r["day"], r["signal__code"]): r["n"] for r in rows}


def tile(board, label):
    return next(t for t in board.tiles if t.label == label)


def check_against_tables(user):
    """The dashboard's numbers against direct counts: the figures' SQL over the tables and the ORM's own count."""
    start, end = window()
    assert daily_counts(start, end) == counts_direct(start, end)
    board = dashboard(start, end, user_id=user.pk, operator_figures=True)
    freezes = board.charts["freezes"]
    shown = {
        (day, s["name"].split(":")[1]): n
        for s in freezes["series"]
        for day, n in zip(board.days, s["y"], strict=True)
        if n
    }
    assert shown == freezes_by_orm(start, end)
    frozen = CreditLine.objects.filter(status=LineStatus.FROZEN)
    assert tile(board, "frozen_now").value == frozen.count()
    assert board.charts["stock"]["series"][0]["y"][-1] == frozen.count()
    today = timezone.localdate()
    lifted_today = Case.objects.filter(
        line__changes__kind__in=["unfreeze", "restore_available"], line__changes__at__gte=params(today, today)["start"]
    )
    assert tile(board, "lifts_today").value == lifted_today.distinct().count()
    waiting = Appeal.objects.filter(status__in=CLOCK_STATES)
    assert tile(board, "appeals_waiting").value == waiting.count()
    return board


def closed_days_kept() -> dict[tuple[str, Any, str], int]:
    return {(r.figure, r.day, r.key): r.n for r in DailyFigure.objects.exclude(day=timezone.localdate())}


def approve_pending(case: Case, reviewer) -> None:
    """A second reviewer approves what four eyes held back (a large limit's unfreeze)."""
    for decision in Decision.objects.filter(case=case, status="proposed"):
        services.decision_review(decision_id=decision.pk, actor=op(reviewer), approve=True)


def reviewer_unfreeze(case: Case, senior, senior2) -> None:
    outcome = services.case_decide(
        case_id=case.pk,
        actor=op(senior),
        kind="unfreeze",
        reason_code="data_error",
        note="documents checked",
        expected_version=case.version,
        idempotency_key=uuid.uuid4().hex,
    )
    if not outcome.applied:
        approve_pending(case, senior2)
    assert CreditLine.objects.get(pk=case.line_id).status == LineStatus.ACTIVE


def open_frozen_cases():
    return Case.objects.filter(status=CaseStatus.OPEN, line__status=LineStatus.FROZEN, appeal_state="").order_by("id")


def test_every_figure_equals_a_direct_count_after_decisions_appeals_and_jobs(seeded, manager, senior, senior2):
    before = check_against_tables(manager)
    kept = closed_days_kept()
    assert kept, "seed_demo counts the closed days"
    # Today kept up to now (as if the late-commit margin had passed): what follows is counted against its members.
    dashboard_keep_today(now=timezone.now() + late_commit())
    assert DayMember.objects.filter(day=timezone.localdate()).exists()
    check_against_tables(manager)

    # Today: a reviewer unfreezes a case, an appeal is approved, a job re-evaluates lines whose borrower repaid.
    case = open_frozen_cases().first()
    reviewer_unfreeze(case, senior, senior2)
    frozen_case = open_frozen_cases().first()
    appeal = submit(frozen_case)
    appeal_services.appeal_decide(
        appeal_id=appeal.pk,
        actor=op(senior),
        outcome="approve",
        reply="Your documents show the loans were closed.",
        expected_version=Appeal.objects.get(pk=appeal.pk).version,
    )
    approve_pending(frozen_case, senior2)
    assert Appeal.objects.get(pk=appeal.pk).status == AppealStatus.APPROVED
    overdue = list(CreditLine.objects.filter(status=LineStatus.FROZEN, signals__code="OVERDUE").distinct()[:3])
    Installment.objects.filter(line__in=overdue).update(paid_at=timezone.now(), paid_amount=F("amount"))
    job = jobs.job_request(
        kind="reevaluate", selection_kind="ids", selection={"line_ids": [x.pk for x in overdue]}, actor=op(senior)
    )
    for batch in job.batches.all():
        jobs.job_run_batch(batch.pk)

    after = check_against_tables(manager)
    # The kept closed days did not move; today's figures did, by what happened.
    assert closed_days_kept() == kept
    assert tile(after, "frozen_now").value < tile(before, "frozen_now").value
    assert tile(after, "lifts_today").value >= tile(before, "lifts_today").value + 2
    assert tile(after, "lifts_today").note >= tile(before, "lifts_today").note
    # The reviewer's unfreeze and the approved appeal overturned their cases' signals: each rule's count of
    # overturned cases grew by the cases it had frozen or cut among those two (in the window).
    start, end = window()
    p = params(start, end)
    grew: dict[tuple[str, str], set[int]] = {}
    for s in Signal.objects.filter(
        case__in=[case, frozen_case],
        status=SignalStatus.OVERTURNED,
        action__in=["freeze", "cut"],
        fired_at__gte=p["start"],
    ):
        grew.setdefault((s.code, str(s.ruleset_version)), set()).add(s.case_id or 0)
    assert grew
    was = {(r.code, r.version): r.k for r in before.rates}
    now = {(r.code, r.version): r.k for r in after.rates}
    assert {key: now[key] - was.get(key, 0) for key in grew} == {key: len(ids) for key, ids in grew.items()}

    # The refresh is idempotent: counting the closed days again changes no row.
    dashboard_refresh(rebuild=True)
    assert closed_days_kept() == kept
    call_command("verify_dashboard", stdout=(out := StringIO()))
    assert "match the base tables" in out.getvalue()


def test_a_kept_day_that_drifts_is_named_by_verify_dashboard(seeded):
    row = DailyFigure.objects.filter(figure="freeze").order_by("day").first()
    assert row is not None
    DailyFigure.objects.filter(pk=row.pk).update(n=row.n + 5)
    with pytest.raises(CommandError) as refused:
        call_command("verify_dashboard", "--days", "400", stdout=StringIO())
    assert f"{row.day} freeze {row.key}: dashboard {row.n + 5}, tables {row.n}" in str(refused.value)
    dashboard_refresh(days=[row.day])
    call_command("verify_dashboard", "--days", "400", stdout=StringIO())


def test_today_kept_then_a_late_commit_is_still_counted_once(ruleset, manager):
    """Today's kept part and what came since add up to the direct count: a change committed after the refresh with
    a timestamp before the kept instant (within the late-commit margin) is counted, and none twice."""
    from tests.factories import flag, make_line

    today = timezone.localdate()
    for _ in range(3):
        flag(make_line(), "MULTI_HEAD")
    until = dashboard_keep_today(now=timezone.now() + late_commit())
    assert DailyFigure.objects.get(day=today, figure="freeze", key="MULTI_HEAD").n == 3
    assert daily_counts(today, today) == counts_direct(today, today)
    late = flag(make_line(), "MULTI_HEAD", now=until - timedelta(seconds=30))  # stamped before, committed after
    flag(make_line(), "OVERDUE")
    counts = daily_counts(today, today)
    assert counts == counts_direct(today, today)
    assert counts[("freeze", today, "MULTI_HEAD")] == 4
    # The next refresh keeps the late one too; the figures do not move.
    dashboard_keep_today(now=timezone.now() + late_commit())
    assert DayMember.objects.filter(day=today, figure="freeze", member=late.pk).exists()
    assert daily_counts(today, today) == counts


@pytest.mark.parametrize("days", ["0", "401", "ten", "-3"])
def test_verify_dashboard_refuses_a_bad_number_of_days(days):
    with pytest.raises(CommandError, match="--days must be a whole number from 1 to 400"):
        call_command("verify_dashboard", "--days", days, stdout=StringIO())


def test_days_kept_in_another_time_zone_are_counted_live_then_again(seeded, settings):
    start, end = window()
    kept = DailyFiguresDay.objects.count()
    settings.TIME_ZONE = "UTC"
    timezone.activate("UTC")
    try:
        # The kept days were whole days of Shanghai: in UTC they are counted live, and the refresh counts them again.
        start, end = window()
        assert daily_counts(start, end) == counts_direct(start, end)
        assert dashboard_refresh() >= kept - 1
        assert daily_counts(start, end) == counts_direct(start, end)
    finally:
        timezone.deactivate()


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (0, 0, 0.0, 1.0),
        (1, 3, 0.0615, 0.7923),
        (10, 100, 0.0552, 0.1744),
        (0, 10, 0.0, 0.2775),
        (3000, 3000, 0.9987, 1.0),
    ],
)
def test_the_overturn_interval_is_wilsons(k, n, low, high):
    got = wilson(k, n)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_a_rule_with_3_cases_has_a_wider_interval_than_one_with_3000():
    small, big = wilson(1, 3), wilson(1000, 3000)
    assert small[1] - small[0] > 0.7 > 0.04 > big[1] - big[0]


def counted_by(client, link: str) -> int:
    response = client.get(link)
    assert response.status_code == 200, link
    if urlsplit(link).path.startswith("/appeals"):
        if "figure_count" in response.context:
            return response.context["figure_count"]
        assert not response.context["next_query"], "one page holds them all"
        return len(response.context["rows"])
    return response.context["page"].count


def test_every_drill_down_lists_what_was_counted(seeded, manager, senior, senior2):
    for case in open_frozen_cases()[:2]:
        reviewer_unfreeze(case, senior, senior2)
    client = logged_in(manager)
    start, end = window()
    board = dashboard(start, end, user_id=manager.pk, operator_figures=True)
    checked = 0
    for name, chart in board.charts.items():
        points = [(n, link) for s in chart["series"] for n, link in zip(s["y"], s["links"], strict=True) if n]
        for n, link in points[:: max(1, len(points) // 8)]:
            assert counted_by(client, link) == n, (name, link)
            checked += 1
    for t in board.tiles:
        if t.link and isinstance(t.value, int):
            assert counted_by(client, t.link) == t.value, t.label
            checked += 1
    rates = [r for r in board.rates if r.k]
    assert rates, "the reviewers' unfreezes overturned freezes"
    for r in board.rates:
        key = f"{r.code}:{r.version}"
        assert counted_by(client, figure_link("adverse", start, end, key)) == r.n
        assert counted_by(client, figure_link("overturned", start, end, key)) == r.k
        checked += 2
    assert checked > 40


def test_the_drill_down_says_what_it_shows_and_keeps_it_across_filters(seeded, manager):
    client = logged_in(manager)
    start, end = window()
    board = dashboard(start, end, user_id=manager.pk, operator_figures=True)
    series = next(s for s in board.charts["freezes"]["series"] if s["name"] == "freeze:MULTI_HEAD" and any(s["y"]))
    i = max(range(len(series["y"])), key=lambda j: series["y"][j])
    body = client.get(series["links"][i]).content.decode()
    day = board.days[i].isoformat()
    assert re.search(
        rf"From the dashboard: <strong>cases frozen by a signal · multi-head borrowing · {day}</strong>", body
    )
    assert f'name="figure_from" value="{day}"' in body


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("start=2026-13-01", "Enter a valid date."),
        ("start=2026-01-10&end=2026-01-01", "&#x27;From&#x27; is after &#x27;to&#x27;"),
        ("end=2999-01-01", "The last day is in the future"),
        ("start=2020-01-01&end=2021-06-01", "The dashboard shows at most 400 days"),
        ("start=1999-01-01", "Enter a date from 2000-01-01 to 2999-12-31."),
    ],
)
def test_a_bad_date_range_is_refused_with_its_message(manager, query, message):
    response = logged_in(manager).get("/dashboard/?" + query)
    assert response.status_code == 400
    assert message in response.content.decode()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("figure=freeze", "A dashboard figure needs its first and last day"),
        (
            "figure=freeze&figure_from=2026-02-01&figure_to=2026-01-01",
            "The figure&#x27;s first day is after its last day",
        ),
        ("figure=freeze&figure_from=2024-01-01&figure_to=2026-01-01", "A figure spans at most 400 days"),
        ("figure=nope&figure_from=2026-01-01&figure_to=2026-01-01", "Select a valid choice."),
        (
            "figure=freeze&figure_from=2026-01-01&figure_to=2026-01-01&figure_key=a%27b",
            "A figure&#x27;s key is letters",
        ),
    ],
)
def test_a_bad_drill_down_is_refused_and_narrows_nothing(analyst, query, message):
    response = logged_in(analyst).get("/queue/?" + query)
    body = response.content.decode()
    assert message in body
    assert "From the dashboard" not in body


def test_csv_of_each_chart_has_the_tables_numbers(seeded, manager):
    client = logged_in(manager)
    start, end = window()
    board = dashboard(start, end, user_id=manager.pk, operator_figures=True)
    response = client.get(f"/dashboard/?start={start}&end={end}&csv=freezes")
    assert response["Content-Type"].startswith("text/csv")
    rows = response.content.decode("utf-8-sig").splitlines()
    assert rows[0].startswith("x,")
    assert len(rows) == len(board.days) + 1
    total = sum(sum(int(v) for v in row.split(",")[1:]) for row in rows[1:])
    assert total == sum(sum(s["y"]) for s in board.charts["freezes"]["series"])
    overturn = client.get(f"/dashboard/?start={start}&end={end}&csv=overturn").content.decode("utf-8-sig")
    assert overturn.splitlines()[0] == "rule,ruleset_version,frozen_or_cut,overturned,rate,wilson95_low,wilson95_high"
    assert client.get("/dashboard/?csv=nope").status_code == 400


def test_home_is_the_dashboard_for_managers_and_the_queue_for_analysts(manager, analyst, senior, auditor):
    assert logged_in(manager).get("/")["Location"] == "/dashboard/"
    assert logged_in(auditor).get("/")["Location"] == "/dashboard/"
    assert logged_in(analyst).get("/")["Location"] == "/queue/"
    assert logged_in(senior).get("/")["Location"] == "/queue/"
    queue = logged_in(analyst).get("/queue/").content.decode()
    assert 'hx-get="/my-work/" hx-trigger="load"' in queue  # the queue's head loads the analyst's own figures


def test_decisions_per_operator_are_for_managers_only(seeded, manager, analyst):
    assert 'id="chart-operators"' in logged_in(manager).get("/dashboard/").content.decode()
    page = logged_in(analyst).get("/dashboard/")
    assert page.status_code == 200
    assert 'id="chart-operators"' not in page.content.decode()
    assert logged_in(analyst).get("/dashboard/?csv=operators").status_code == 400


def test_my_work_shows_my_cases_their_clock_and_todays_throughput(seeded, analyst):
    mine = list(Case.objects.filter(status=CaseStatus.OPEN, appeal_state="").order_by("id")[:3])
    Case.objects.filter(pk__in=[c.pk for c in mine]).update(assignee=analyst)
    first = mine[0]
    frozen = first.line.status == LineStatus.FROZEN
    services.case_decide(
        case_id=first.pk,
        actor=op(analyst),
        kind="keep_frozen" if frozen else "cut_limit",
        reason_code="evidence_confirmed",
        note="",
        expected_version=Case.objects.get(pk=first.pk).version,
        idempotency_key=uuid.uuid4().hex,
        new_limit=None if frozen else first.line.limit / 2,
    )
    response = logged_in(analyst).get("/my-work/")
    open_mine = Case.objects.exclude(status=CaseStatus.RESOLVED).filter(assignee=analyst)
    assert response.context["counts"]["open"] == open_mine.count()
    assert [r["id"] for r in response.context["rows"]] == list(
        open_mine.order_by("sla_due_at", "id").values_list("id", flat=True)
    )
    assert response.context["done_today"] == 1
    assert counted_by(logged_in(analyst), response.context["done_link"]) == 1
    strip = logged_in(analyst).get("/my-work/", HTTP_HX_REQUEST="true").content.decode()
    assert f"{open_mine.count()} cases assigned to me" in strip
    assert "1 case decided or reviewed today" in strip


def test_the_dashboard_costs_a_fixed_number_of_queries(seeded, manager, django_assert_max_num_queries):
    client = logged_in(manager)
    client.get("/dashboard/")
    with django_assert_max_num_queries(24):
        assert client.get("/dashboard/").status_code == 200


def test_the_figures_of_now_are_planned_for_their_values_however_often_the_connection_ran_them(seeded):
    """psycopg prepares a statement its connection ran 5 times; PostgreSQL then plans it once for any value
    (generic), and a plan that does not know the status is 'frozen' cannot use the partial indexes: at 1M accounts
    the figures of now took twice as long in every long-lived connection (bench/dashboard.py)."""
    from django.db import connection

    from riskops.dashboard.selectors import now_tiles

    for _ in range(12):
        now_tiles(None)
    with connection.cursor() as cur:
        cur.execute(
            # The figures with bound values (the lines cut now has none: its one plan knows its constants).
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
            """ WHERE statement LIKE '%%SUM("accounts_creditline"."outstanding")%%'"""
            """ OR statement LIKE '%%"accounts_case"."risk_tier" AS "risk_tier"%%'"""
        )
        plans = cur.fetchall()
    assert len(plans) == 2, plans
    assert [(statement[:40], generic) for statement, generic, _custom in plans if generic] == []


def test_the_refresh_counts_yesterday_again_only_until_its_late_commits_are_in(ruleset):
    from accounts.figures import day_start

    today = timezone.localdate()
    if timezone.now() < day_start(today) + late_commit():
        pytest.skip("within the late-commit margin after midnight, yesterday is counted again on every refresh")
    assert dashboard_refresh() == 400  # every closed day of DASHBOARD_DAYS, once
    assert dashboard_refresh() == 0  # nothing new: yesterday was counted after its margin
    DailyFiguresDay.objects.filter(day=today - timedelta(days=1)).update(computed_at=day_start(today))
    assert dashboard_refresh() == 1  # counted before its late commits could be in: again
    assert dashboard_refresh() == 0
