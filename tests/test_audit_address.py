"""Every audit event a request causes records the client's address: an operator's page, the API, a borrower's
link; the engine's and jobs' own events have none."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from appeals import links
from riskops.models import AuditEvent
from tests.factories import frozen_multi_head_case, make_role_operator
from tests.helpers import STATEMENT, token_client

pytestmark = pytest.mark.django_db


def _addresses(action: str) -> set[str | None]:
    return set(AuditEvent.objects.filter(action=action).values_list("client_address", flat=True))


def test_each_entry_point_records_where_the_change_came_from():
    case = frozen_multi_head_case()
    assert _addresses("signal.fire") == {None}  # the engine acted on its own

    # A borrower's appeal through the signed link.
    borrower = Client(REMOTE_ADDR="203.0.113.20")
    path = links.appeal_link(case.line_id).removeprefix(settings.PUBLIC_BASE_URL)
    response = borrower.post(path, {"reason": "repaid", "statement": STATEMENT})
    assert response.status_code == 302
    assert _addresses("appeal.submit") == {"203.0.113.20"}

    # An operator's note on the case page.
    analyst = make_role_operator("analyst", "ana")
    console = Client(REMOTE_ADDR="10.20.30.40")
    console.force_login(analyst)
    console.post(f"/cases/{case.pk}/notes/", {"text": "借款人称下周还款"})
    assert _addresses("note.add") == {"10.20.30.40"}

    # A job requested through the API.
    senior = make_role_operator("senior_reviewer", "sen")
    api = token_client(senior)
    api.defaults["REMOTE_ADDR"] = "192.0.2.55"
    requested = api.post(
        "/api/v1/jobs/",
        {"kind": "reevaluate", "selection_kind": "ids", "account_nos": [case.line.account_no]},
        format="json",
    )
    assert requested.status_code == 201, requested.content
    assert _addresses("job.request") == {"192.0.2.55"}
