"""Bad input gets a 400 (or the form's message) and changes nothing, never a 500 (issue 14's probes)."""

from __future__ import annotations

import pytest
from django.core import signing

from riskops.models import AuditEvent, Job
from tests.factories import flag, make_line
from tests.helpers import BOUNDARY, logged_in, messages_of, multipart, token_client

pytestmark = pytest.mark.django_db

EN = {"accept-language": "en"}
HUGE = str(2**63)  # one past PostgreSQL's bigint


def _snapshot():
    from accounts.models import Case

    return list(Case.objects.values_list("pk", "status", "assignee_id", "version")), AuditEvent.objects.exclude(
        action__startswith="auth."
    ).count()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"action": "release", "case_ids": [HUGE]},
            f"{HUGE} is not an id (a whole number from 1 to 9223372036854775807)",
        ),
        (
            {"action": "assign", "case_ids": ["1"], "assignee": HUGE},
            "Ensure this value is less than or equal to 9223372036854775807.",
        ),
        ({"action": "release", "case_ids": ["-3"]}, "-3 is not an id (a whole number from 1 to 9223372036854775807)"),
        ({"action": "release", "case_ids": ["x"]}, "x is not an id (a whole number from 1 to 9223372036854775807)"),
    ],
)
def test_out_of_range_ids_in_the_queues_bulk_actions_say_why_and_change_nothing(senior, data, message):
    flag(make_line(), "OVERDUE")
    before = _snapshot()

    response = logged_in(senior).post("/queue/bulk/", data, headers=EN, follow=True)

    assert response.status_code == 200
    assert message in " ".join(messages_of(response))
    assert _snapshot() == before


def test_out_of_range_ids_in_a_job_request_say_why_and_start_nothing(senior):
    response = logged_in(senior).post(
        "/jobs/new/", {"kind": "reevaluate", "selection_kind": "ids", "case_ids": [HUGE]}, headers=EN, follow=True
    )

    assert response.status_code == 200
    assert f"{HUGE} is not an id (a whole number from 1 to 9223372036854775807)" in " ".join(messages_of(response))
    assert not Job.objects.exists()


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_an_opening_date_out_of_range_gets_the_forms_message(analyst, day):
    response = logged_in(analyst).get(f"/queue/?opened_to={day}", headers=EN)

    assert response.status_code == 200
    assert "Enter a date from 2000-01-01 to 2999-12-31." in response.content.decode()


def test_the_jobs_apis_filter_with_a_date_out_of_range_is_a_400(senior):
    response = token_client(senior).post(
        "/api/v1/jobs/",
        {"kind": "reevaluate", "selection_kind": "filter", "filter": {"opened_to": "9999-12-31"}},
        format="json",
        headers=EN,
    )

    assert response.status_code == 400
    assert "Enter a date from 2000-01-01 to 2999-12-31." in str(response.json())
    assert not Job.objects.exists()


def test_a_job_that_selects_no_account_is_refused(senior):
    response = token_client(senior).post(
        "/api/v1/jobs/",
        {"kind": "reevaluate", "selection_kind": "filter", "filter": {"family": "OVERDUE"}},
        format="json",
        headers=EN,
    )

    assert response.status_code == 400
    assert "The selection holds no account; nothing to do" in str(response.json())
    assert not Job.objects.exists()


def test_a_signed_link_without_its_timestamp_is_an_invalid_link(client):
    line = make_line()
    untimed = signing.Signer(salt="riskops.appeals.link").sign(f"l{line.pk}")

    response = client.get(f"/a/{untimed}/?lang=en")

    assert response.status_code == 404
    assert "This link is not valid" in response.content.decode()


# --- request bodies are capped before anything reads them


def test_an_anonymous_multipart_post_to_the_login_page_is_refused_unread(client):
    # The body declared is 100 MiB and only a few bytes come: reading it would fail; it must not be read at all.
    response = client.post(
        "/login/",
        data=b'--x\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n\r\nAAAA\r\n--x--\r\n',
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(100 * 1024 * 1024),
    )

    assert response.status_code == 413
    assert response.content.decode() == ("The request body is 104,857,600 bytes; this address takes at most 1,048,576")


def test_the_appeals_api_refuses_a_body_over_its_documents_limit_as_json(integration):
    response = token_client(integration).post(
        "/api/v1/appeals/", data=b"x", content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(200 * 1024 * 1024), headers=EN,
    )  # fmt: skip

    assert response.status_code == 413
    assert response.json() == {"detail": "The request body is 209,715,200 bytes; this address takes at most 53,477,376"}


def test_an_api_address_that_names_nothing_is_a_json_404(senior):
    """Found by schemathesis: /api/v1/jobs/null,null/ matched no pattern and got Django's HTML page."""
    response = token_client(senior).get("/api/v1/jobs/null,null/", headers=EN)
    assert (response.status_code, response["Content-Type"], response.json()) == (
        404,
        "application/json",
        {"detail": "Not found."},
    )
    assert "<html" in logged_in(senior).get("/nowhere/", headers=EN).content.decode()


def test_an_api_request_django_refuses_to_parse_is_a_json_400(senior):
    """Found by schemathesis: eleven files in one appeal upload were refused by Django's parser with an HTML page."""
    body = multipart({"account_no": "x", "reason": "other"}, [(f"d{n}.pdf", b"%PDF-1.4") for n in range(11)])
    response = token_client(senior).post(
        "/api/v1/appeals/", data=body, content_type=f"multipart/form-data; boundary={BOUNDARY}", headers=EN
    )
    assert (response.status_code, response["Content-Type"]) == (400, "application/json")
    assert response.json()["detail"].startswith("The request could not be read: The number of files exceeded")
