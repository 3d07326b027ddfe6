"""The appeals inbox with the queue's conventions: filters in the URL, search, keyset pages, a fixed number of
queries per page, claiming and assigning appeals (their cases) by role, and the keyboard in a real browser.

Appeals are taken through the borrower link's service on lines the real engine froze; their deadlines are then
moved to put each one in an SLA state.
"""

from __future__ import annotations

import html
import re
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
from django.utils import timezone

from accounts import services as case_services
from accounts.models import Case, CreditLine
from appeals import replies
from appeals import services as appeal_services
from appeals.models import Appeal
from appeals.services.review import appeal_claim, appeal_claim_next
from riskops.core.audit import Actor
from riskops.core.errors import ConflictError
from riskops.models import AuditEvent
from tests.factories import default_ruleset, frozen_multi_head_case, make_role_operator
from tests.helpers import EN, browser_login, browser_operator, fresh, in_threads, logged_in, messages_of, page, submit

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ruleset")]

ZH = {"accept-language": "zh-hans"}
SEARCH_HELP = (
    "Search by an appeal number (#12), an account number (letters, digits and . _ : / -) or the last 4 digits of a "
    "phone number"
)


# --- helpers


def rows(response) -> list[int]:
    """The appeal ids of the inbox's rows, top to bottom."""
    return [
        int(i)
        for i in re.findall(r'<tr class="appeal[^"]*" data-row-href="/appeals/(\d+)/"', response.content.decode())
    ]


def alerts(response) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'class="error" role="alert">([^<]*)<', response.content.decode())]


def link(response, css_class: str) -> str | None:
    """A pager link ("more": next page, "prev": previous page), resolved as a browser would."""
    found = re.search(rf'<a class="{css_class}" href="([^"]+)"', response.content.decode())
    return urljoin("/appeals/", html.unescape(found.group(1))) if found else None


def assignee(appeal: Appeal) -> int | None:
    return Case.objects.get(pk=appeal.case_id).assignee_id


def due_in(appeal: Appeal, delta: timedelta) -> None:
    """Move the appeal's deadline (the clock's state follows from it)."""
    Appeal.objects.filter(pk=appeal.pk).update(sla_due_at=timezone.now() + delta)


def set_account_no(appeal: Appeal, account_no: str) -> None:
    CreditLine.objects.filter(pk=appeal.line_id).update(account_no=account_no)


def appeal_of(phone: str = "13812345678", reason: str = "loans_closed") -> Appeal:
    return submit(frozen_multi_head_case(phone=phone), reason=reason)


@pytest.fixture
def inbox(analyst, analyst2):
    """Five appeals covering every filter: three in review (breached, due soon, on time), one waiting for the
    borrower, one decided."""
    breached = appeal_of("13900001111", "loans_closed")
    soon = appeal_of("13900002222", "repaid")
    on_time = appeal_of("13900003333", "income_proof")
    waiting = appeal_of("13900004444", "loans_closed")
    decided = appeal_of("13900005555", "other")
    due_in(breached, -timedelta(hours=1))
    due_in(soon, timedelta(hours=2))
    due_in(on_time, timedelta(hours=60))
    appeal_claim(appeal_id=breached.pk, actor=Actor.operator(analyst))
    appeal_claim(appeal_id=on_time.pk, actor=Actor.operator(analyst2))
    for appeal, outcome in ((waiting, replies.REQUEST_INFO), (decided, replies.REJECT)):
        appeal_services.appeal_decide(
            appeal_id=appeal.pk,
            actor=Actor.operator(analyst2),
            outcome=outcome,
            reply="请补充近三个月的收入证明。",
            expected_version=None,
        )
    assert (fresh(waiting).status, fresh(decided).status) == ("awaiting_info", "rejected")
    return SimpleNamespace(breached=breached, soon=soon, on_time=on_time, waiting=waiting, decided=decided)


IN_REVIEW = ["breached", "soon", "on_time"]


# --- 1. filters, in the URL


