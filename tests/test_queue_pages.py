"""The queue and case pages through Django's test client, on the real database.

Cases are flagged by the real engine at the real clock; pages are read in English unless a test
is about Chinese.
"""

from __future__ import annotations

import html
import json
import re
import uuid
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import services
from accounts.engine import evaluate_lines
from accounts.models import (
    Case,
    CaseStatus,
    CreditLine,
    Decision,
    DecisionStatus,
    LineStatus,
    Note,
    Signal,
    SignalStatus,
)
from accounts.selectors import queue as selectors
from riskops.core.audit import Actor
from riskops.models import AuditEvent
from tests.factories import (
    flag,
    frozen_multi_head_case,
    inquiry,
    installment,
    make_line,
    make_operator,
)
from tests.helpers import EN, STALE, fresh, logged_in, messages_of, page

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ruleset")]

ZH = {"accept-language": "zh-hans"}


# --- helpers


def rows(response) -> list[int]:
    """The case ids of the queue's rows, top to bottom."""
    return [int(i) for i in re.findall(r'data-row-href="/cases/(\d+)/"', response.content.decode())]


def alerts(response) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'class="error" role="alert">([^<]*)<', response.content.decode())]


def next_link(response) -> str | None:
    """The "Next page" link, resolved against the queue's URL as a browser would."""
    found = re.search(r'<a class="more" href="([^"]+)"', response.content.decode())
    return urljoin("/queue/", html.unescape(found.group(1))) if found else None


def decision_post(case: Case, **data) -> dict:
    """What the decision form posts: the rendered version and a one-time token."""
    return {
        "kind": "keep_frozen",
        "reason_code": "evidence_confirmed",
        "note": "",
        "new_limit": "",
        "version": Case.objects.get(pk=case.pk).version,
        "token": uuid.uuid4().hex,
        **data,
    }


# --- 1. filters


@pytest.fixture
def queue(analyst, analyst2):
    """Five cases covering every filter; the resolved one never shows unless asked for."""
    now = timezone.now()
    t1 = flag(make_line(outstanding="60000.00", phone="13900001111"), "MULTI_HEAD")
    overdue = flag(make_line(outstanding="8000.00", phone="13900002222"), "OVERDUE")
    stale = flag(make_line(outstanding="3000.00", phone="13900003333"), "PROFILE_STALE")
    abnormal = flag(make_line(outstanding="20000.00", phone="13900004444"), "ABNORMAL_USE")
    done = flag(make_line(outstanding="1000.00", phone="13900005555"), "MULTI_HEAD")
    services.case_claim(case_id=t1.pk, actor=Actor.operator(analyst))
    services.case_claim(case_id=stale.pk, actor=Actor.operator(analyst2))
    for case, kind in ((abnormal, "escalate"), (done, "keep_frozen")):
        services.case_decide(
            case_id=case.pk,
            actor=Actor.operator(analyst),
            kind=kind,
            reason_code="evidence_confirmed",
            expected_version=None,
            idempotency_key=uuid.uuid4().hex,
        )
    # The engine opened them all just now; age two of them and move their SLA clocks.
    Case.objects.filter(pk=overdue.pk).update(opened_at=now - timedelta(days=3), sla_due_at=now - timedelta(hours=1))
    Case.objects.filter(pk=stale.pk).update(opened_at=now - timedelta(days=10), sla_due_at=now + timedelta(hours=2))
    return SimpleNamespace(t1=t1, overdue=overdue, stale=stale, abnormal=abnormal, done=done)


def test_the_queue_lists_unresolved_cases_by_priority_with_masked_borrowers(analyst, queue):
    response = logged_in(analyst).get("/queue/", headers=EN)

    assert response.status_code == 200
    assert rows(response) == [queue.t1.pk, queue.abnormal.pk, queue.overdue.pk, queue.stale.pk]
    body = page(response)
    assert "4 cases" in body
    assert "139****1111" in body and "13900001111" not in body
    assert "¥60,000.00" in body


FILTERS = [
    ("status=escalated", ["abnormal"]),
    ("status=open", ["t1", "overdue", "stale"]),
    ("status=resolved", ["done"]),
    ("family=OVERDUE", ["overdue"]),
    ("family=PROFILE_STALE", ["stale"]),
    ("family=MULTI_HEAD", ["t1"]),
    ("tier=1", ["t1"]),
    ("tier=2", ["abnormal", "overdue"]),
    ("tier=3", ["stale"]),
    ("assignee=me", ["t1"]),
    ("assignee=unassigned", ["abnormal", "overdue"]),
    ("sla=breached", ["overdue"]),
    ("sla=due_soon", ["stale"]),
    ("exposure_min=5000&exposure_max=25000", ["abnormal", "overdue"]),
    ("exposure_min=60000", ["t1"]),
    ("q=3333", ["stale"]),
    ("q=9999", []),
    ("family=MULTI_HEAD&assignee=unassigned", []),
    ("status=open&sla=breached&tier=2", ["overdue"]),
]


@pytest.mark.parametrize(("query", "expected"), FILTERS, ids=[q for q, _ in FILTERS])
def test_each_queue_filter_selects_its_cases(analyst, queue, query, expected):
    response = logged_in(analyst).get(f"/queue/?{query}", headers=EN)

    assert response.status_code == 200
    assert alerts(response) == []
    assert rows(response) == [getattr(queue, name).pk for name in expected]
    if not expected:
        assert "No case matches these filters." in page(response)


