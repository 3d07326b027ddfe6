"""The audit page: who may read it, its filters, its keyset pages, its audited CSV export, bad input."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Case, CaseStatus, CreditLine, LineChangeKind
from riskops.audit_trail.catalogue import ACTION_LABELS
from riskops.audit_trail.selectors import PAGE_SIZE
from riskops.core.audit import Actor, Change, audit_write
from riskops.core.forms import MAX_ID
from riskops.models import AuditEvent
from tests.factories import make_line, make_role_operator
from tests.helpers import ROOT, fresh, logged_in, op, page

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")


def event_ids(response) -> list[int]:
    return [int(i) for i in re.findall(r'data-event-id="(\d+)"', response.content.decode())]


def link(response, name: str) -> str | None:
    m = re.search(rf'id="audit-{name}"[^>]*href="([^"]+)"|href="([^"]+)"[^>]*id="audit-{name}"', page(response))
    return (m[1] or m[2]) if m else None


def walk(client: Client, url: str | None, direction: str) -> tuple[list[list[int]], Any]:
    """The pages' event ids, following the `direction` link ("older", "newer") from `url`; and the last page."""
    pages, response = [], None
    while url:
        response = client.get(url if url.startswith("/") else f"/audit/{url}")
        assert response.status_code == 200
        pages.append(event_ids(response))
        url = link(response, direction)
    return pages, response


def write(actor: Actor, action: str, *, n: int = 1, at: datetime | None = None, account=None, **change) -> None:
    at = at or timezone.now()
    audit_write(
        actor=actor,
        at=at,
        changes=[
            Change(
                action,
                change.get("object_type", "credit_line" if account else "job"),
                change.get("object_id", account.pk if account else 1),
                account.pk if account else None,
                change.get("before"),
                change.get("after"),
                change.get("reason", ""),
            )
            for _ in range(n)
        ],
    )


def numbered(account_no: str) -> CreditLine:
    line = make_line()
    CreditLine.objects.filter(pk=line.pk).update(account_no=account_no)
    return fresh(line)


def open_case(line: CreditLine) -> Case:
    now = timezone.now()
    return Case.objects.create(
        line=line, status=CaseStatus.OPEN, severity_rank=3, opened_at=now, updated_at=now, sla_due_at=now
    )


def csv_rows(response) -> list[dict[str, str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(body[1:])))


def export(client: Client, query: str = ""):
    response = client.get(f"/audit/export.csv{'?' + query if query else ''}")
    assert response.status_code == 200, page(response)
    return response


# --- Who reads it


def test_auditors_and_admins_read_the_trail_and_see_it_in_the_navigation(auditor):
    admin = make_role_operator("admin", "adm")
    for user in (auditor, admin):
        response = logged_in(user).get("/audit/", headers={"accept-language": "en"})
        assert response.status_code == 200
        assert 'href="/audit/">Audit trail</a>' in response.content.decode()


@pytest.mark.parametrize("role", ["analyst", "senior_reviewer", "risk_manager", "integration"])
def test_other_roles_get_the_forbidden_page_and_no_link(role):
    user = make_role_operator(role)
    client = logged_in(user)
    for url in ("/audit/", "/audit/export.csv"):
        response = client.get(url)
        assert response.status_code == 403
        assert "Only auditors and admins read the audit trail." in page(response)
    assert 'href="/audit/"' not in client.get("/queue/").content.decode()
    assert not AuditEvent.objects.filter(action="audit.export").exists()


def test_anonymous_readers_are_sent_to_log_in():
    for url in ("/audit/", "/audit/export.csv"):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"] == f"/login/?next={url}"


# --- The page