FILTERS = [
    ("", IN_REVIEW),
    ("status=awaiting_info", ["waiting"]),
    ("status=decided", ["decided"]),
    ("status=rejected", ["decided"]),
    ("status=approved", []),
    ("reason=repaid", ["soon"]),
    ("reason=loans_closed", ["breached"]),
    ("reason=loans_closed&status=awaiting_info", ["waiting"]),
    ("sla=breached", ["breached"]),
    ("sla=due_soon", ["soon"]),
    ("sla=within", ["on_time"]),
    ("sla=breached&status=awaiting_info", []),  # a paused clock is in no SLA state
    ("assignee=me", ["breached"]),
    ("assignee=unassigned", ["soon"]),
    ("assignee={analyst2}", ["on_time"]),
    ("assignee=unassigned&reason=loans_closed", []),
]


@pytest.mark.parametrize(("query", "expected"), FILTERS, ids=[q or "default" for q, _ in FILTERS])
def test_each_inbox_filter_selects_its_appeals(analyst, analyst2, inbox, query, expected):
    response = logged_in(analyst).get(f"/appeals/?{query.format(analyst2=analyst2.pk)}", headers=EN)

    assert response.status_code == 200
    assert alerts(response) == []
    assert rows(response) == [getattr(inbox, name).pk for name in expected]
    if not expected:
        assert "No appeal matches these filters." in page(response)


def test_any_status_lists_every_appeal_nearest_deadline_first(analyst, inbox):
    everything = sorted(Appeal.objects.values_list("sla_due_at", "pk"))

    assert rows(logged_in(analyst).get("/appeals/?status=all", headers=EN)) == [pk for _due, pk in everything]


def test_the_sla_filter_follows_the_clock_not_the_priority_the_aging_job_last_wrote(analyst, inbox):
    assert fresh(inbox.breached).priority == 0  # the aging job has not run since its deadline passed

    response = logged_in(analyst).get("/appeals/?sla=breached", headers=EN)

    assert rows(response) == [inbox.breached.pk]
    assert "3 in review (1 past SLA)" in page(response)


def test_the_old_tab_links_still_open_their_tab(analyst, inbox):
    client = logged_in(analyst)

    assert rows(client.get("/appeals/?tab=awaiting_info", headers=EN)) == [inbox.waiting.pk]
    assert rows(client.get("/appeals/?tab=decided", headers=EN)) == [inbox.decided.pk]
    assert rows(client.get("/appeals/?tab=open", headers=EN)) == [getattr(inbox, n).pk for n in IN_REVIEW]


def test_filters_live_in_the_url_and_the_form_and_tabs_keep_them(analyst, inbox):
    response = logged_in(analyst).get("/appeals/?status=awaiting_info&reason=loans_closed&assignee=me", headers=EN)

    body = response.content.decode()
    assert '<option value="awaiting_info" selected>' in body
    assert '<option value="loans_closed" selected>' in body
    assert '<option value="me" selected>' in body
    # "Next appeal" claims within the same filter; the actions come back to it.
    assert body.count('name="query" value="status=awaiting_info&amp;reason=loans_closed&amp;assignee=me"') == 2
    # The tabs change the status and keep the rest.
    assert '<a href="?reason=loans_closed&amp;assignee=me&amp;status=decided">' in body
    assert '<a href="?reason=loans_closed&amp;assignee=me&amp;status=awaiting_info" aria-current="page">' in body
    assert '<a href="?reason=loans_closed&amp;assignee=me">' in body  # "In review": the default status


BAD_FILTERS = [
    ("status=closed", "Select a valid choice. closed is not one of the available choices."),
    ("reason=bored", "Select a valid choice. bored is not one of the available choices."),
    ("sla=late", "Select a valid choice. late is not one of the available choices."),
    ("assignee=999999", "Select a valid choice. 999999 is not one of the available choices."),
    ("assignee={auditor}", "Select a valid choice. {auditor} is not one of the available choices."),
    ("q=JB*12", SEARCH_HELP),
    ("q=%2312a", SEARCH_HELP),
    ("q=12%2034", SEARCH_HELP),
    ("status=decided&q=%3Cb%3E", SEARCH_HELP),
]


