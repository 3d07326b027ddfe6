"""Bad input never gives a 500: hypothesis throws generated values at the queue's filters, the inbox's, the bulk
actions and the job requests (form and API), as a senior reviewer (who may do all of them); every answer is < 500.
Derandomized (the same examples each run), so the suite does not pass or fail by luck."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import default_ruleset, flag, make_line, make_role_operator
from tests.helpers import logged_in, token_client

pytestmark = pytest.mark.django_db

# Values a hostile or careless client sends: numbers far out of range, dates that do not exist or overflow, text
# with NUL and control characters, SQL and markup, floats' special names.
NASTY = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "9223372036854775808",
            "9999-12-31",
            "0001-01-01",
            "2026-02-30",
            "99999-01-01",
            "1e309",
            "NaN",
            "Infinity",
            "-0",
            "\x00",
            "' OR 1=1--",
            "<script>",
            "１２３",
            "me",
            "none",
            "open",
            "MULTI_HEAD",
            "2026-12-01",
        ]
    ),
    st.text(max_size=40),
)
QUEUE_FIELDS = [
    "status",
    "family",
    "tier",
    "assignee",
    "sla",
    "appeal",
    "opened_from",
    "opened_to",
    "exposure_min",
    "exposure_max",
    "q",
    "after",
    "before",
]
INBOX_FIELDS = ["status", "reason", "sla", "assignee", "q", "after", "before"]
JOB_FIELDS = ["kind", "selection_kind", "case_ids", "line_id", "query", "reason"]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _params(fields: list[str]) -> st.SearchStrategy[dict[str, str]]:
    return st.dictionaries(st.sampled_from(fields), NASTY, max_size=len(fields))


@pytest.fixture
def senior_client():
    default_ruleset()
    flag(make_line(), "OVERDUE")
    return logged_in(make_role_operator("senior_reviewer"))


@pytest.fixture
def senior_api(senior_client):
    """The fixtures are made once per test, not per example: hypothesis runs every example in the same test."""
    return token_client(make_role_operator("senior_reviewer", "sen-api"))


@SETTINGS
@given(params=_params(QUEUE_FIELDS))
def test_queue_filters_never_give_a_5xx(senior_client, params):
    assert senior_client.get("/queue/", params).status_code < 500


@SETTINGS
@given(params=_params(INBOX_FIELDS))
def test_inbox_filters_never_give_a_5xx(senior_client, params):
    assert senior_client.get("/appeals/", params).status_code < 500


@SETTINGS
@given(
    action=NASTY | st.sampled_from(["assign", "release"]),
    ids=st.lists(NASTY, max_size=4),
    assignee=NASTY,
)
def test_bulk_actions_never_give_a_5xx(senior_client, action, ids, assignee):
    data = {"action": action, "case_ids": ids, "assignee": assignee}
    assert senior_client.post("/queue/bulk/", data).status_code < 500
    data = {"action": action, "appeal_ids": ids, "assignee": assignee}
    assert senior_client.post("/appeals/assign/", data).status_code < 500


@SETTINGS
@given(params=_params(JOB_FIELDS))
def test_job_requests_never_give_a_5xx(senior_client, params):
    assert senior_client.post("/jobs/new/", params).status_code < 500


@SETTINGS
@given(body=st.dictionaries(st.sampled_from(["kind", "selection_kind", "case_ids", "filter", "reason"]), JSON_VALUES))
def test_the_jobs_api_never_gives_a_5xx(senior_api, body):
    response = senior_api.post("/api/v1/jobs/", body, format="json")
    assert response.status_code < 500, response.content