def test_a_row_shows_time_actor_action_object_account_change_and_reason_translated(auditor, analyst):
    line = numbered("JB0000000042")
    case = open_case(line)
    at = datetime(2026, 3, 1, 2, 3, 4, tzinfo=ZoneInfo("UTC"))
    write(
        op(analyst),
        "line.unfreeze",
        at=at,
        account=line,
        before={"status": "frozen", "limit": "20000.00"},
        after={"status": "active", "limit": "20000.00"},
        reason="condition no longer holds",
    )
    write(Actor.engine(), "case.open", account=line, object_type="case", object_id=case.pk, after={"status": "open"})
    response = logged_in(auditor).get("/audit/", headers={"accept-language": "zh-hans"})
    text = page(response)
    row = text.split(f'data-event-id="{AuditEvent.objects.get(action="line.unfreeze").pk}"')[1].split("</tr>")[0]
    assert "2026-03-01 10:03:04" in row  # the operator's time zone (Asia/Shanghai)
    assert "ana" in row
    assert "额度解冻" in row and "line.unfreeze" in row
    assert f'href="/cases/{case.pk}/"><code>JB0000000042</code>' in row  # the account's case
    assert 'status</span>: <span class="old">frozen</span> → <span class="new">active</span>' in row
    assert "limit" not in row  # unchanged values are left out
    assert "条件已不再满足" in row and "condition no longer holds" not in row
    case_row = text.split('data-action="case.open"')[1].split("</tr>")[0]
    assert f'<a href="/cases/{case.pk}/">' in case_row  # a case links to itself
    assert "风控引擎" in case_row and "engine" not in case_row


def test_personal_data_under_a_personal_key_is_shown_masked(auditor):
    write(Actor.system(), "ingest.batch", after={"name": "王小明", "phone": "13812345678", "rows": 3})
    text = page(logged_in(auditor).get("/audit/"))
    assert "王*明" in text and "138****5678" in text
    assert "王小明" not in text and "13812345678" not in text


def test_the_action_filter_offers_every_action_the_code_writes(auditor):
    """Every action string in the code's audit writes (literals and the line changes' `line.<kind>`)."""
    written = set()
    for source in [
        *ROOT.glob("accounts/**/*.py"),
        *ROOT.glob("appeals/**/*.py"),
        *ROOT.glob("riskops/**/*.py"),
        *ROOT.glob("ingest/**/*.py"),
        *ROOT.glob("portal/**/*.py"),
    ]:
        if "migrations" in source.parts or "audit_trail" in source.parts:
            continue
        text = Path(source).read_text()
        if "Change(" not in text and "audit" not in text:
            continue
        written |= set(
            re.findall(
                r"""['"]((?:line|signal|case|note|decision|borrower|appeal|document|job|ingest|audit|auth|operator|token|guidance)\.[a-z_]+)['"]""",
                text,
            )
        )
    written -= {"ingest.ingest_events", "ingest.urls", "appeals.urls"}
    written |= {f"line.{kind}" for kind in LineChangeKind.values}
    assert written - set(ACTION_LABELS) == set()
    options = set(re.findall(r'<option value="([a-z_]+\.[a-z_]+)"', page(logged_in(auditor).get("/audit/"))))
    assert options == set(ACTION_LABELS)


def fixture_trail(analyst, analyst2) -> dict[str, object]:
    lines = [numbered(f"JB00000001{i:02d}") for i in range(3)]
    day = datetime(2026, 2, 10, 12, tzinfo=SHANGHAI)
    write(op(analyst), "case.claim", n=3, account=lines[0], at=day)
    write(op(analyst2), "case.claim", n=2, account=lines[1], at=day)
    write(Actor.engine(), "signal.fire", n=4, account=lines[1], at=day + timedelta(days=1))
    write(Actor.job(7), "line.unfreeze", n=2, account=lines[2], at=day + timedelta(days=2))
    write(Actor.system(), "job.fail", n=1, at=day + timedelta(days=2), object_id=7)
    return {"lines": lines}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("action=case.claim", 5),
        ("operator=ana", 3),
        ("actor_kind=engine", 4),
        ("actor_kind=job", 2),
        ("object_type=job&object_id=7", 1),
        ("account=JB0000000101", 6),
        ("account=jb0000000101", 6),
        ("day_from=2026-02-11&day_to=2026-02-11", 4),
        ("day_from=2026-02-12", 3 + 1),  # and the auditor's login today
        ("day_to=2026-02-10", 5),
        ("actor_kind=operator&action=case.claim&account=JB0000000100", 3),
    ],
)
def test_each_filter_selects_its_events(auditor, analyst, analyst2, query, expected):
    fixture_trail(analyst, analyst2)
    response = logged_in(auditor).get(f"/audit/?{query}")
    assert response.status_code == 200
    assert len(event_ids(response)) == expected