@pytest.mark.parametrize(("query", "error"), BAD_FILTERS, ids=[q for q, _ in BAD_FILTERS])
def test_bad_filter_input_shows_why_and_falls_back_to_the_whole_inbox(analyst, auditor, inbox, query, error):
    response = logged_in(analyst).get(f"/appeals/?{query.format(auditor=auditor.pk)}", headers=EN)

    assert response.status_code == 200
    assert alerts(response) == [error.format(auditor=auditor.pk)]
    assert rows(response) == [getattr(inbox, name).pk for name in IN_REVIEW]


# --- 2. search


@pytest.fixture
def references(inbox):
    for appeal, ref in (
        (inbox.breached, "JB0000000123"),
        (inbox.soon, "JB0000000456"),
        (inbox.on_time, "bureau:77-a"),
        (inbox.waiting, "bureau:78-b"),
    ):
        set_account_no(appeal, ref)
    return inbox


SEARCHES = [
    ("#{breached}", ["breached"]),  # an appeal's number as the inbox shows it
    ("JB0000000123", ["breached"]),  # an account number, exactly
    ("  JB0000000123 ", ["breached"]),
    ("JB00000004", ["soon"]),  # its beginning
    ("jb000000", ["breached", "soon"]),  # in lower case
    ("bureau:7", ["on_time"]),  # an upstream's own format (the waiting one is in another tab)
    ("3333", ["on_time"]),  # a phone's last 4
    ("9999", []),
    ("#999999999", []),
]


@pytest.mark.parametrize(("q", "expected"), SEARCHES, ids=[q for q, _ in SEARCHES])
def test_search_finds_appeals_by_number_account_number_or_its_beginning_or_phone(analyst, references, q, expected):
    q = q.format(breached=references.breached.pk)

    response = logged_in(analyst).get("/appeals/", {"q": q}, headers=EN)

    assert alerts(response) == []
    assert rows(response) == [getattr(references, name).pk for name in expected]


def test_search_with_another_status_finds_the_appeal_there(analyst, references):
    response = logged_in(analyst).get("/appeals/", {"q": "bureau:7", "status": "all"}, headers=EN)

    assert sorted(rows(response)) == sorted([references.on_time.pk, references.waiting.pk])


# --- 3. keyset pages


@pytest.fixture
def thirteen(analyst):
    """Thirteen appeals in review, four of them sharing a deadline (the id breaks the tie), two reasons, seven
    claimed by the analyst."""
    appeals = [appeal_of(reason="repaid" if i % 3 == 0 else "loans_closed") for i in range(13)]
    now = timezone.now()
    for i, appeal in enumerate(appeals):
        hours = 5 if i in (2, 5, 8, 11) else 40 - 3 * i
        Appeal.objects.filter(pk=appeal.pk).update(sla_due_at=now + timedelta(hours=hours))
        if i % 2 == 0:
            appeal_claim(appeal_id=appeal.pk, actor=Actor.operator(analyst))
    return appeals


def deadline_order(**filters) -> list[int]:
    qs = Appeal.objects.filter(status__in=["open", "awaiting_approval"], **filters)
    return [pk for _due, pk in sorted(qs.values_list("sla_due_at", "pk"))]


def walk(client, url: str | None, direction: str = "more") -> tuple[list[list[int]], list[str]]:
    pages, urls = [], []
    while url:
        response = client.get(url, headers=EN)
        assert response.status_code == 200
        pages.append(rows(response))
        urls.append(url)
        url = link(response, direction)
    return pages, urls


def test_next_page_links_visit_every_appeal_once_in_deadline_order_and_previous_links_come_back(
    analyst, thirteen, settings
):
    settings.QUEUE_PAGE_SIZE = 5
    client = logged_in(analyst)

    pages, urls = walk(client, "/appeals/")

    assert [len(p) for p in pages] == [5, 5, 3]
    assert [pk for p in pages for pk in p] == deadline_order()
    assert ("First page" in page(client.get(urls[0], headers=EN))) is False
    assert "First page" in page(client.get(urls[2], headers=EN))
    back, _urls = walk(client, link(client.get(urls[2], headers=EN), "prev"), "prev")
    assert back == [pages[1], pages[0]]


