"""Ingestion: borrowers, lines and events in through the events API, stored exactly once, and the engine reacting.

Times are relative to the real clock: the engine's reaction evaluates at `timezone.now()`, as in production.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import (
    Borrower,
    CreditInquiry,
    CreditLine,
    Drawdown,
    ExternalIncomeRecord,
    Installment,
    LimitChange,
    LineChange,
    ProfileUpdate,
    Repayment,
    Signal,
    SignalStatus,
    TouchedLine,
    Transfer,
)
from ingest.models import IngestBatch
from riskops.models import AuditEvent
from tests.factories import make_role_operator
from tests.helpers import token_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ruleset")]

NOW = timezone.now().replace(microsecond=0)
VALID_ID = "11010519491231002X"  # a resident id with a valid check character (GB 11643)


def ago(days: float = 0, **kw: float) -> str:
    return (NOW - timedelta(days=days, **kw)).isoformat()


def day(days_ago: int) -> str:
    return (timezone.localdate(NOW) - timedelta(days=days_ago)).isoformat()


@pytest.fixture
def feed():
    return make_role_operator("integration", "ledger")


@pytest.fixture(autouse=True)
def _commits(django_capture_on_commit_callbacks: Any) -> Any:
    """Each request commits (the test's transaction does not): run what waits for the commit, the engine's
    reaction among it, as a real request would."""
    global _on_commit
    _on_commit = django_capture_on_commit_callbacks
    yield
    _on_commit = None


_on_commit: Any = None


def send(user: Any, items: list[Any], **body: Any) -> Any:
    with _on_commit(execute=True):
        return token_client(user).post("/api/v1/events/", {"items": items, **body}, format="json")


def account(ref: str = "ACC-1", **fields: Any) -> dict[str, Any]:
    return {"kind": "account", "account": ref, "occurred_at": ago(400), "limit": "20000.00", **fields}


def stored_rows() -> dict[str, int]:
    return {
        m.__name__: m.objects.count()
        for m in (
            Borrower,
            CreditLine,
            CreditInquiry,
            Drawdown,
            Installment,
            Transfer,
            ExternalIncomeRecord,
            ProfileUpdate,
            Repayment,
            LimitChange,
            TouchedLine,
        )
    }


# --- 1. every kind


def test_every_kind_is_stored_with_what_it_implies(feed):
    items = [
        account(
            "ACC-1",
            name="李雷",
            phone="+86 138-1234-5678",
            national_id=VALID_ID.lower(),
            city="杭州",
            occupation="engineer",
            employer="Acme",
            monthly_income="12000",
        ),
        {"kind": "credit_inquiry", "upstream_id": "q1", "account": "ACC-1", "occurred_at": ago(3), "institution": "Bank A"},
        {"kind": "drawdown", "upstream_id": "d1", "account": "ACC-1", "occurred_at": ago(20), "amount": 3000, "term_months": 3},
        {"kind": "installment", "upstream_id": "i1", "account": "ACC-1", "occurred_at": ago(20), "due_date": day(-10),
         "amount": "1000.00", "drawdown": "d1"},
        {"kind": "transfer", "upstream_id": "t1", "account": "ACC-1", "occurred_at": ago(19), "amount": "200.00",
         "counterparty": "Mall", "counterparty_category": "consumption"},
        {"kind": "income_record", "upstream_id": "r1", "account": "ACC-1", "occurred_at": ago(5), "source": "tax",
         "employer": "Acme", "monthly_income": "12500.00"},
        {"kind": "profile_update", "upstream_id": "p1", "account": "ACC-1", "occurred_at": ago(2), "monthly_income": "13000"},
        {"kind": "repayment", "upstream_id": "pay1", "account": "ACC-1", "occurred_at": ago(1), "installment": "i1",
         "amount": "400.00"},
        {"kind": "limit_change", "upstream_id": "lc1", "account": "ACC-1", "occurred_at": ago(1), "limit": "15000.00",
         "reason": "annual review"},
    ]  # fmt: skip
    response = send(feed, items)

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "stored"
    assert body["errors"] == []
    every_kind = ["account", "profile_update", "credit_inquiry", "drawdown", "installment", "transfer",
                  "income_record", "repayment", "limit_change"]  # fmt: skip
    assert {k: (c["received"], c["stored"]) for k, c in body["counts"].items()} == dict.fromkeys(every_kind, (1, 1))
    line = CreditLine.objects.select_related("borrower").get(account_no="ACC-1")
    b = line.borrower
    assert (b.name, b.phone, b.national_id, b.city, b.employer) == ("李雷", "13812345678", VALID_ID, "杭州", "Acme")
    assert b.declared_monthly_income == Decimal("13000.00")  # the profile update's
    assert b.profile_updated_at == NOW - timedelta(days=2)
    assert ProfileUpdate.objects.get(upstream_id="p1").monthly_income == Decimal("13000.00")
    installment = Installment.objects.get(upstream_id="i1")
    assert installment.drawdown_id == Drawdown.objects.get(upstream_id="d1").pk
    assert (installment.paid_amount, installment.paid_at) == (Decimal("400.00"), None)  # partly paid
    # Drawn 3,000 then repaid 400; the limit went to 15,000 upstream.
    assert (line.limit, line.outstanding, line.available) == (
        Decimal("15000.00"),
        Decimal("2600.00"),
        Decimal("12400.00"),
    )
    change = LineChange.objects.get(line=line, kind="limit_change")
    assert (change.limit_before, change.limit_after, change.reason) == (
        Decimal("20000.00"),
        Decimal("15000.00"),
        "upstream: annual review",
    )
    assert not line.notifications.filter(kind="limit_change").exists()  # the lending app tells its own borrower
    audit = AuditEvent.objects.get(action="ingest.batch")
    assert audit.after is not None
    assert (audit.object_id, audit.actor_label, audit.after["counts"]["drawdown"]["stored"]) == (
        body["batch"],
        "ledger",
        1,
    )
    assert AuditEvent.objects.filter(action="ingest.batch").count() == 1  # one per batch, not one per row


def test_an_account_of_any_format_with_only_its_limit_is_created_and_searchable(feed, senior):
    response = send(feed, [account("bureau/2026:ab-77")])

    assert response.status_code == 201
    line = CreditLine.objects.get(account_no="bureau/2026:ab-77")
    assert (line.limit, line.available, line.outstanding, line.status) == (
        Decimal("20000.00"), Decimal("20000.00"), Decimal("0.00"), "active",
    )  # fmt: skip
    assert (line.borrower.name, line.borrower.phone, line.borrower.declared_monthly_income) == ("", "", None)
    from django.test import Client

    client = Client()
    client.force_login(senior)
    page = client.get("/queue/", {"q": "bureau/2026:ab-77"})
    assert page.status_code == 200
    assert "Search by an account number" not in page.content.decode()


def test_an_account_update_changes_only_the_fields_sent(feed):
    send(feed, [account("ACC-1", name="李雷", employer="Acme", monthly_income="9000")])
    response = send(feed, [{"kind": "account", "account": "ACC-1", "occurred_at": ago(1), "city": "上海"}])

    assert response.json()["counts"]["account"] == {"received": 1, "stored": 1, "duplicate": 0, "failed": 0}
    b = Borrower.objects.get(credit_line__account_no="ACC-1")
    assert (b.name, b.employer, b.city, b.declared_monthly_income) == ("李雷", "Acme", "上海", Decimal("9000.00"))


def test_an_existing_accounts_limit_changes_only_by_a_limit_change(feed):
    send(feed, [account("ACC-1")])
    response = send(feed, [account("ACC-1", limit="50000")])

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"index": 0, "field": "limit", "message": "an existing account's limit changes by a limit_change event"}
    ]
    assert CreditLine.objects.get(account_no="ACC-1").limit == Decimal("20000.00")


# --- 2. every validation error, with its message, and nothing stored


@pytest.mark.parametrize(
    ("item", "field", "message"),
    [
        ({"kind": "credit_inquiry", "account": "ACC-1", "occurred_at": "2026-01-01T00:00:00+08:00", "institution": "B"}, "upstream_id",
         "this field is required"),
        ({"kind": "credit_inquiry", "upstream_id": "q", "account": "ACC-1", "occurred_at": "yesterday",
          "institution": "B"}, "occurred_at", "must be a date and time in ISO 8601, e.g. 2026-11-30T14:05:00+08:00"),
        ({"kind": "drawdown", "upstream_id": "d", "account": "ACC-1", "occurred_at": "2026-01-01T00:00:00+08:00",
          "amount": 12.345, "term_months": 3}, "amount", "must be an amount in yuan with at most 2 decimals, e.g. 1200.50"),
        ({"kind": "drawdown", "upstream_id": "d", "account": "ACC-1", "occurred_at": "2026-01-01T00:00:00+08:00",
          "amount": "-5", "term_months": 3}, "amount", "must be more than 0"),
        ({"kind": "drawdown", "upstream_id": "d", "account": "ACC-1", "occurred_at": "2026-01-01T00:00:00+08:00",
          "amount": "500", "term_months": "three"}, "term_months", "must be a whole number of months from 1 to 360"),
        ({"kind": "transfer", "upstream_id": "t", "account": "ACC-1", "occurred_at": "2026-01-01T00:00:00+08:00",
          "amount": "5", "counterparty": "X", "counterparty_category": "lottery"}, "counterparty_category",
         "must be one of: consumption, securities, futures, crypto, gambling, real_estate, other"),
        ({"kind": "credit_inquiry", "upstream_id": "q", "account": "ACC-1", "occurred_at": "2999-01-01T00:00:00+08:00",
          "institution": "B"}, "occurred_at", "is in the future"),
        ({"kind": "credit_inquiry", "upstream_id": "q", "account": "ACC-1", "occurred_at": "2026-01-01T00:00:00+08:00",
          "institution": "B", "colour": "red"}, "colour", "unknown field for kind credit_inquiry"),
        ({"kind": "loan", "upstream_id": "q"}, "kind",
         "unknown kind; one of: account, profile_update, credit_inquiry, drawdown, installment, transfer, "
         "income_record, repayment, limit_change"),
        ({"upstream_id": "q"}, "kind", "this field is required"),
        ({"kind": "account", "account": "ACC-2", "occurred_at": "2026-01-01T00:00:00+08:00", "limit": "1000",
          "phone": "12345"}, "phone", "must be a mainland China mobile number: 11 digits starting with 1, e.g. 13812345678"),
        ({"kind": "account", "account": "ACC-2", "occurred_at": "2026-01-01T00:00:00+08:00", "limit": "1000",
          "national_id": "110105194912310021"}, "national_id",
         "must be an 18-character resident id number with a valid birth date and check digit"),
        ({"kind": "account", "account": "has space", "occurred_at": "2026-01-01T00:00:00+08:00", "limit": "1"},
         "account", "must be 1 to 64 letters, digits or . _ : / - (starting with a letter or digit)"),
        ({"kind": "account", "account": "ACC-2", "occurred_at": "2026-01-01T00:00:00+08:00"}, "limit",
         "this field is required for a new account"),
        ({"kind": "credit_inquiry", "upstream_id": "q", "account": "NOPE", "occurred_at": "2026-01-01T00:00:00+08:00",
          "institution": "B"}, "account", "unknown account 'NOPE'"),
        ({"kind": "installment", "upstream_id": "i", "account": "ACC-1", "occurred_at": "2026-01-01T00:00:00+08:00",
          "due_date": "2026-02-01", "amount": "5", "drawdown": "nope"}, "drawdown", "unknown drawdown 'nope'"),
        ({"kind": "repayment", "upstream_id": "p", "account": "ACC-1", "occurred_at": "2026-01-01T00:00:00+08:00",
          "installment": "nope", "amount": "5"}, "installment", "unknown installment 'nope'"),
        ({"kind": "profile_update", "upstream_id": "u", "account": "ACC-1", "occurred_at": "2026-01-01T00:00:00+08:00"},
         "", "a profile update needs an employer, a monthly income or both"),
        ("not an object", "", "must be an object with a kind and its fields"),
    ],
)  # fmt: skip
def test_a_bad_item_rejects_the_batch_with_its_message_and_nothing_is_stored(feed, item, field, message):
    send(feed, [account("ACC-1")])
    before = stored_rows()
    good = {
        "kind": "credit_inquiry",
        "upstream_id": "good",
        "account": "ACC-1",
        "occurred_at": ago(1),
        "institution": "B",
    }

    response = send(feed, [good, item])

    assert response.status_code == 400
    body = response.json()
    assert body["errors"] == [{"index": 1, "field": field, "message": message}]
    assert body["detail"] == "1 items have errors; nothing was stored"
    assert body["status"] == "rejected"
    assert stored_rows() == before
    kept = IngestBatch.objects.get(pk=body["batch"]).errors
    assert [{k: e[k] for k in ("index", "field", "message")} for e in kept] == body["errors"]


def test_the_same_upstream_id_with_another_body_is_a_conflict_for_that_row(feed):
    q = {"kind": "credit_inquiry", "upstream_id": "q1", "account": "ACC-1", "occurred_at": ago(1), "institution": "A"}
    send(feed, [account("ACC-1"), q])

    response = send(feed, [{**q, "institution": "B"}])

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {
            "index": 0,
            "field": "upstream_id",
            "message": "upstream id 'q1' was received before with a different body (institution)",
        }
    ]
    assert CreditInquiry.objects.get(upstream_id="q1").institution == "A"


def test_a_resent_batch_inserts_nothing_and_says_so(feed):
    items = [
        account("ACC-1"),
        {
            "kind": "drawdown",
            "upstream_id": "d1",
            "account": "ACC-1",
            "occurred_at": ago(2),
            "amount": "100",
            "term_months": 1,
        },
        {"kind": "credit_inquiry", "upstream_id": "q1", "account": "ACC-1", "occurred_at": ago(1), "institution": "A"},
    ]
    send(feed, items)
    before = stored_rows()
    line = CreditLine.objects.get(account_no="ACC-1")

    response = send(feed, items)

    assert response.status_code == 201
    assert {k: c["duplicate"] for k, c in response.json()["counts"].items()} == {
        "account": 1, "drawdown": 1, "credit_inquiry": 1,
    }  # fmt: skip
    assert stored_rows() == before
    again = CreditLine.objects.get(pk=line.pk)
    assert (again.outstanding, again.available) == (line.outstanding, line.available)  # the drawdown counted once


def test_partial_mode_keeps_the_valid_rows_and_answers_207(feed):
    send(feed, [account("ACC-1")])
    items = [
        {"kind": "credit_inquiry", "upstream_id": "q1", "account": "ACC-1", "occurred_at": ago(1), "institution": "A"},
        {"kind": "credit_inquiry", "upstream_id": "q2", "account": "NOPE", "occurred_at": ago(1), "institution": "A"},
        {"kind": "credit_inquiry", "upstream_id": "q3", "account": "ACC-1", "occurred_at": ago(1)},
    ]

    response = send(feed, items, mode="partial")

    assert response.status_code == 207
    body = response.json()
    assert body["errors"] == [
        {"index": 1, "field": "account", "message": "unknown account 'NOPE'"},
        {"index": 2, "field": "institution", "message": "this field is required"},
    ]
    assert body["counts"]["credit_inquiry"] == {"received": 3, "stored": 1, "duplicate": 0, "failed": 2}
    assert list(CreditInquiry.objects.values_list("upstream_id", flat=True)) == ["q1"]
    assert token_client(feed).get(f"/api/v1/ingest/batches/{body['batch']}/").json() == body


def test_an_oversize_batch_is_refused_with_413_and_nothing_stored(feed, settings):
    before = stored_rows()
    items = [account(f"A{i}") for i in range(10_001)]

    response = send(feed, items)

    assert (response.status_code, response.json()) == (
        413,
        {"detail": "A batch holds at most 10,000 items; this one has 10,001"},
    )
    settings.INGEST_MAX_BODY_BYTES = 1000
    response = send(feed, [account(f"A{i}") for i in range(20)])
    assert response.status_code == 413
    assert response.json()["detail"].startswith("The body is ")
    assert response.json()["detail"].endswith("bytes; the limit is 1,000 bytes")
    assert stored_rows() == before


def test_only_a_token_with_ingest_events_may_send(integration, analyst):
    feed = make_role_operator("integration", "feed")
    assert send(feed, [account()]).status_code == 201
    assert send(analyst, [account("B")]).json() == {"detail": "This token may not send events"}
    from rest_framework.test import APIClient

    assert APIClient().post("/api/v1/events/", {"items": []}, format="json").status_code == 401


def test_bad_json_gets_a_clear_message(feed):
    client = token_client(feed)
    response = client.post("/api/v1/events/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("The body is not valid JSON: ")
    response = client.post("/api/v1/events/", {"items": [account()], "mode": "some"}, format="json")
    assert response.json() == {"detail": '"mode" must be "all" (the default) or "partial"'}


# --- 3. the engine reacts


def _overdue_account(feed: Any, ref: str = "ACC-1") -> None:
    response = send(
        feed,
        [
            account(ref, phone="13812345678"),
            {"kind": "installment", "upstream_id": f"{ref}-i1", "account": ref, "occurred_at": ago(90),
             "due_date": day(45), "amount": "800.00"},
        ],
    )  # fmt: skip
    assert response.status_code == 201


def test_an_overdue_installment_freezes_the_line_once_the_batch_is_in(feed):
    _overdue_account(feed)

    line = CreditLine.objects.get(account_no="ACC-1")
    assert line.status == "frozen"
    assert Signal.objects.get(line=line, status=SignalStatus.ACTIVE).code == "OVERDUE"
    assert TouchedLine.objects.count() == 0  # claimed and evaluated


def test_a_repayment_through_the_api_clears_overdue_and_the_line_stays_frozen(feed, senior):
    _overdue_account(feed)
    line = CreditLine.objects.get(account_no="ACC-1")
    assert line.status == "frozen"

    response = send(
        feed,
        [{"kind": "repayment", "upstream_id": "pay-1", "account": "ACC-1", "occurred_at": ago(0, hours=1),
          "installment": "ACC-1-i1", "amount": "800.00"}],
    )  # fmt: skip

    assert response.status_code == 201
    installment = Installment.objects.get(upstream_id="ACC-1-i1")
    assert (installment.paid_amount, installment.paid_at) == (Decimal("800.00"), NOW - timedelta(hours=1))
    signal = Signal.objects.get(line=line, code="OVERDUE")
    assert signal.status == SignalStatus.CLEARED
    assert CreditLine.objects.get(pk=line.pk).status == "frozen"  # a person or a job decides the unfreeze
    from django.test import Client

    client = Client()
    client.force_login(senior)
    case_page = client.get(f"/cases/{line.cases.get().pk}/", headers={"accept-language": "en"}).content.decode()
    assert f'<article class="signal st-cleared" id="signal-{signal.pk}">' in case_page  # the reason no longer holds
    # Paying more than is still due is refused, and a re-sent repayment is a duplicate.
    again = send(
        feed,
        [{"kind": "repayment", "upstream_id": "pay-1", "account": "ACC-1", "occurred_at": ago(0, hours=1),
          "installment": "ACC-1-i1", "amount": "800.00"},
         {"kind": "repayment", "upstream_id": "pay-2", "account": "ACC-1", "occurred_at": ago(0, hours=1),
          "installment": "ACC-1-i1", "amount": "1.00"}],
    )  # fmt: skip
    assert again.json()["errors"] == [
        {"index": 1, "field": "amount", "message": "is more than the 0.00 still due on installment 'ACC-1-i1'"}
    ]


def test_a_backfill_is_stored_without_the_engine_reacting(feed):
    response = send(
        feed,
        [account("ACC-1"),
         {"kind": "installment", "upstream_id": "i1", "account": "ACC-1", "occurred_at": ago(90), "due_date": day(45),
          "amount": "800.00"}],
        backfill=True,
    )  # fmt: skip

    assert response.status_code == 201
    line = CreditLine.objects.get(account_no="ACC-1")
    assert (line.status, Signal.objects.filter(line=line).count(), TouchedLine.objects.count()) == ("active", 0, 0)


# --- 4. a dataset written by hand, with its flags counted without the engine


def _dataset() -> tuple[list[dict[str, Any]], dict[str, set[str]]]:
    """Eight borrowers of an outside lender, each with the signals a reader of DESIGN.md's default rules expects."""
    items: list[dict[str, Any]] = []
    expected: dict[str, set[str]] = {}

    def add(ref: str, flags: set[str], *events: dict[str, Any], **fields: Any) -> None:
        items.append(account(ref, **fields))
        for n, e in enumerate(events):
            items.append({"upstream_id": f"{ref}-{n}", "account": ref, **e})
        expected[ref] = flags

    def inquiry(days: float, institution: str) -> dict[str, Any]:
        return {"kind": "credit_inquiry", "occurred_at": ago(days), "institution": institution}

    def installment(due_days_ago: int, amount: str = "500.00") -> dict[str, Any]:
        return {
            "kind": "installment",
            "occurred_at": ago(due_days_ago + 30),
            "due_date": day(due_days_ago),
            "amount": amount,
        }

    # 4 inquiries from 3 institutions within 30 days: MULTI_HEAD. One outside the window does not count.
    add("mh-yes", {"MULTI_HEAD"}, inquiry(1, "A"), inquiry(5, "B"), inquiry(10, "C"), inquiry(20, "A"))
    add("mh-no", set(), inquiry(1, "A"), inquiry(5, "B"), inquiry(10, "C"), inquiry(45, "D"))
    # 31 days past due: OVERDUE (high); 10 days: the low-severity reminder only.
    add("od-yes", {"OVERDUE"}, installment(31))
    add("od-low", {"OVERDUE:low"}, installment(10))
    # 60% of a drawdown to securities within 7 days: ABNORMAL_USE; 40% does not.
    add("au-yes", {"ABNORMAL_USE"},
        {"kind": "drawdown", "occurred_at": ago(10), "amount": "10000.00", "term_months": 6},
        {"kind": "transfer", "occurred_at": ago(8), "amount": "6000.00", "counterparty": "Broker",
         "counterparty_category": "securities"})  # fmt: skip
    add("au-no", set(),
        {"kind": "drawdown", "occurred_at": ago(10), "amount": "10000.00", "term_months": 6},
        {"kind": "transfer", "occurred_at": ago(8), "amount": "4000.00", "counterparty": "Broker",
         "counterparty_category": "securities"})  # fmt: skip
    # An income record 90 days old showing a 50% drop, no profile update since: PROFILE_STALE.
    add("ps-yes", {"PROFILE_STALE"},
        {"kind": "income_record", "occurred_at": ago(90), "source": "tax", "employer": "Acme", "monthly_income": "5000"},
        employer="Acme", monthly_income="10000")  # fmt: skip
    # No employer and no income declared (the upstream did not have them): nothing to be stale against.
    add("ps-unknown", set(),
        {"kind": "income_record", "occurred_at": ago(90), "source": "tax", "employer": "Acme", "monthly_income": "5000"})  # fmt: skip
    return items, expected


def test_a_hand_written_dataset_through_the_api_gives_exactly_its_flags(feed):
    items, expected = _dataset()

    response = send(feed, items)

    assert response.status_code == 201, response.json()["errors"]
    fired: dict[str, set[str]] = {ref: set() for ref in expected}
    for account_no, code, severity in Signal.objects.filter(status=SignalStatus.ACTIVE).values_list(
        "line__account_no", "code", "severity"
    ):
        fired[account_no].add(code if severity != "low" else f"{code}:low")
    assert fired == expected


# --- 5. the API's schema and its docs page


def test_the_openapi_schema_describes_every_endpoint_and_the_one_error_format(feed):
    response = token_client(feed).get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == {
        "/api/v1/appeals/", "/api/v1/appeals/{appeal_id}/", "/api/v1/events/", "/api/v1/ingest/batches/{batch_id}/",
        "/api/v1/jobs/", "/api/v1/jobs/{job_id}/",
    }  # fmt: skip
    events = schema["paths"]["/api/v1/events/"]["post"]
    assert set(events["responses"]) == {"201", "207", "400", "401", "403", "413"}
    assert set(schema["components"]["schemas"]["ErrorOutput"]["properties"]) == {"detail", "errors"}


def test_the_api_docs_page_is_served_from_the_package_not_a_cdn(senior):
    from django.test import Client

    client = Client()
    client.force_login(senior)
    body = client.get("/api/docs/").content.decode()

    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in body
    assert "cdn" not in body.lower() and "https://" not in body


# --- 6. concurrent senders


@pytest.mark.django_db(transaction=True)
def test_two_batches_sending_the_same_new_account_and_repayment_at_once_store_each_once():
    from tests.helpers import in_threads

    feed = make_role_operator("integration", "ledger")
    base = [account("ACC-1"), {"kind": "installment", "upstream_id": "i1", "account": "ACC-1", "occurred_at": ago(60),
            "due_date": day(40), "amount": "800.00"}]  # fmt: skip
    pay = {"kind": "repayment", "upstream_id": "pay-1", "account": "ACC-1", "occurred_at": ago(1), "installment": "i1",
           "amount": "800.00"}  # fmt: skip

    def post() -> int:
        client = token_client(feed)
        return client.post("/api/v1/events/", {"items": [*base, pay]}, format="json").status_code

    assert in_threads(post, post) == [201, 201]
    assert CreditLine.objects.filter(account_no="ACC-1").count() == 1
    assert (Installment.objects.count(), Repayment.objects.count()) == (1, 1)
    installment = Installment.objects.get()
    assert installment.paid_amount == Decimal("800.00")  # paid once, not twice
    line = CreditLine.objects.get()
    assert line.available == line.limit


def test_a_batch_costs_the_same_queries_whatever_its_size(feed, django_assert_num_queries):
    from ingest.services import events_ingest
    from riskops.core.audit import Actor

    def batch(n: int, tag: str) -> list[dict[str, Any]]:
        return [account(f"{tag}-{i}") for i in range(n)] + [
            {"kind": "credit_inquiry", "upstream_id": f"{tag}-q{i}", "account": f"{tag}-{i}", "occurred_at": ago(1),
             "institution": "A"}
            for i in range(n)
        ]  # fmt: skip

    actor = Actor.operator(feed)
    events_ingest(items=batch(2, "warm"), actor=actor, source="api")
    counts = []
    for n, tag in [(5, "small"), (500, "large")]:
        # The transaction and a savepoint (4 with their releases), the account-creation locks, the known lines,
        # the new borrowers, the new lines, the inquiries, the touched marks, the batch's record, its audit event:
        # the same 12 statements for 10 items and for 1,000.
        with django_assert_num_queries(12) as queries:
            events_ingest(items=batch(n, tag), actor=actor, source="api")
        counts.append(len(queries.captured_queries))
    assert counts == [12, 12]
    assert CreditInquiry.objects.filter(upstream_id__startswith="large-").count() == 500


@pytest.mark.django_db(transaction=True)
def test_two_workers_claiming_touched_lines_at_once_evaluate_each_line_once_and_leave_no_mark():
    from accounts.services.touched import touched_evaluate
    from tests.factories import default_ruleset
    from tests.helpers import in_threads

    default_ruleset()
    feed = make_role_operator("integration", "ledger")
    items: list[dict[str, Any]] = []
    for i in range(40):
        items += [account(f"W{i}"), {"kind": "installment", "upstream_id": f"W{i}-i", "account": f"W{i}",
                  "occurred_at": ago(90), "due_date": day(45), "amount": "100.00"}]  # fmt: skip
    assert send_without_reaction(feed, items).status_code == 201
    assert TouchedLine.objects.count() == 40

    done = in_threads(lambda: touched_evaluate(limit=25), lambda: touched_evaluate(limit=25))

    assert sorted(done) == [15, 25]  # the second took what the first had not locked
    assert TouchedLine.objects.count() == 0
    assert Signal.objects.filter(code="OVERDUE", status=SignalStatus.ACTIVE).count() == 40  # one each, not two
    assert CreditLine.objects.filter(status="frozen").count() == 40


def send_without_reaction(user: Any, items: list[Any]) -> Any:
    """A batch whose marks wait for the workers: tasks are not run in-process for it (the reaction is published to
    the broker, where no worker listens during the test), so the test runs the workers' part itself."""
    from riskops.celery import app as celery_app

    celery_app.conf.task_always_eager = False
    try:
        return token_client(user).post("/api/v1/events/", {"items": items}, format="json")
    finally:
        celery_app.conf.task_always_eager = True
