"""Schemathesis against the OpenAPI schema (/api/schema/), in-process through the WSGI application, with a token
whose user may use every operation: no generated request gets a 5xx, and every response conforms to the schema
(body, content type, headers). Bounded: a few dozen examples per operation."""

from __future__ import annotations

import pytest
import schemathesis
from django.contrib.auth.models import Group
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis import checks

from riskops.core.roles import INTEGRATION, RISK_MANAGER
from tests.factories import default_ruleset, flag, make_line, make_role_operator

pytestmark = pytest.mark.django_db

CHECKS = [
    checks.not_a_server_error,
    checks.response_schema_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
]


@pytest.fixture(autouse=True)
def _requests_keep_the_connection():
    """The application is called in this test's transaction: as Django's test client does, the request signals do
    not close the connection (they would, seeing it inside a transaction)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def token(db) -> str:
    """A risk manager who is also the lending app's integration user: every operation is theirs to call."""
    default_ruleset()
    flag(make_line(), "OVERDUE")
    user = make_role_operator(RISK_MANAGER, "schema-prober")
    user.groups.add(Group.objects.get(name=INTEGRATION))
    return Token.objects.create(user=user).key


# The schema is read through the application itself (it needs no database).
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_operation_gives_a_5xx_or_breaks_its_schema(case, token):
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)