def test_next_page_links_keep_the_filters(analyst, thirteen, settings):
    settings.QUEUE_PAGE_SIZE = 5
    client = logged_in(analyst)
    expected = deadline_order(reason="loans_closed")
    assert len(expected) == 8

    first = client.get("/appeals/?reason=loans_closed&status=all", headers=EN)
    more = link(first, "more")
    assert more is not None
    assert parse_qs(urlsplit(more).query)["reason"] == ["loans_closed"]
    assert parse_qs(urlsplit(more).query)["status"] == ["all"]
    second = client.get(more, headers=EN)

    assert rows(first) + rows(second) == expected
    assert link(second, "more") is None
    prev = link(second, "prev")
    assert prev is not None and parse_qs(urlsplit(prev).query)["reason"] == ["loans_closed"]
    assert rows(client.get(prev, headers=EN)) == rows(first)


def test_decided_appeals_are_paged_newest_decision_first(analyst, settings):
    settings.QUEUE_PAGE_SIZE = 2
    for _ in range(5):
        appeal = appeal_of()
        appeal_services.appeal_decide(
            appeal_id=appeal.pk,
            actor=Actor.operator(analyst),
            outcome="reject",
            reply="维持原决定。",
            expected_version=None,
        )

    pages, _urls = walk(logged_in(analyst), "/appeals/?status=decided")

    newest_first = list(Appeal.objects.order_by("-decided_at", "-pk").values_list("pk", flat=True))
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [pk for p in pages for pk in p] == newest_first


@pytest.mark.parametrize("after", ["abc", "x|1", "2026-01-01T00:00:00|3", "2026-01-01T00:00:00+00:00|x", "|"])
def test_a_junk_cursor_shows_the_first_page(analyst, thirteen, settings, after):
    settings.QUEUE_PAGE_SIZE = 5

    response = logged_in(analyst).get("/appeals/", {"after": after}, headers=EN)

    assert response.status_code == 200
    assert rows(response) == deadline_order()[:5]


# --- 4. query counts

# The user, their roles with their permissions (one query), the operators (the assignee filter and the assign
# list), the page of appeals (with line, borrower and the case's assignee), the open counts, the overturn rates;
# a senior reviewer's page also reads their unread SLA alerts.
INBOX_QUERIES = 6


@pytest.mark.parametrize("page_size", [2, 5])
@pytest.mark.parametrize(
    "query", ["", "reason=loans_closed", "sla=within", "q=jb", "status=all", "assignee=me", "assignee=unassigned"]
)
def test_every_inbox_page_costs_the_same_queries_whatever_its_size(
    analyst, senior, thirteen, settings, django_assert_num_queries, page_size, query
):
    settings.QUEUE_PAGE_SIZE = page_size
    client, senior_client = logged_in(analyst), logged_in(senior)
    second_url = link(client.get(f"/appeals/?{query}", headers=EN), "more")
    assert second_url is not None

    with django_assert_num_queries(INBOX_QUERIES):
        response = client.get(f"/appeals/?{query}", headers=EN)
    assert len(rows(response)) == page_size
    with django_assert_num_queries(INBOX_QUERIES):
        response = client.get(second_url, headers=EN)
    assert rows(response)
    with django_assert_num_queries(INBOX_QUERIES + 1):
        response = senior_client.get(second_url, headers=EN)
    assert response.status_code == 200


# --- 5. who works an appeal: claim, assign, release (the appeal's case), by role


def act(client, action: str, appeals: list[Appeal], **extra):
    data = {"action": action, "appeal_ids": [a.pk for a in appeals], "query": "reason=loans_closed", **extra}
    return client.post("/appeals/assign/", data, headers=EN, follow=True)