def test_the_opened_between_filter_uses_the_operators_calendar_days(analyst, queue):
    today = timezone.localdate()
    query = f"opened_from={today - timedelta(days=4)}&opened_to={today - timedelta(days=2)}"

    response = logged_in(analyst).get(f"/queue/?{query}", headers=EN)

    assert rows(response) == [queue.overdue.pk]
    assert rows(logged_in(analyst).get(f"/queue/?opened_from={today}", headers=EN)) == [
        queue.t1.pk,
        queue.abnormal.pk,
    ]


@pytest.mark.parametrize(("due_soon_hours", "due_soon"), [(8, True), (2, False)])
def test_the_sla_clock_and_the_due_soon_filter_agree_on_the_setting(analyst, settings, due_soon_hours, due_soon):
    settings.CASE_DUE_SOON_HOURS = due_soon_hours
    case = frozen_multi_head_case()
    Case.objects.filter(pk=case.pk).update(sla_due_at=timezone.now() + timedelta(hours=5))
    client = logged_in(analyst)

    everything = client.get("/queue/", headers=EN).content.decode()
    filtered = client.get("/queue/?sla=due_soon", headers=EN)

    assert ('<span class="sla due-soon">4h 59m left</span>' in everything) == due_soon
    assert ('<span class="sla ok">4h 59m left</span>' in everything) == (not due_soon)
    assert rows(filtered) == ([case.pk] if due_soon else [])


@pytest.mark.parametrize("spelling", ["exact", "lower", "padded"])
def test_search_finds_a_case_by_account_number(analyst, queue, spelling):
    account_no = queue.abnormal.line.account_no
    q = {"exact": account_no, "lower": account_no.lower(), "padded": f"  {account_no} "}[spelling]

    response = logged_in(analyst).get("/queue/", {"q": q}, headers=EN)

    assert rows(response) == [queue.abnormal.pk]


def test_filters_live_in_the_url_and_the_form_shows_them(analyst, queue):
    response = logged_in(analyst).get("/queue/?status=open&family=OVERDUE&sla=breached", headers=EN)

    assert rows(response) == [queue.overdue.pk]
    body = response.content.decode()
    assert '<option value="open" selected>' in body
    assert '<option value="OVERDUE" selected>' in body
    assert '<option value="breached" selected>' in body
    # Bulk actions come back to the same filtered queue.
    assert 'name="query" value="status=open&amp;family=OVERDUE&amp;sla=breached"' in body


BAD_FILTERS = [
    ("exposure_min=abc", "Enter a number."),
    ("exposure_min=-5", "Ensure this value is greater than or equal to 0."),
    ("q=12%2034", "Search by an account number (letters, digits and . _ : / -) or the last 4 digits of a phone number"),
    ("q=JB*12", "Search by an account number (letters, digits and . _ : / -) or the last 4 digits of a phone number"),
    ("opened_from=2026-11-20&opened_to=2026-11-10", "'Opened from' is after 'opened to'"),
    ("opened_from=yesterday", "Enter a valid date."),
    ("exposure_min=500&exposure_max=100", "The exposure range is empty: 'from' is above 'to'"),
    ("tier=9", "Select a valid choice. 9 is not one of the available choices."),
    (
        "status=escalated&q=%3Cb%3E",
        "Search by an account number (letters, digits and . _ : / -) or the last 4 digits of a phone number",
    ),
]


@pytest.mark.parametrize(("query", "error"), BAD_FILTERS, ids=[q for q, _ in BAD_FILTERS])
def test_bad_filter_input_shows_why_and_falls_back_to_the_whole_queue(analyst, queue, query, error):
    response = logged_in(analyst).get(f"/queue/?{query}", headers=EN)

    assert response.status_code == 200
    assert alerts(response) == [error]
    assert rows(response) == [queue.t1.pk, queue.abnormal.pk, queue.overdue.pk, queue.stale.pk]


# --- 2. keyset pages


def priority_order() -> list[int]:
    """Severity, then exposure (both highest first), then age: computed here, not by the page's key."""
    cases = Case.objects.exclude(status="resolved").values_list("pk", "severity_rank", "exposure")
    return [pk for pk, rank, exposure in sorted(cases, key=lambda c: (-c[1], -c[2], c[0]))]


@pytest.fixture
def thirteen_cases():
    cases = []
    for i in range(13):
        # Repeated exposures make the id the tie-breaker; every third case is medium.
        family = "PROFILE_STALE" if i % 3 == 0 else "MULTI_HEAD"
        cases.append(flag(make_line(outstanding=f"{1000 * (i % 5) + 1000}.00"), family))
    return cases


def test_walking_next_page_links_visits_every_case_once_in_priority_order(analyst, thirteen_cases, settings):
    settings.QUEUE_PAGE_SIZE = 5
    client = logged_in(analyst)
    url: str | None = "/queue/"
    visited: list[int] = []
    sizes = []
    while url:
        response = client.get(url, headers=EN)
        assert response.status_code == 200
        visited += rows(response)
        sizes.append(len(rows(response)))
        assert ("First page" in page(response)) == (url != "/queue/")
        url = next_link(response)

    assert sizes == [5, 5, 3]
    assert visited == priority_order()
    assert len(set(visited)) == 13