@pytest.mark.parametrize(
    "query",
    [
        "actor_kind=engine",
        # A window of days: the page walks another key (`selectors.keyed`), with the same pages.
        "actor_kind=engine&day_from=2026-02-09&day_to=2026-02-10",
    ],
)
def test_walking_older_then_newer_visits_every_event_once_newest_first(auditor, query):
    at = datetime(2026, 2, 10, 9, tzinfo=SHANGHAI)
    write(Actor.engine(), "signal.fire", n=2 * PAGE_SIZE + 7, at=at)
    write(Actor.engine(), "signal.fire", n=3, at=at + timedelta(days=1))  # outside the window
    write(Actor.system(), "job.fail", n=3, at=at)
    client = logged_in(auditor)
    expected = list(AuditEvent.objects.filter(at=at, actor_kind="engine").order_by("-id").values_list("id", flat=True))
    if "day_from" not in query:
        expected = list(AuditEvent.objects.filter(actor_kind="engine").order_by("-id").values_list("id", flat=True))
    pages, last = walk(client, f"/audit/?{query}", "older")
    assert [i for p in pages for i in p] == expected
    assert [len(p) for p in pages] == [PAGE_SIZE, PAGE_SIZE, len(expected) - 2 * PAGE_SIZE]
    assert query.replace("&", "&amp;") in (link(last, "newer") or "").replace("&", "&amp;")
    # Back from the last page: newer, twice, gives the same pages.
    back, _last = walk(client, link(last, "newer"), "newer")
    assert back == pages[:-1][::-1]


# The user, the roles; the events with who acted and the account; the accounts' cases; the chain's panel (the last
# verification, the last checkpoint, the events waiting for the sealer).
AUDIT_PAGE_QUERIES = 4 + 3


@pytest.mark.parametrize("n", [3, 3 * PAGE_SIZE])
@pytest.mark.parametrize(
    ("query", "extra"),
    [
        ("", 0),
        ("action=case.claim", 0),
        ("operator=ana", 1),
        ("account=JB0000000777", 1),
        ("day_from=2000-01-01&day_to=2999-12-31", 0),
        ("day_from=2026-01-01&day_to=2026-01-02", -1),  # an empty window: no account, no cases to read
    ],
)
def test_the_page_costs_the_same_queries_whatever_the_number_of_events(
    auditor, analyst, django_assert_num_queries, n, query, extra
):
    # Events over many accounts, each with a case (the links): one query for all their cases.
    lines = [numbered("JB0000000777"), *(make_line() for _ in range(min(n, PAGE_SIZE) - 1))]
    for line in lines:
        open_case(line)
    for i in range(n):
        write(op(analyst), "case.claim", account=lines[i % len(lines)])
    client = logged_in(auditor)
    with django_assert_num_queries(AUDIT_PAGE_QUERIES + extra):
        response = client.get(f"/audit/?{query}")
    shown = event_ids(response)
    login = 1 if query in ("", "day_from=2000-01-01&day_to=2999-12-31") else 0  # the auditor's login is on the trail
    expected = 0 if "2026-01-02" in query else -(-n // len(lines)) if "account" in query else min(n + login, PAGE_SIZE)
    assert len(shown) == expected
    linked = len(set(re.findall(r'href="/cases/(\d+)/"', page(response))))
    assert linked == (0 if not expected else 1 if query.startswith("account") else min(len(lines), expected - login))


# --- Bad input


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("object_type=case&object_id=0", "Ensure this value is greater than or equal to 1."),
        (f"object_type=case&object_id={MAX_ID + 1}", f"Ensure this value is less than or equal to {MAX_ID}."),
        ("object_type=case&object_id=abc", "Enter a whole number."),
        ("object_id=5", "Choose the object's type with its id"),
        ("action=nope.nothing", "Select a valid choice. nope.nothing is not one of the available choices."),
        ("actor_kind=robot", "Select a valid choice. robot is not one of the available choices."),
        ("object_type=planet", "Select a valid choice. planet is not one of the available choices."),
        ("day_from=9999-12-31", "Enter a date from 2000-01-01 to 2999-12-31."),
        ("day_to=1999-12-31", "Enter a date from 2000-01-01 to 2999-12-31."),
        ("day_from=2026-13-45", "Enter a valid date."),
        ("day_from=2026-03-02&day_to=2026-03-01", "'From' is after 'to'"),
        (f"before={MAX_ID + 1}", f"Ensure this value is less than or equal to {MAX_ID}."),
        ("after=-1", "Ensure this value is greater than or equal to 1."),
        ("before=5&after=3", "A page is either older or newer than another, not both"),
        ("operator=nobody", "No operator has the user name nobody"),
        ("account=JB9999999999", "No account number or phone matches JB9999999999"),
        ("account=%3Dcmd", "Search by an account number (letters, digits and . _ : / -) or the last 4 digits"),
    ],
)
def test_bad_input_gets_its_message_and_a_400_never_a_500(auditor, query, error):
    write(Actor.engine(), "signal.fire")
    client = logged_in(auditor)
    for url in (f"/audit/?{query}", f"/audit/export.csv?{query}"):
        response = client.get(url)
        assert response.status_code == 400
        assert error in page(response)
        assert event_ids(response) == []
    assert not AuditEvent.objects.filter(action="audit.export").exists()