def test_an_analyst_claims_the_selected_appeals_and_releases_them(analyst):
    first, second = appeal_of(), appeal_of()
    client = logged_in(analyst)

    response = act(client, "claim", [first, second])

    assert response.redirect_chain[-1][0] == "/appeals/?reason=loans_closed"
    assert messages_of(response) == ["2 appeals claimed."]
    assert (assignee(first), assignee(second)) == (analyst.pk, analyst.pk)
    claims = AuditEvent.objects.filter(action="case.claim", actor_user=analyst).order_by("object_id")
    assert [(e.object_id, e.before, e.after) for e in claims] == [
        (a.case_id, {"assignee_id": None}, {"assignee_id": analyst.pk}) for a in (first, second)
    ]

    response = act(client, "release", [first])

    assert messages_of(response) == ["1 appeal released."]
    assert (assignee(first), assignee(second)) == (None, analyst.pk)
    assert AuditEvent.objects.filter(action="case.release", object_id=first.case_id).count() == 1


def test_claiming_leaves_an_appeal_someone_else_holds_and_says_so(analyst, analyst2):
    mine, theirs = appeal_of(), appeal_of()
    appeal_claim(appeal_id=theirs.pk, actor=Actor.operator(analyst2))

    response = act(logged_in(analyst), "claim", [mine, theirs])

    assert messages_of(response) == [
        "1 appeal claimed.",
        "1 appeal was not claimed: someone else holds it, it was decided, or a senior reviewer decides it.",
    ]
    assert (assignee(mine), assignee(theirs)) == (analyst.pk, analyst2.pk)


def test_an_analyst_releases_only_their_own_appeals(analyst, analyst2):
    theirs = appeal_of()
    appeal_claim(appeal_id=theirs.pk, actor=Actor.operator(analyst2))

    response = act(logged_in(analyst), "release", [theirs])

    assert messages_of(response) == ["0 appeals released."]
    assert assignee(theirs) == analyst2.pk


def test_a_senior_reviewer_assigns_appeals_to_an_operator_who_decides_them(senior, analyst, analyst2):
    appeal = appeal_of()
    appeal_claim(appeal_id=appeal.pk, actor=Actor.operator(analyst2))

    response = act(logged_in(senior), "assign", [appeal], assignee=analyst.pk)

    assert messages_of(response) == ["1 appeal assigned."]
    assert assignee(appeal) == analyst.pk
    [event] = AuditEvent.objects.filter(action="case.assign")
    assert (event.actor_user_id, event.object_id, event.before, event.after) == (
        senior.pk,
        appeal.case_id,
        {"assignee_id": analyst2.pk},
        {"assignee_id": analyst.pk},
    )
    assert "ana" in page(logged_in(senior).get("/appeals/?assignee=" + str(analyst.pk), headers=EN))


def test_appeals_are_not_assigned_to_an_auditor_or_without_an_operator(senior, auditor):
    appeal = appeal_of()
    client = logged_in(senior)

    refused = act(client, "assign", [appeal], assignee=auditor.pk)
    incomplete = act(client, "assign", [appeal])
    nothing = act(client, "claim", [])

    assert messages_of(refused) == [f"operator {auditor.pk} does not exist, is inactive or cannot decide cases"]
    assert messages_of(incomplete) == ["Choose the operator to assign the appeals to"]
    assert messages_of(nothing) == ["Select at least one appeal"]
    assert assignee(appeal) is None
    assert not AuditEvent.objects.filter(action__startswith="case.", object_id=appeal.case_id).exclude(
        action="case.open"
    )


def test_the_assign_list_offers_only_operators_who_decide_appeals(senior, analyst, auditor, integration):
    appeal_of()

    body = logged_in(senior).get("/appeals/", headers=EN).content.decode()

    listed = re.findall(
        r'<option value="\d+">([^<]+)</option>', body.split('aria-label="Assign to"', 1)[1].split("</select>", 1)[0]
    )
    assert sorted(listed) == sorted([senior.username, analyst.username])
    # The assignee filter offers the same operators (by name), after "anyone", "me" and "unassigned".
    choices = re.findall(r'<option value="([^"]*)"', body.split('id="id_assignee"', 1)[1].split("</select>", 1)[0])
    assert choices == ["", "me", "unassigned", str(analyst.pk), str(senior.pk)]