def test_next_page_links_keep_the_filters(analyst, thirteen_cases, settings):
    settings.QUEUE_PAGE_SIZE = 5
    client = logged_in(analyst)
    multi_head = [pk for pk in priority_order() if Signal.objects.filter(case_id=pk, code="MULTI_HEAD").exists()]
    assert len(multi_head) == 8

    first = client.get("/queue/?family=MULTI_HEAD", headers=EN)
    link = next_link(first)
    assert link is not None
    assert parse_qs(urlsplit(link).query)["family"] == ["MULTI_HEAD"]
    second = client.get(link, headers=EN)

    assert rows(first) + rows(second) == multi_head
    assert next_link(second) is None


def test_the_queue_counts_at_most_a_capped_number_of_rows(analyst, thirteen_cases, monkeypatch):
    client = logged_in(analyst)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get("/queue/", headers=EN)

    counts = [q["sql"] for q in ctx.captured_queries if "COUNT(" in q["sql"].upper()]
    assert len(counts) == 1
    assert f"LIMIT {selectors.QUEUE_COUNT_CAP + 1}" in counts[0]
    assert "13 cases" in page(response)

    monkeypatch.setattr(selectors, "QUEUE_COUNT_CAP", 10)
    assert "more than 10 cases" in page(client.get("/queue/", headers=EN))


@pytest.mark.parametrize("after", ["abc", "1:2:3", ":", "12", "", "x:1"])
def test_a_junk_cursor_shows_the_first_page(analyst, thirteen_cases, settings, after):
    settings.QUEUE_PAGE_SIZE = 5
    client = logged_in(analyst)

    response = client.get("/queue/", {"after": after}, headers=EN)

    assert response.status_code == 200
    assert rows(response) == priority_order()[:5]


def test_a_cursor_past_the_end_shows_an_empty_page(analyst, thirteen_cases):
    response = logged_in(analyst).get("/queue/", {"after": f"{2**62}:1"}, headers=EN)

    assert response.status_code == 200
    assert rows(response) == []
    assert "No case matches these filters." in page(response)


# --- 3. query counts