def test_each_field_error_names_its_field(auditor):
    response = logged_in(auditor).get("/audit/?object_type=case&object_id=0&day_to=1999-01-01")
    assert response.status_code == 400
    assert "Object id: Ensure this value is greater than or equal to 1." in page(response)
    assert "To: Enter a date from 2000-01-01 to 2999-12-31." in page(response)


def test_the_export_of_a_window_of_days_holds_the_window(auditor):
    at = datetime(2026, 2, 10, 9, tzinfo=SHANGHAI)
    write(Actor.engine(), "signal.fire", n=5, at=at - timedelta(days=1))
    write(Actor.engine(), "signal.fire", n=5, at=at)
    write(Actor.engine(), "signal.fire", n=5, at=at + timedelta(days=1))
    rows = csv_rows(export(logged_in(auditor), "day_from=2026-02-10&day_to=2026-02-10"))
    assert [int(r["id"]) for r in rows] == list(
        AuditEvent.objects.filter(at=at).order_by("-id").values_list("id", flat=True)
    )


def test_an_account_search_that_names_too_many_accounts_asks_for_more_of_the_number(auditor):
    for i in range(21):
        numbered(f"JB77{i:08d}")
    response = logged_in(auditor).get("/audit/?account=JB77")
    assert response.status_code == 400
    assert "JB77 matches more than 20 accounts: type more of the account number" in page(response)


# --- The export


def test_the_export_holds_the_filtered_rows_of_every_page_in_order(auditor, analyst):
    write(op(analyst), "case.claim", n=PAGE_SIZE + 20, reason='=HYPERLINK("http://x")')
    write(Actor.engine(), "signal.fire", n=30)
    write(op(analyst), "case.claim", n=PAGE_SIZE, reason="@SUM(A1)")
    client = logged_in(auditor)
    pages, _last = walk(client, "/audit/?action=case.claim", "older")
    shown = [i for p in pages for i in p]
    assert len(pages) == 3
    assert len(shown) == 2 * PAGE_SIZE + 20
    rows = csv_rows(export(client, "action=case.claim"))
    assert [int(r["id"]) for r in rows] == shown
    assert list(rows[0]) == [
        "id",
        "at",
        "actor_kind",
        "actor",
        "action",
        "object_type",
        "object_id",
        "account_no",
        "before",
        "after",
        "reason",
        "client_address",
    ]
    assert {r["action"] for r in rows} == {"case.claim"} and {r["actor"] for r in rows} == {"ana"}
    assert datetime.fromisoformat(rows[0]["at"]).utcoffset() == timedelta(hours=8)


def test_a_spreadsheet_formula_in_a_cell_is_sent_quoted(auditor):
    for reason in ("=1+1", "+1", "-1", "@SUM(A1)", "plain"):
        write(Actor.system(), "job.fail", reason=reason)
    rows = csv_rows(export(logged_in(auditor), "action=job.fail"))
    assert [r["reason"] for r in rows] == ["plain", "'@SUM(A1)", "'-1", "'+1", "'=1+1"]