def test_an_analyst_may_claim_but_not_assign_to_others(analyst, analyst2):
    appeal = appeal_of()
    client = logged_in(analyst)

    body = client.get("/appeals/", headers=EN).content.decode()
    response = client.post("/appeals/assign/", {"action": "assign", "appeal_ids": [appeal.pk], "assignee": analyst2.pk})

    assert 'value="claim"' in body and 'value="release"' in body and 'id="next-appeal"' in body
    assert 'aria-label="Assign to"' not in body and 'value="assign"' not in body
    assert response.status_code == 403
    assert assignee(appeal) is None


def test_an_auditor_reads_the_inbox_without_action_buttons_and_every_action_is_forbidden(auditor, analyst):
    appeal = appeal_of()
    client = logged_in(auditor)

    body = client.get("/appeals/", headers=EN).content.decode()

    assert rows(client.get("/appeals/", headers=EN)) == [appeal.pk]
    for control in ('value="claim"', 'value="assign"', 'value="release"', 'id="next-appeal"', 'name="appeal_ids"'):
        assert control not in body
    for action, extra in (("claim", {}), ("release", {}), ("assign", {"assignee": analyst.pk})):
        response = client.post("/appeals/assign/", {"action": action, "appeal_ids": [appeal.pk], **extra})
        assert response.status_code == 403, action
    assert client.post("/appeals/next/", {"query": ""}).status_code == 403
    assert assignee(appeal) is None


def test_a_decided_appeal_cannot_be_claimed(analyst):
    appeal = appeal_of()
    appeal_services.appeal_decide(
        appeal_id=appeal.pk,
        actor=Actor.operator(analyst),
        outcome="reject",
        reply="维持原决定。",
        expected_version=None,
    )

    with pytest.raises(ConflictError, match="This appeal was already decided: rejected"):
        appeal_claim(appeal_id=appeal.pk, actor=Actor.operator(analyst))


# --- 6. "Next appeal"


def test_next_appeal_claims_the_nearest_deadline_within_the_filter_and_says_when_none_is_left(analyst, analyst2):
    later, sooner, other_reason, held = appeal_of(), appeal_of(), appeal_of(reason="repaid"), appeal_of()
    due_in(later, timedelta(hours=30))
    due_in(sooner, timedelta(hours=20))
    due_in(other_reason, timedelta(hours=1))
    due_in(held, timedelta(hours=2))
    appeal_claim(appeal_id=held.pk, actor=Actor.operator(analyst2))
    client = logged_in(analyst)

    first = client.post("/appeals/next/", {"query": "reason=loans_closed"})
    second = client.post("/appeals/next/", {"query": "reason=loans_closed"})
    none_left = client.post("/appeals/next/", {"query": "reason=loans_closed"}, headers=EN, follow=True)

    assert (first["Location"], second["Location"]) == (f"/appeals/{sooner.pk}/", f"/appeals/{later.pk}/")
    assert (assignee(sooner), assignee(later), assignee(other_reason), assignee(held)) == (
        analyst.pk,
        analyst.pk,
        None,
        analyst2.pk,
    )
    assert none_left.redirect_chain[-1][0] == "/appeals/?reason=loans_closed"
    assert messages_of(none_left) == ["No unclaimed appeal is left in this filter."]
    assert client.post("/appeals/next/", {}).headers["Location"] == f"/appeals/{other_reason.pk}/"