def many_cases(n: int, analyst, analyst2) -> list[Case]:
    cases = [flag(make_line(outstanding=f"{1000 + i}.00", phone=f"1380000{i:04d}"), "MULTI_HEAD") for i in range(n)]
    for i, case in enumerate(cases[: n // 2]):
        services.case_claim(case_id=case.pk, actor=Actor.operator(analyst if i % 2 else analyst2))
    return cases


# The user, their roles with their permissions (one query), the capped count, the page of cases (with line,
# borrower and assignee), their signals.
QUEUE_QUERIES = 5


@pytest.mark.parametrize("n", [3, 30])
@pytest.mark.parametrize(
    "query", ["", "family=MULTI_HEAD&assignee=unassigned&tier=2", "q=0001", "status=open&exposure_min=1000"]
)
def test_the_queue_costs_the_same_queries_whatever_the_number_of_cases(
    analyst, analyst2, django_assert_num_queries, n, query
):
    many_cases(n, analyst, analyst2)
    client = logged_in(analyst)

    with django_assert_num_queries(QUEUE_QUERIES):
        response = client.get(f"/queue/?{query}", headers=EN)

    assert response.status_code == 200
    assert rows(response)


@pytest.mark.parametrize("n", [3, 30])
def test_the_queue_of_an_operator_who_assigns_costs_one_more_query_for_the_operators(
    analyst, analyst2, senior, django_assert_num_queries, n
):
    many_cases(n, analyst, analyst2)
    client = logged_in(senior)

    with django_assert_num_queries(QUEUE_QUERIES + 1):
        response = client.get("/queue/", headers=EN)

    assert len(rows(response)) == n
    assert f'<option value="{analyst.pk}">ana</option>' in response.content.decode()


def busy_history(case: Case, analyst, senior, senior2, notes: int) -> None:
    """Notes by several authors, a reviewed proposal, reminders and claims: many rows of every history kind."""
    line = case.line
    authors = [analyst, senior, senior2]
    for i in range(notes):
        services.note_add(case_id=case.pk, actor=Actor.operator(authors[i % 3]), text=f"第 {i} 条备注")
    for user in authors:
        services.case_claim(case_id=case.pk, actor=Actor.operator(user))
        services.cases_assign(case_ids=[case.pk], assignee_id=None, actor=Actor.operator(senior))
        services.case_decide(
            case_id=case.pk,
            actor=Actor.operator(user),
            kind="educate",
            reason_code="other",
            expected_version=None,
            idempotency_key=uuid.uuid4().hex,
        )
    proposal = services.case_decide(
        case_id=case.pk,
        actor=Actor.operator(analyst),
        kind="unfreeze",
        reason_code="income_verified",
        expected_version=None,
        idempotency_key=uuid.uuid4().hex,
    ).decision
    services.decision_review(decision_id=proposal.pk, actor=Actor.operator(senior2), approve=True)
    # New evidence freezes it again: a second case, a new signal, more line changes.
    for i in range(5):
        inquiry(line, timezone.now() - timedelta(hours=i + 1), f"新机构{i}")
    evaluate_lines([line.pk])


def few_and_many(families: tuple[str, ...], analyst, senior, senior2) -> tuple[Case, Case]:
    few = flag(make_line(), *families, inquiries=4)
    services.note_add(case_id=few.pk, actor=Actor.operator(analyst), text="一条备注")
    busy = flag(make_line(), *families, inquiries=12)
    busy_history(busy, analyst, senior, senior2, notes=12)
    many = Case.objects.exclude(status="resolved").get(line=busy.line)
    assert Note.objects.filter(line=busy.line).count() == 12
    assert Decision.objects.filter(line=busy.line).count() == 4
    assert Case.objects.filter(line=busy.line).count() == 2
    return few, many


# The user, their roles with their permissions (one query), the case (with line, borrower and assignee), signals, one query per kind of evidence cited (inquiry, installment, drawdown, transfer,
# income record: at most 5), decisions, other cases, line changes, notes, audit, appeals, the borrower's side
# (their audited views and updates, the messages sent, their profile documents: 3), the account's exemptions from
# a rule, and four timeline series (drawdowns, installments, inquiries, risky transfers). Rows never add queries;
# kinds of evidence do.
CASE_QUERIES = {("MULTI_HEAD",): 19, ("MULTI_HEAD", "OVERDUE", "ABNORMAL_USE", "PROFILE_STALE"): 23}


@pytest.mark.parametrize("families", list(CASE_QUERIES), ids=["one-family", "four-families"])
def test_the_case_page_costs_the_same_queries_for_a_quiet_and_a_busy_account(
    analyst, senior, senior2, django_assert_num_queries, families
):
    few, many = few_and_many(families, analyst, senior, senior2)
    client = logged_in(senior)

    for case in (few, many):
        with django_assert_num_queries(CASE_QUERIES[families]):
            response = client.get(f"/cases/{case.pk}/", headers=EN)
        assert response.status_code == 200

    body = page(response)
    assert body.count("第 ") >= 12  # the busy account's notes are all there


# --- 4. the case page


def test_the_case_page_shows_the_borrower_masked_and_never_the_raw_values(analyst):
    case = frozen_multi_head_case(name="王小明", phone="13812345678", national_id="330102199001011234")

    response = logged_in(analyst).get(f"/cases/{case.pk}/", headers=EN)

    assert response.status_code == 200
    body = page(response)
    assert '<dd id="borrower-name">王*明</dd>' in body
    assert '<dd id="borrower-phone">138****5678</dd>' in body
    assert '<dd id="borrower-id">****1234</dd>' in body
    for raw in ("王小明", "13812345678", "330102199001011234"):
        assert raw not in body


def test_the_case_page_explains_the_freeze_with_its_numbers_and_evidence(analyst):
    case = frozen_multi_head_case()
    signal = Signal.objects.get(line=case.line)
    inquiry_ids = signal.evidence["events"]["inquiry"]
    client = logged_in(analyst)

    response = client.get(f"/cases/{case.pk}/", headers=EN)

    body = page(response)
    assert "5 inquiries from 4 institutions in 30 days; threshold 4 from 3" in body
    assert "ruleset v1" in body
    links = re.findall(r'href="(/events/inquiry/\d+/)"', body)
    assert sorted(links) == sorted(f"/events/inquiry/{i}/" for i in inquiry_ids)
    for link in links:
        event = client.get(link, headers=EN)
        assert event.status_code == 200
        assert case.line.account_no in page(event)


def test_the_case_page_carries_the_timeline_as_json(analyst):
    case = frozen_multi_head_case()

    body = page(logged_in(analyst).get(f"/cases/{case.pk}/", headers=EN))

    found = re.search(r'<script id="timeline-data" type="application/json">(.*?)</script>', body, re.S)
    assert found, "no timeline data"
    timeline = json.loads(found.group(1))
    assert len(timeline["lanes"]) == 7
    by_label = {s["label"]: s for s in timeline["series"]}
    assert len(by_label["inquiry"]["x"]) == 5
    assert by_label["signal fired"]["text"] == ["multi-head (high)"]
    assert by_label["line change"]["text"] == ["freeze: active → frozen, limit ¥20,000.00"]


def test_upstream_text_cannot_break_out_of_the_timeline_script(analyst):
    case = frozen_multi_head_case()
    inquiry(case.line, timezone.now() - timedelta(hours=1), "</script><script>alert(1)</script>")

    response = logged_in(analyst).get(f"/cases/{case.pk}/", headers=EN)

    assert "<script>alert(1)</script>" not in response.content.decode()
    found = re.search(
        r'<script id="timeline-data" type="application/json">(.*?)</script>', response.content.decode(), re.S
    )
    assert found is not None
    timeline = json.loads(found.group(1))
    inquiries = next(s for s in timeline["series"] if s["label"] == "inquiry")
    assert "</script><script>alert(1)</script>" in inquiries["text"]


def test_the_case_page_shows_the_history_of_the_account(analyst, senior):
    case = frozen_multi_head_case()
    services.note_add(case_id=case.pk, actor=Actor.operator(analyst), text="已致电借款人")
    proposed(case, analyst)

    body = page(logged_in(senior).get(f"/cases/{case.pk}/", headers=EN))

    assert 'id="proposal"' in body and 'id="approve"' in body
    assert "ana proposed: unfreeze at a limit of ¥20,000.00" in body
    decisions = body.split('id="decisions"')[1].split("</table>")[0]
    assert "unfreeze · ¥20,000.00" in decisions and "proposed, awaiting a second reviewer" in decisions
    changes = body.split("Limit and status changes")[1].split("</table>")[0]
    assert "active → frozen" in changes
    assert "已致电借款人" in body
    audit = body.split('id="audit"')[1].split("</table>")[0]
    for action in ("signal.fire", "line.freeze", "case.open", "note.add", "decision.propose"):
        assert f"<code>{action}</code>" in audit


def test_the_proposer_sees_no_approve_button_on_their_own_proposal(senior):
    case = frozen_multi_head_case()
    services.case_decide(
        case_id=case.pk,
        actor=Actor.operator(senior),
        kind="unfreeze",
        reason_code="income_verified",
        expected_version=None,
        idempotency_key=uuid.uuid4().hex,
    )

    body = page(logged_in(senior).get(f"/cases/{case.pk}/", headers=EN))

    assert 'id="own-proposal"' in body
    assert 'id="approve"' not in body


def test_the_case_page_speaks_chinese(analyst):
    case = frozen_multi_head_case()

    response = logged_in(analyst).get(f"/cases/{case.pk}/", headers=ZH)

    assert response.status_code == 200
    body = page(response)
    assert '<html lang="zh-hans">' in body
    assert "30 天内 4 家机构查询征信 5 次；阈值为 3 家机构 4 次" in body
    assert "借款人" in body and "多头借贷" in body and "已冻结" in body
    assert "王*明" in body


def test_the_queue_speaks_chinese(analyst):
    frozen_multi_head_case()

    response = logged_in(analyst).get("/queue/", headers=ZH)

    assert response.status_code == 200
    assert '<html lang="zh-hans">' in response.content.decode()
    assert "已冻结" in page(response)


# --- 5. actions


def test_a_decision_posted_from_the_page_is_applied_and_confirmed(analyst):
    case = frozen_multi_head_case()
    client = logged_in(analyst)

    response = client.post(f"/cases/{case.pk}/decide/", decision_post(case), headers=EN)

    assert response.status_code == 302
    assert response["Location"] == f"/cases/{case.pk}/"
    shown = client.get(response["Location"], headers=EN)
    assert messages_of(shown) == ["Decision applied: keep frozen."]
    assert (fresh(case).status, fresh(case).outcome) == (CaseStatus.RESOLVED, "kept_frozen")
    assert 'id="decision-form"' not in shown.content.decode()


def test_an_unfreeze_needing_four_eyes_is_confirmed_as_a_proposal(analyst):
    case = frozen_multi_head_case()
    client = logged_in(analyst)

    response = client.post(
        f"/cases/{case.pk}/decide/", decision_post(case, kind="unfreeze", reason_code="income_verified"), follow=True
    )

    assert messages_of(response) == ["Proposed: a different senior reviewer must approve it before it applies."]
    assert fresh(case).status == CaseStatus.AWAITING_APPROVAL
    assert fresh(case.line).status == LineStatus.FROZEN


def test_a_stale_form_gets_a_warning_and_the_fresh_state(analyst, analyst2):
    case = frozen_multi_head_case()
    form = decision_post(case)  # rendered before someone else acts
    services.case_claim(case_id=case.pk, actor=Actor.operator(analyst2))
    client = logged_in(analyst)

    response = client.post(f"/cases/{case.pk}/decide/", form, headers=EN, follow=True)

    assert response.redirect_chain == [(f"/cases/{case.pk}/", 302)]
    assert messages_of(response) == [STALE]
    body = page(response)
    assert '<dd id="assignee">bo</dd>' in body
    # bo holds the case now: deciding it is theirs, so the page no longer offers the form (tests/test_roles.py).
    assert 'id="decision-form"' not in body
    assert fresh(case).status == CaseStatus.OPEN
    assert not Decision.objects.exists()


@pytest.mark.parametrize(
    ("change", "field", "error"),
    [
        ({"kind": "thaw"}, "kind", "Select a valid choice. thaw is not one of the available choices."),
        ({"reason_code": ""}, "reason_code", "This field is required."),
        ({"new_limit": "lots"}, "new_limit", "Enter a number."),
        ({"new_limit": "-1"}, "new_limit", "Ensure this value is greater than or equal to 0."),
        ({"version": ""}, "version", "This field is required."),
    ],
)
def test_an_invalid_decision_form_is_shown_again_with_its_errors(analyst, change, field, error):
    case = frozen_multi_head_case()
    before = (fresh(case).status, fresh(case).version)

    response = logged_in(analyst).post(f"/cases/{case.pk}/decide/", decision_post(case, **change), headers=EN)

    assert response.status_code == 400
    assert response.context["decision_form"].errors[field] == [error]
    if field != "version":  # hidden fields' errors are not shown beside a widget
        assert error in alerts(response)
    assert (fresh(case).status, fresh(case).version) == before
    assert not Decision.objects.exists()


def test_a_double_submitted_form_is_recorded_once(analyst):
    case = frozen_multi_head_case()
    form = decision_post(case, kind="educate", reason_code="other")
    client = logged_in(analyst)

    first = client.post(f"/cases/{case.pk}/decide/", form, headers=EN, follow=True)
    second = client.post(f"/cases/{case.pk}/decide/", form, headers=EN, follow=True)

    assert messages_of(first) == ["Decision applied: send credit-education notice."]
    assert messages_of(second) == ["This form was already submitted; the decision was recorded once."]
    assert Decision.objects.filter(case=case).count() == 1


def proposed(case: Case, user) -> Decision:
    return services.case_decide(
        case_id=case.pk,
        actor=Actor.operator(user),
        kind="unfreeze",
        reason_code="income_verified",
        expected_version=None,
        idempotency_key=uuid.uuid4().hex,
    ).decision


def test_a_second_senior_reviewer_approves_from_the_page(analyst, senior):
    case = frozen_multi_head_case()
    proposal = proposed(case, analyst)

    response = logged_in(senior).post(f"/decisions/{proposal.pk}/approve/", {"note": "收入已核实"}, follow=True)

    assert messages_of(response) == ["Proposal approved and applied."]
    assert fresh(proposal).status == DecisionStatus.APPROVED
    assert fresh(case.line).status == LineStatus.ACTIVE
    assert '<span id="line-status" class="status status-active">' in response.content.decode()


def test_a_second_senior_reviewer_rejects_from_the_page(analyst, senior):
    case = frozen_multi_head_case()
    proposal = proposed(case, analyst)

    response = logged_in(senior).post(f"/decisions/{proposal.pk}/reject/", follow=True)

    assert messages_of(response) == ["Proposal rejected."]
    assert fresh(proposal).status == DecisionStatus.REJECTED
    assert fresh(case).status == CaseStatus.OPEN
    assert fresh(case.line).status == LineStatus.FROZEN


def test_the_proposer_cannot_approve_through_the_url(senior):
    case = frozen_multi_head_case()
    proposal = proposed(case, senior)

    response = logged_in(senior).post(f"/decisions/{proposal.pk}/approve/", headers=EN)

    assert response.status_code == 403
    assert "You cannot approve or reject your own proposal; another senior reviewer must" in page(response)
    assert fresh(proposal).status == DecisionStatus.PROPOSED
    assert fresh(case.line).status == LineStatus.FROZEN


def test_an_analyst_cannot_approve_through_the_url(analyst, analyst2):
    case = frozen_multi_head_case()
    proposal = proposed(case, analyst)

    response = logged_in(analyst2).post(f"/decisions/{proposal.pk}/approve/", headers=EN)

    assert response.status_code == 403
    assert fresh(proposal).status == DecisionStatus.PROPOSED


def test_claiming_and_releasing_from_the_case_page(analyst):
    case = frozen_multi_head_case()
    client = logged_in(analyst)

    claimed = client.post(f"/cases/{case.pk}/claim/", headers=EN, follow=True)

    assert messages_of(claimed) == ["Case claimed."]
    assert fresh(case).assignee_id == analyst.pk
    assert 'id="release"' in claimed.content.decode()

    released = client.post(f"/cases/{case.pk}/release/", headers=EN, follow=True)

    assert messages_of(released) == ["Case released."]
    assert fresh(case).assignee_id is None


def test_releasing_someone_elses_case_without_the_role_says_nothing_was_released(analyst, analyst2):
    case = frozen_multi_head_case()
    services.case_claim(case_id=case.pk, actor=Actor.operator(analyst2))

    response = logged_in(analyst).post(f"/cases/{case.pk}/release/", headers=EN, follow=True)

    assert messages_of(response) == ["Nothing to release: the case is not assigned to you."]
    assert fresh(case).assignee_id == analyst2.pk


def test_claiming_a_case_someone_holds_shows_who(analyst, analyst2):
    case = frozen_multi_head_case()
    services.case_claim(case_id=case.pk, actor=Actor.operator(analyst2))

    response = logged_in(analyst).post(f"/cases/{case.pk}/claim/", headers=EN, follow=True)

    assert messages_of(response) == ["This case is already claimed by bo"]
    assert fresh(case).assignee_id == analyst2.pk


def test_notes_are_added_from_the_page(analyst):
    case = frozen_multi_head_case()
    client = logged_in(analyst)

    response = client.post(f"/cases/{case.pk}/notes/", {"text": "借款人称下周还款"}, headers=EN, follow=True)

    assert messages_of(response) == ["Note added."]
    assert list(Note.objects.values_list("text", "author_id")) == [("借款人称下周还款", analyst.pk)]
    assert "借款人称下周还款" in page(response)

    empty = client.post(f"/cases/{case.pk}/notes/", {"text": ""}, headers=EN, follow=True)

    assert messages_of(empty) == ["A note cannot be empty (at most 5,000 characters)."]
    assert Note.objects.count() == 1


def test_revealed_values_appear_only_to_the_operator_who_revealed_them_and_are_not_cached(senior, senior2, settings):
    case = frozen_multi_head_case(name="王小明", phone="13812345678", national_id="330102199001011234")
    client = logged_in(senior)

    posted = client.post(
        f"/cases/{case.pk}/reveal/", {"targets": ["phone", "national_id"], "reason": "借款人来电，核实身份"}, headers=EN
    )

    assert posted.status_code == 302 and posted["Location"].startswith(f"/cases/{case.pk}/?revealed=")
    assert "13812345678" not in posted["Location"] and "330102199001011234" not in posted["Location"]
    response = client.get(posted["Location"], headers=EN)
    assert response["Cache-Control"] == "no-store"
    body = page(response)
    assert '<dd id="borrower-phone"><mark>13812345678</mark></dd>' in body
    assert '<dd id="borrower-id"><mark>330102199001011234</mark></dd>' in body
    assert '<dd id="borrower-name">王*明</dd>' in body
    assert AuditEvent.objects.get(action="borrower.reveal").after == {"fields": ["national_id", "phone"]}

    again = page(client.get(f"/cases/{case.pk}/", headers=EN))
    assert "13812345678" not in again and "330102199001011234" not in again
    someone_else = page(logged_in(senior2).get(posted["Location"], headers=EN))
    assert "13812345678" not in someone_else
    settings.REVEAL_SECONDS = 0
    expired = client.get(posted["Location"], headers=EN, follow=True)
    assert "13812345678" not in page(expired)
    assert messages_of(expired) == ["The personal data is masked again; reveal it again if you still need it."]


def test_an_analyst_cannot_reveal_personal_data(analyst):
    case = frozen_multi_head_case(phone="13812345678")

    response = logged_in(analyst).post(
        f"/cases/{case.pk}/reveal/", {"targets": ["phone"], "reason": "借款人来电，核实身份"}, headers=EN
    )

    assert response.status_code == 403
    assert "13812345678" not in response.content.decode()
    assert not AuditEvent.objects.filter(action="borrower.reveal").exists()


def test_a_reveal_without_a_reason_is_refused(senior):
    case = frozen_multi_head_case(phone="13812345678")

    response = logged_in(senior).post(
        f"/cases/{case.pk}/reveal/", {"targets": ["phone"], "reason": "看看"}, headers=EN, follow=True
    )

    assert messages_of(response) == ["Choose what to reveal and type a reason of at least 10 characters."]
    assert "13812345678" not in response.content.decode()
    assert not AuditEvent.objects.filter(action="borrower.reveal").exists()


def test_re_evaluating_with_htmx_returns_only_the_signals_section(analyst):
    case = frozen_multi_head_case()
    client = logged_in(analyst)

    response = client.post(f"/cases/{case.pk}/reevaluate/", headers={**EN, "HX-Request": "true"})

    assert response.status_code == 200
    body = page(response)
    assert body.lstrip().startswith('<section id="signals"')
    assert "<html" not in body
    assert "Re-evaluated: 0 fired, 0 cleared, 0 suppressed." in body
    assert "5 inquiries from 4 institutions in 30 days; threshold 4 from 3" in body


def test_re_evaluating_shows_a_new_signal(analyst):
    case = frozen_multi_head_case()
    unrelated = make_line()  # overdue too, but not this case's account: it is not evaluated
    installment(case.line, timezone.localdate() - timedelta(days=31))
    installment(unrelated, timezone.localdate() - timedelta(days=31))

    response = logged_in(analyst).post(f"/cases/{case.pk}/reevaluate/", headers={**EN, "HX-Request": "true"})

    body = page(response)
    assert "Re-evaluated: 1 fired, 0 cleared, 0 suppressed." in body
    assert "An installment is 31 days overdue (" in body and "unpaid); threshold 30 days" in body
    assert not Signal.objects.filter(line=unrelated).exists()


def test_re_evaluating_without_htmx_redirects_with_the_result(analyst):
    case = frozen_multi_head_case()

    response = logged_in(analyst).post(f"/cases/{case.pk}/reevaluate/", headers=EN, follow=True)

    assert response.redirect_chain == [(f"/cases/{case.pk}/", 302)]
    assert messages_of(response) == ["Re-evaluated: 0 fired, 0 cleared, 0 suppressed."]


def test_bulk_assign_and_release_from_the_queue(senior, analyst):
    a, b, c = (frozen_multi_head_case() for _ in range(3))
    client = logged_in(senior)

    assigned = client.post(
        "/queue/bulk/",
        {"action": "assign", "case_ids": [a.pk, b.pk], "assignee": analyst.pk, "query": "family=MULTI_HEAD"},
        headers=EN,
    )

    assert assigned.status_code == 302
    assert assigned["Location"] == "/queue/?family=MULTI_HEAD"
    assert messages_of(client.get(assigned["Location"], headers=EN)) == ["2 cases assigned."]
    assert [fresh(x).assignee_id for x in (a, b, c)] == [analyst.pk, analyst.pk, None]
    assert AuditEvent.objects.filter(action="case.assign").count() == 2

    released = client.post("/queue/bulk/", {"action": "release", "case_ids": [a.pk, b.pk, c.pk]}, follow=True)

    assert messages_of(released) == ["2 cases released."]
    assert [fresh(x).assignee_id for x in (a, b, c)] == [None, None, None]


def test_bulk_assign_needs_an_operator(senior):
    case = frozen_multi_head_case()

    response = logged_in(senior).post(
        "/queue/bulk/", {"action": "assign", "case_ids": [case.pk]}, headers=EN, follow=True
    )

    assert messages_of(response) == ["Choose the operator to assign the cases to"]
    assert fresh(case).assignee_id is None


def test_bulk_assign_by_an_analyst_is_forbidden(analyst, analyst2):
    case = frozen_multi_head_case()

    response = logged_in(analyst).post(
        "/queue/bulk/", {"action": "assign", "case_ids": [case.pk], "assignee": analyst2.pk}, headers=EN
    )

    assert response.status_code == 403
    assert fresh(case).assignee_id is None


def test_bulk_re_evaluation_runs_the_engine_for_the_selected_accounts(analyst, django_capture_on_commit_callbacks):
    chosen, other = frozen_multi_head_case(), frozen_multi_head_case()
    for case in (chosen, other):
        installment(case.line, timezone.localdate() - timedelta(days=31))

    # The job's batches are sent after commit (and run in-process: Celery is eager in tests).
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in(analyst).post(
            "/queue/bulk/", {"action": "reevaluate", "case_ids": [chosen.pk]}, headers=EN, follow=True
        )

    from riskops.models import Job

    job = Job.objects.get()
    assert messages_of(response) == [f"Re-evaluation of 1 accounts started as job #{job.pk}."]
    assert (job.kind, job.status, job.selected, job.changed) == ("reevaluate", "succeeded", 1, 1)
    assert set(Signal.objects.filter(line=chosen.line, status=SignalStatus.ACTIVE).values_list("code", flat=True)) == {
        "MULTI_HEAD",
        "OVERDUE",
    }
    assert not Signal.objects.filter(line=other.line, code="OVERDUE").exists()


def test_next_case_opens_the_claimed_case(analyst):
    low = frozen_multi_head_case(outstanding="1000.00")
    top = frozen_multi_head_case(outstanding="9000.00")
    client = logged_in(analyst)

    response = client.post("/queue/next/", headers=EN)

    assert response.status_code == 302
    assert response["Location"] == f"/cases/{top.pk}/"
    assert (fresh(top).assignee_id, fresh(low).assignee_id) == (analyst.pk, None)


def test_next_case_with_none_left_goes_back_to_the_queue(analyst, analyst2):
    case = frozen_multi_head_case()
    services.case_claim(case_id=case.pk, actor=Actor.operator(analyst2))

    response = logged_in(analyst).post("/queue/next/", headers=EN, follow=True)

    assert response.redirect_chain == [("/queue/", 302)]
    assert messages_of(response) == ["No unassigned case is waiting. Well done."]


# --- roles


def test_an_auditor_reads_the_queue_and_the_case_without_action_buttons(auditor):
    case = frozen_multi_head_case()
    client = logged_in(auditor)

    queue = client.get("/queue/", headers=EN)
    detail = client.get(f"/cases/{case.pk}/", headers=EN)
    event = client.get(f"/events/inquiry/{Signal.objects.get(line=case.line).evidence['events']['inquiry'][0]}/")

    assert (queue.status_code, detail.status_code, event.status_code) == (200, 200, 200)
    assert rows(queue) == [case.pk]
    body = detail.content.decode()
    for control in ('id="decision-form"', 'id="claim"', 'id="reevaluate"', 'id="reveal"', 'id="next-case"'):
        assert control not in body


def auditor_posts(case: Case, proposal: Decision, other) -> list[tuple[str, dict]]:
    return [
        ("/queue/next/", {}),
        ("/queue/bulk/", {"action": "release", "case_ids": [case.pk]}),
        ("/queue/bulk/", {"action": "assign", "case_ids": [case.pk], "assignee": other.pk}),
        ("/queue/bulk/", {"action": "reevaluate", "case_ids": [case.pk]}),
        (f"/cases/{case.pk}/decide/", decision_post(case)),
        (f"/cases/{case.pk}/claim/", {}),
        (f"/cases/{case.pk}/release/", {}),
        (f"/cases/{case.pk}/notes/", {"text": "审计备注"}),
        (f"/cases/{case.pk}/reevaluate/", {}),
        (f"/cases/{case.pk}/reveal/", {"targets": ["phone"], "reason": "审计抽查：核实借款人身份"}),
        (f"/decisions/{proposal.pk}/approve/", {}),
        (f"/decisions/{proposal.pk}/reject/", {}),
    ]


def test_every_action_is_forbidden_to_an_auditor(auditor, analyst):
    case = frozen_multi_head_case(phone="13812345678")
    proposal = proposed(case, analyst)
    services.case_claim(case_id=case.pk, actor=Actor.operator(analyst))
    client = logged_in(auditor)  # the login is audited: before the snapshot
    before = (
        list(Case.objects.values_list("pk", "status", "assignee_id", "version")),
        list(CreditLine.objects.values_list("pk", "status", "limit", "available")),
        AuditEvent.objects.count(),
        Note.objects.count(),
        Decision.objects.count(),
        Signal.objects.count(),
    )

    for url, data in auditor_posts(case, proposal, analyst):
        response = client.post(url, data, headers=EN)
        assert response.status_code == 403, url
        assert "13812345678" not in response.content.decode()

    after = (
        list(Case.objects.values_list("pk", "status", "assignee_id", "version")),
        list(CreditLine.objects.values_list("pk", "status", "limit", "available")),
        AuditEvent.objects.count(),
        Note.objects.count(),
        Decision.objects.count(),
        Signal.objects.count(),
    )
    assert after == before


def test_a_user_without_a_role_is_forbidden(analyst):
    case = frozen_multi_head_case()
    client = logged_in(make_operator("nobody"))

    assert client.get("/queue/").status_code == 403
    assert client.get(f"/cases/{case.pk}/").status_code == 403
    assert client.post("/queue/next/").status_code == 403
    assert fresh(case).assignee_id is None


def test_an_anonymous_visitor_is_sent_to_log_in():
    case = frozen_multi_head_case()
    client = Client()

    assert client.get(f"/cases/{case.pk}/")["Location"] == f"/login/?next=/cases/{case.pk}/"
    assert client.post("/queue/next/")["Location"] == "/login/?next=/queue/next/"


def test_an_unknown_case_is_not_found(analyst):
    client = logged_in(analyst)

    assert client.get("/cases/987654321/").status_code == 404
    assert client.post("/cases/987654321/decide/", {}).status_code == 404
    assert client.get("/events/spaceship/1/").status_code == 404


def test_limits_are_shown_as_money(analyst):
    case = frozen_multi_head_case(limit="123456.78", available="100000.00", outstanding="23456.78")

    body = page(logged_in(analyst).get(f"/cases/{case.pk}/", headers=EN))

    assert '<dd id="line-limit">¥123,456.78</dd>' in body
    assert "<dd>¥23,456.78</dd>" in body  # outstanding