def test_the_export_is_audited_with_its_filter_and_rows_and_shows_on_the_trail(auditor):
    write(Actor.engine(), "signal.fire", n=3)
    write(Actor.system(), "job.fail", n=2)
    client = logged_in(auditor)
    before = AuditEvent.objects.count()
    rows = csv_rows(export(client, "actor_kind=engine&action=signal.fire"))
    assert len(rows) == 3
    assert AuditEvent.objects.count() == before + 1
    event = AuditEvent.objects.get(action="audit.export")
    newest = AuditEvent.objects.exclude(pk=event.pk).latest("id")
    assert (event.actor_kind, event.actor_user_id) == ("operator", auditor.pk)
    assert event.after == {
        "filter": {"actor_kind": "engine", "action": "signal.fire"},
        "up_to_id": newest.pk,
        "rows": 3,
    }
    # The export left before its own event was written: a second export holds the first one's event.
    again = csv_rows(export(client))
    assert [r["action"] for r in again][:1] == ["audit.export"]
    text = page(client.get("/audit/?action=audit.export", headers={"accept-language": "en"}))
    assert "audit trail exported" in text and text.count('data-action="audit.export"') == 2


def test_the_export_reads_in_bounded_chunks(auditor, monkeypatch, django_assert_max_num_queries):
    from riskops.audit_trail import selectors

    write(Actor.engine(), "signal.fire", n=25)
    monkeypatch.setattr(selectors, "EXPORT_CHUNK", 10)
    rows = list(selectors.export_rows(selectors.AuditFilters(), selectors.newest_id(), chunk=10))
    assert len(rows) == 25 and [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    newest = selectors.newest_id()
    with django_assert_max_num_queries(3):  # 10 + 10 + 5: three reads
        assert len(list(selectors.export_rows(selectors.AuditFilters(), newest, chunk=10))) == 25


# --- The chain's state


def test_the_chain_panel_says_never_verified_until_a_verification(auditor):
    en = page(logged_in(auditor).get("/audit/", headers={"accept-language": "en"}))
    assert "Audit chain" in en and "never verified" in en


def test_the_chain_panel_shows_the_last_verification_and_checkpoint(auditor):
    from django.template.loader import render_to_string

    at = datetime(2026, 3, 1, 1, 0, tzinfo=ZoneInfo("UTC"))
    chain = {
        "last_verified_at": at,
        "last_verified_by": "aud",
        "last_verified_ok": False,
        "first_bad_event_id": 1234,
        "events_checked": 5000,
        "last_checkpoint_at": at,
        "unsealed": 7,
    }
    text = render_to_string("riskops/_audit_chain_state.html", {"chain": chain})
    assert "2026-03-01 09:00:00" in text and "by aud" in text
    assert "broken at event #1234" in text and "5000 events checked" in text and "7 events since" in text
    more = render_to_string("riskops/_audit_chain_state.html", {"chain": chain | {"unsealed_more": True}})
    assert "more than 7 events since" in more
    ok = render_to_string("riskops/_audit_chain_state.html", {"chain": chain | {"last_verified_ok": True}})
    assert "intact" in ok and "broken" not in ok


def test_the_chain_panel_shows_what_verify_audit_found(auditor):
    """End to end: the panel reads the chain's own records (the last verification, by whom, and what it found)."""
    from django.core.management import CommandError, call_command
    from django.db import connection

    from riskops.core.audit_chain import audit_checkpoint, audit_maintenance, audit_seal
    from riskops.models import AuditEvent

    client = logged_in(auditor)  # the login is an audit event: there is a chain to verify
    call_command("verify_audit", "--by", "nightly-check")
    audit_checkpoint()
    en = page(client.get("/audit/", headers={"accept-language": "en"}))
    assert "by nightly-check" in en and "intact" in en and "never verified" not in en

    audit_seal()
    first = AuditEvent.objects.order_by("id").first()
    assert first is not None
    with audit_maintenance(), connection.cursor() as cur:
        cur.execute("UPDATE riskops_auditevent SET reason = 'edited' WHERE id = %s", [first.pk])
    with pytest.raises(CommandError):
        call_command("verify_audit", "--by", "nightly-check")
    en = page(client.get("/audit/", headers={"accept-language": "en"}))
    assert f"broken at event #{first.pk}" in en


def test_the_operator_filter_is_in_the_statement_so_each_operator_gets_its_own_plan(analyst):
    # Bound, the statement got a generic plan once prepared: the primary key walked back for every operator, 3.3 s
    # for an operator with 50 of 2M events (bench/audit_page.py, `actor_operator_rare`).
    from riskops.audit_trail.selectors import AuditFilters, audit_queryset

    sql, params = audit_queryset(AuditFilters(actor_user_id=analyst.pk)).query.sql_with_params()
    assert f'"actor_user_id" = ({analyst.pk})' in sql
    assert analyst.pk not in params