def test_next_appeal_with_a_bad_filter_says_why_and_claims_nothing(analyst):
    appeal = appeal_of()

    response = logged_in(analyst).post("/appeals/next/", {"query": "sla=late"}, headers=EN, follow=True)

    assert messages_of(response) == ["Select a valid choice. late is not one of the available choices."]
    assert assignee(appeal) is None


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_claiming_one_appeal_at_once_get_one_winner():
    default_ruleset()
    ana, bo = make_role_operator("analyst", "ana"), make_role_operator("analyst", "bo")
    for _ in range(3):
        appeal = appeal_of()

        results = in_threads(
            lambda appeal=appeal: appeal_claim(appeal_id=appeal.pk, actor=Actor.operator(ana)),
            lambda appeal=appeal: appeal_claim(appeal_id=appeal.pk, actor=Actor.operator(bo)),
        )

        [winner] = [i for i, r in enumerate(results) if isinstance(r, Appeal)]
        [loser] = [r for r in results if isinstance(r, ConflictError)]
        holder = (ana, bo)[winner]
        assert str(loser) == f"This case is already claimed by {holder.username}"
        assert assignee(appeal) == holder.pk
        assert AuditEvent.objects.filter(action="case.claim", object_id=appeal.case_id).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_pressing_next_at_once_get_different_appeals():
    default_ruleset()
    ana, bo = make_role_operator("analyst", "ana"), make_role_operator("analyst", "bo")
    appeals = [appeal_of(), appeal_of()]

    results = in_threads(
        lambda: appeal_claim_next(actor=Actor.operator(ana)),
        lambda: appeal_claim_next(actor=Actor.operator(bo)),
    )

    assert sorted(r.pk for r in results) == sorted(a.pk for a in appeals)
    assert {assignee(a) for a in appeals} == {ana.pk, bo.pk}
    assert appeal_claim_next(actor=Actor.operator(ana)) is None


def test_a_release_from_the_case_page_shows_in_the_inbox(analyst):
    appeal = appeal_of()
    appeal_claim(appeal_id=appeal.pk, actor=Actor.operator(analyst))
    client = logged_in(analyst)
    assert rows(client.get("/appeals/?assignee=me", headers=EN)) == [appeal.pk]

    case_services.cases_assign(case_ids=[appeal.case_id], assignee_id=None, actor=Actor.operator(analyst))

    assert rows(client.get("/appeals/?assignee=me", headers=EN)) == []
    assert rows(client.get("/appeals/?assignee=unassigned", headers=EN)) == [appeal.pk]


# --- 7. both languages


def test_the_inbox_speaks_chinese(analyst):
    appeal_of()

    body = page(logged_in(analyst).get("/appeals/?sla=late", headers=ZH))

    assert "申诉" in body
    assert "Next appeal" not in body and "Search by an appeal number" not in body
    assert "Claim" not in body and "Select a valid choice" not in body


# --- 8. in a real browser: filter by SLA state, move with the keyboard, open, claim the next


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_reviewer_filters_by_sla_state_and_works_the_inbox_with_the_keyboard(browser, live_server):
    from playwright.sync_api import expect

    default_ruleset()
    browser_operator("ana", "analyst")
    breached, soon, later_soon, on_time = appeal_of(), appeal_of(), appeal_of(), appeal_of()
    due_in(breached, -timedelta(hours=3))
    due_in(soon, timedelta(hours=2))
    due_in(later_soon, timedelta(hours=4))
    due_in(on_time, timedelta(hours=50))
    tab = browser_login(browser, live_server, "ana")
    tab.goto(f"{live_server.url}/appeals/")
    expect(tab.locator("#appeals tr.appeal")).to_have_count(4)

    tab.select_option("#id_sla", "due_soon")
    tab.click("#filters button[type=submit]")
    tab.wait_for_url("**/appeals/?*sla=due_soon*")
    rows = tab.locator("#appeals tr.appeal")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_class(re.compile(r"\bselected\b"))  # the first row is selected on arrival

    tab.keyboard.press("j")
    expect(rows.nth(1)).to_have_class(re.compile(r"\bselected\b"))
    tab.keyboard.press("k")
    tab.keyboard.press("j")
    tab.keyboard.press("Enter")
    tab.wait_for_url(f"**/appeals/{later_soon.pk}/")

    tab.go_back()
    tab.wait_for_url("**/appeals/?*sla=due_soon*")
    expect(tab.locator("#next-appeal kbd")).to_have_text("n")
    tab.keyboard.press("n")  # the next appeal of this filter, not the queue's next case
    tab.wait_for_url(f"**/appeals/{soon.pk}/")
    assert assignee(soon) is not None
    assert Case.objects.filter(assignee__isnull=False).count() == 1

    tab.goto(f"{live_server.url}/appeals/?sla=due_soon")
    tab.keyboard.press("/")
    expect(tab.locator("#id_q")).to_be_focused()
    tab.context.close()
