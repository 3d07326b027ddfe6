"""The role matrix, enforced at every address: each URL pattern x method x role gets what `EXPECTED` says.

The patterns come from walking Django's URL resolver, so a new URL without an entry in `EXPECTED` fails
`test_every_url_pattern_has_an_expectation`, naming the pattern to add. An entry says who passes (a check of
`riskops.core.roles`: a permission of GRANTS, OPERATOR or STAFF, or EVERYONE / NOBODY) and what the others get;
the roles passing a check are read from GRANTS, so the table holds every address to the same grants as
docs/ROLES.md. Also: another operator's objects, the buttons each page shows, the integration's own appeals,
API throttling, the cap on cases one operator holds, and personal-data canaries in every page of every role.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services as case_services
from accounts.models import Backtest, Case, CreditInquiry, Decision, RuleSet, Simulation
from accounts.services.rulesets import ruleset_draft
from appeals import services as appeal_services
from appeals.models import Appeal, AppealDocument
from ingest.services import events_ingest
from riskops.core import roles
from riskops.core.errors import DomainError, NotAllowed
from riskops.core.roles import (
    ACTIONS,
    ANALYST,
    APPROVE_DECISION,
    ASSIGN_CASE,
    AUDITOR,
    DECIDE_CASE,
    GRANTS,
    INGEST_EVENTS,
    INTEGRATION,
    OPERATOR,
    REVEAL_PII,
    RISK_MANAGER,
    SENIOR_REVIEWER,
    STAFF,
    SUBMIT_APPEAL,
    TUNE_RULES,
    VIEW_AUDIT,
    VIEW_OPERATOR_FIGURES,
    WRITE_GUIDANCE,
    role_may,
)
from riskops.jobs import requests as job_requests
from riskops.management.commands.roles_matrix import render
from riskops.models import Job
from tests.factories import flag, make_line, make_role_operator
from tests.helpers import ROOT, in_threads, logged_in, op, png, post_api, submit, token_client

pytestmark = pytest.mark.django_db

ANONYMOUS = "anonymous"
ROLES_UNDER_TEST = [*GRANTS, ANONYMOUS]  # analyst, senior_reviewer, risk_manager, auditor, admin, integration

# --- What a request gets

OK = "ok"  # passed the permission check: 2xx, or 3xx anywhere but a login page (a form's refusal included)
LOGIN = "login"  # 302 to /login/?next=...
ADMIN_LOGIN = "admin login"  # 302 to /admin/login/?next=...
EVERYONE, NOBODY = "everyone", "nobody"
LOGGED_IN = "logged in"  # any logged-in user, whatever the roles (the second factor's pages)


@dataclass(frozen=True)
class Rule:
    """Who passes (`allow`: checks every one of which the role must pass) and what everyone else gets.

    `data` builds the POST body from the world (ids of the objects made for the test), so that the request reaches
    the permission check rather than a form's refusal.
    """

    allow: tuple[str, ...]
    denied: int | str = 403
    anonymous: int | str = LOGIN
    data: Callable[[World], dict[str, Any]] | None = None
    json: bool = False
    ids: dict[str, str] = field(default_factory=dict)  # URL kwarg -> the World's kwargs key to use instead

    def expect(self, role: str) -> int | str:
        if LOGGED_IN in self.allow:
            return self.anonymous if role == ANONYMOUS else OK
        if role == ANONYMOUS:
            return OK if EVERYONE in self.allow else self.anonymous
        if EVERYONE in self.allow or (NOBODY not in self.allow and all(role_may(role, c) for c in self.allow)):
            return OK
        return self.denied


def page(*allow: str, **kw: Any) -> Rule:
    """An operator page or form: logged-in roles without the grant get 403, anonymous visitors the login page."""
    return Rule(allow or (OPERATOR,), **kw)


def api(*allow: str, anonymous: int = 401, **kw: Any) -> Rule:
    """An API operation (token): 403 without the grant, 401 without a token (403 where sessions are accepted too)."""
    return Rule(allow, anonymous=anonymous, **kw)


PUBLIC = Rule((EVERYONE,))
BORROWER_LINK = Rule((NOBODY,), denied=404, anonymous=404)  # no valid token: "this link is not valid", 404


def _bulk_assign(w: World) -> dict[str, Any]:
    return {"action": "assign", "case_ids": str(w.case.pk), "assignee": str(w.other.pk)}


def _inbox_assign(w: World) -> dict[str, Any]:
    return {"action": "assign", "appeal_ids": str(w.appeal.pk), "assignee": str(w.other.pk)}


def _note(_w: World) -> dict[str, Any]:
    return {"text": "checked the bureau report"}


def _job_new(w: World) -> dict[str, Any]:
    return {"kind": "reevaluate", "selection_kind": "ids", "line_id": str(w.case.line_id)}


def _api_job(w: World) -> dict[str, Any]:
    return {"kind": "reevaluate", "selection_kind": "ids", "account_nos": [w.case.line.account_no]}


def _exempt(_w: World) -> dict[str, Any]:
    return {
        "code": "OVERDUE",
        "until": (timezone.localdate() + timedelta(days=7)).isoformat(),
        "reason": "restructuring agreed with the borrower",
    }


def _shadow(_w: World) -> dict[str, Any]:
    return {"until": (timezone.localdate() + timedelta(days=1)).isoformat()}


def _activate(w: World) -> dict[str, Any]:
    return {"simulation": str(w.kwargs["simulation_id"]), "backtest": str(w.kwargs["backtest_id"]), "reason": ""}


def _guidance(_w: World) -> dict[str, Any]:
    return {"MULTI_HEAD-text_zh": "请暂停向其他平台申请借款。", "MULTI_HEAD-text_en": "Please stop applying elsewhere."}


def _draft(_w: World) -> dict[str, Any]:
    return {"source": "1", "note": "a test draft"}


def _rule_edit(_w: World) -> dict[str, Any]:
    fields = {"p_window_days": "30", "p_min_inquiries": "6", "p_min_institutions": "3", "severity": "high"}
    return {f"MULTI_HEAD-{k}": v for k, v in {**fields, "action": "freeze", "enabled": "on"}.items()}


def _appeal_reply(w: World) -> dict[str, Any]:
    return {"outcome": "reject", "reply": "我们已复核，维持冻结。", "version": str(w.appeal.version)}


# The expectation table: route (as Django writes the pattern, prefixes joined) -> method -> Rule.
# To add an address: one line, e.g. an auditor-and-admin page guarded by a new grant `riskops.view_audit`:
#     "audit/": {"GET": page("riskops.view_audit")},
#     "audit/export.csv": {"GET": page("riskops.view_audit")},
# Routes under a prefix of ADMIN_PREFIXES are the admin site's, checked by `test_the_admin_site_lets_in_staff_only`.
EXPECTED: dict[str, dict[str, Rule]] = {
    "": {"GET": Rule((EVERYONE,))},  # redirects to the dashboard (managers, readers) or the queue
    "dashboard/": {"GET": page()},
    "my-work/": {"GET": page()},
    "queue/": {"GET": page()},
    "queue/next/": {"POST": page(DECIDE_CASE)},
    "queue/bulk/": {"POST": page(ASSIGN_CASE, data=_bulk_assign)},
    "cases/<int:case_id>/": {"GET": page()},
    "cases/<int:case_id>/decide/": {"POST": page(DECIDE_CASE)},
    "cases/<int:case_id>/claim/": {"POST": page(DECIDE_CASE)},
    "cases/<int:case_id>/release/": {"POST": page(DECIDE_CASE)},
    "cases/<int:case_id>/notes/": {"POST": page(DECIDE_CASE, data=_note)},
    "cases/<int:case_id>/exempt/": {"POST": page(TUNE_RULES, data=_exempt)},
    "cases/<int:case_id>/reevaluate/": {"POST": page(DECIDE_CASE)},
    "cases/<int:case_id>/reveal/": {"POST": page(OPERATOR, REVEAL_PII)},
    "events/<str:kind>/<int:event_id>/": {"GET": page()},
    "guidance/": {"GET": page()},
    "guidance/<str:code>/": {"POST": page(WRITE_GUIDANCE, data=_guidance)},
    "rules/": {"GET": page()},
    "rules/drafts/": {"POST": page(TUNE_RULES, data=_draft)},
    "rules/v<int:version>/": {"GET": page()},
    "rules/v<int:version>/rules/<str:code>/": {"POST": page(TUNE_RULES, data=_rule_edit)},
    "rules/v<int:version>/discard/": {"POST": page(TUNE_RULES)},
    "rules/v<int:version>/simulate/": {"POST": page(TUNE_RULES)},
    "rules/v<int:version>/backtest/": {"POST": page(TUNE_RULES, data=lambda _w: {"days": "30"})},
    "rules/v<int:version>/shadow/": {"POST": page(TUNE_RULES, data=_shadow)},
    "rules/v<int:version>/activate/": {"GET": page(), "POST": page(TUNE_RULES, data=_activate)},
    "rules/backtests/<int:backtest_id>/": {"GET": page()},
    "rules/backtests/<int:backtest_id>/accounts.csv": {"GET": page()},
    "rules/simulations/<int:simulation_id>/": {"GET": page()},
    "rules/simulations/<int:simulation_id>/<str:outcome>.csv": {"GET": page()},
    "decisions/<int:decision_id>/approve/": {"POST": page(APPROVE_DECISION)},
    "decisions/<int:decision_id>/reject/": {"POST": page(APPROVE_DECISION)},
    "appeals/": {"GET": page()},
    "appeals/next/": {"POST": page(DECIDE_CASE)},
    "appeals/assign/": {"POST": page(ASSIGN_CASE, data=_inbox_assign)},
    "appeals/alerts/read/": {"POST": page()},
    "appeals/<int:appeal_id>/": {"GET": page()},
    "appeals/<int:appeal_id>/decide/": {"POST": page(DECIDE_CASE, data=_appeal_reply)},
    "appeals/documents/<int:document_id>/": {"GET": page()},
    "a/<str:token>/": {"GET": BORROWER_LINK, "POST": BORROWER_LINK},
    "a/more/<str:token>/": {"GET": BORROWER_LINK, "POST": BORROWER_LINK},
    "a/<str:token>/profile/": {"POST": BORROWER_LINK},
    "profile-documents/<int:document_id>/": {"GET": page(ids={"document_id": "profile_document_id"})},
    "api/v1/appeals/": {"GET": api(SUBMIT_APPEAL), "POST": api(SUBMIT_APPEAL)},
    "api/v1/appeals/<int:appeal_id>/": {"GET": api(SUBMIT_APPEAL)},
    "jobs/": {"GET": page()},
    "jobs/new/": {"POST": page(DECIDE_CASE, data=_job_new)},
    "jobs/import/": {"GET": page(OPERATOR, INGEST_EVENTS), "POST": page(OPERATOR, INGEST_EVENTS)},
    "jobs/<int:job_id>/errors.csv": {"GET": page(ids={"job_id": "import_job_id"})},
    "jobs/<int:job_id>/": {"GET": page()},
    "jobs/<int:job_id>/approve/": {"POST": page(APPROVE_DECISION)},
    "jobs/<int:job_id>/cancel/": {"POST": page(APPROVE_DECISION)},  # or who asked for it (not these roles)
    "api/v1/jobs/": {"POST": api(DECIDE_CASE, anonymous=403, data=_api_job, json=True)},
    "api/v1/jobs/<int:job_id>/": {"GET": api(OPERATOR, anonymous=403)},
    "api/v1/events/": {"POST": api(INGEST_EVENTS)},
    "api/v1/ingest/batches/<int:batch_id>/": {"GET": api(INGEST_EVENTS)},
    "login/": {"GET": PUBLIC, "POST": PUBLIC, "PUT": PUBLIC},
    "logout/": {"POST": PUBLIC},  # to /login/ (without ?next=)
    "i18n/setlang/": {"GET": PUBLIC, "POST": PUBLIC},
    "healthz": {"GET": PUBLIC},
    "login/code/": {"GET": Rule((LOGGED_IN,)), "POST": Rule((LOGGED_IN,))},
    "login/code/setup/": {"GET": Rule((LOGGED_IN,)), "POST": Rule((LOGGED_IN,))},
    "audit/": {"GET": page(VIEW_AUDIT)},
    "audit/export.csv": {"GET": page(VIEW_AUDIT)},
    "favicon.ico": dict.fromkeys(("GET", "POST", "PUT", "PATCH", "DELETE"), PUBLIC),
    "api/schema/": {"GET": PUBLIC},
    "api/docs/": {"GET": PUBLIC},
}
ADMIN_PREFIXES = ("admin/",)


# --- The URL patterns, and the methods each takes


def url_patterns(resolver: URLResolver | None = None, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for p in (resolver or get_resolver()).url_patterns:
        if isinstance(p, URLResolver):
            yield from url_patterns(p, prefix + str(p.pattern))
        else:
            yield prefix + str(p.pattern), p


def methods_of(callback: Any) -> list[str]:
    """The methods a view answers: a class-based view's handlers, or what `require_http_methods` lets through."""
    view_class = getattr(callback, "view_class", None)
    if view_class is not None:
        names = [m for m in view_class.http_method_names if m not in ("head", "options", "trace")]
        return [m.upper() for m in names if hasattr(view_class, m)]
    func = callback
    while func is not None:
        code, cells = getattr(func, "__code__", None), getattr(func, "__closure__", None) or ()
        if code is not None and "request_method_list" in code.co_freevars:
            allowed = cells[code.co_freevars.index("request_method_list")].cell_contents
            return [m for m in ("GET", "POST", "PUT", "PATCH", "DELETE") if m in allowed]
        func = getattr(func, "__wrapped__", None)
    return ["GET", "POST"]  # a plain function view answers any method


def console_cases() -> list[tuple[str, str]]:
    return [
        (route, method)
        for route, p in url_patterns()
        if not route.startswith(ADMIN_PREFIXES)
        for method in methods_of(p.callback)
    ]


def test_every_url_pattern_has_an_expectation() -> None:
    missing = [f"{route!r} {method}" for route, method in console_cases() if method not in EXPECTED.get(route, {})]
    assert not missing, "add to tests/test_roles.py EXPECTED: " + "; ".join(missing)
    stale = [route for route in EXPECTED if route not in {r for r, _p in url_patterns()}]
    assert not stale, f"EXPECTED names patterns that no longer exist: {stale}"


# --- The world a role meets: a case of each kind, an appeal, a document, a proposal, a job, an ingestion batch

CANARY_ID = "110101198803157719"
CANARY_PHONE = "13987650042"


@dataclass
class World:
    users: dict[str, User]
    other: User  # an analyst who holds nothing
    case: Case  # frozen, unassigned, with an API appeal; its borrower carries the canaries
    proposal_case: Case
    decision: Decision
    appeal: Appeal
    document: AppealDocument
    job: Job
    batch_id: int
    event: CreditInquiry
    kwargs: dict[str, Any] = field(default_factory=dict)

    def client(self, role: str, *, api: bool) -> Client:
        if role == ANONYMOUS:
            return APIClient() if api else Client()
        return token_client(self.users[role]) if api else logged_in(self.users[role])


def make_user(role: str) -> User:
    user = make_role_operator(role, f"{role}-user")
    if role in roles.STAFF_ROLES:  # as create_demo_operators makes them
        user.is_staff = user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    return user


@pytest.fixture
def world(ruleset: Any, settings: Any) -> World:
    # Eight users per test, hundreds of tests: their passwords hashed the fast way (nobody logs in with them).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()  # the API's throttle counts
    users = {role: make_user(role) for role in GRANTS}
    other = make_role_operator(ANALYST, "other-analyst")
    proposer = make_role_operator(SENIOR_REVIEWER, "proposer")
    case = flag(make_line(national_id=CANARY_ID, phone=CANARY_PHONE), "MULTI_HEAD")
    response = post_api(token_client(users[INTEGRATION]), case.line.account_no, [("proof.png", png())])
    assert response.status_code == 201, response.content
    appeal = Appeal.objects.get(pk=response.json()["id"])
    proposal_case = flag(make_line(), "MULTI_HEAD")
    outcome = case_services.case_decide(
        case_id=proposal_case.pk,
        actor=op(proposer),
        kind="unfreeze",
        reason_code="loans_closed",
        new_limit=proposal_case.line.limit,
        expected_version=None,
        idempotency_key="proposal-1",
    )
    job = job_requests.job_request(
        kind="bulk_unfreeze",
        selection_kind="ids",
        selection={"line_ids": [proposal_case.line_id]},
        actor=op(proposer),
        reason="closed loans",
    )
    batch = events_ingest(items=[{"kind": "nonsense"}], actor=op(users[INTEGRATION]), source="api")
    w = World(
        users=users,
        other=other,
        case=Case.objects.select_related("line").get(pk=case.pk),
        proposal_case=proposal_case,
        decision=outcome.decision,
        appeal=appeal,
        document=appeal.documents.get(),
        job=job,
        batch_id=batch.pk,
        event=CreditInquiry.objects.filter(line=case.line).first(),  # type: ignore[arg-type]
    )
    # Made by a risk manager who is not under test: the one under test may approve its activation.
    drafter = make_role_operator(RISK_MANAGER, "drafter")
    draft = ruleset_draft(source=RuleSet.objects.get(is_active=True), actor=op(drafter))
    User.objects.filter(pk=drafter.pk).update(is_active=False)  # not among the operators a case is assigned to
    w.kwargs = {
        "case_id": w.case.pk,
        "decision_id": w.decision.pk,
        "appeal_id": w.appeal.pk,
        "document_id": w.document.pk,
        "job_id": w.job.pk,
        "batch_id": w.batch_id,
        "kind": "inquiry",
        "event_id": w.event.pk,
        "token": "not-a-valid-token",
        "code": "MULTI_HEAD",
        "version": draft.version,
        "simulation_id": Simulation.objects.create(
            ruleset=draft, live_version=1, job_id=job.pk, requested_at=job.requested_at
        ).pk,
        "outcome": "release",
        "backtest_id": Backtest.objects.create(
            ruleset=draft,
            live_version=1,
            job_id=w.batch_id + 10_000,  # no job runs it: the pages read what its batches recorded
            requested_at=job.requested_at,
            first_day=job.requested_at.date(),
            last_day=job.requested_at.date(),
        ).pk,
        "profile_document_id": profile_document(w.case.line_id),
        "import_job_id": Job.objects.create(
            kind="import",
            selection_kind="all",
            status="done",
            requested_by=users[RISK_MANAGER],
            requested_label="risk_manager-user",
            requested_at=job.requested_at,
            batch_size=1000,
        ).pk,
    }
    return w


def profile_document(line_id: int) -> int:
    """A profile update's document, sent through the borrower's page (stored like an appeal's)."""
    from portal.models import ProfileDocument
    from portal.services import profile_update
    from riskops.core.audit import Actor

    profile_update(
        line_id=line_id,
        employer="杭州某科技有限公司",
        monthly_income=Decimal("9000"),
        files=[("payslip.png", png())],
        actor=Actor.borrower("borrower (signed link)"),
    )
    return ProfileDocument.objects.get(line_id=line_id).pk


def address(route: str, kwargs: dict[str, Any]) -> str:
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(kwargs[m.group(1)]), route)


def outcome_of(response: Any) -> int | str:
    code = response.status_code
    location = response.get("Location", "")
    if code == 302 and location.startswith("/admin/login/"):
        return ADMIN_LOGIN
    if code == 302 and location.startswith("/login/?next="):
        return LOGIN
    if code < 400 or code in (400, 409):  # past the check: the form or the state refused the request
        return OK
    return code


def call(w: World, role: str, route: str, method: str, rule: Rule) -> Any:
    is_api = route.startswith("api/v1/")
    client = w.client(role, api=is_api)
    url = address(route, {**w.kwargs, **{k: w.kwargs[v] for k, v in rule.ids.items()}})
    data = rule.data(w) if rule.data else {}
    send = getattr(client, method.lower())
    if method == "GET":
        return send(url)
    if rule.json:
        return send(url, data, format="json") if is_api else send(url, data, content_type="application/json")
    if method in ("PUT", "PATCH", "DELETE"):
        return send(url)
    return send(url, data)


def assert_no_canary(response: Any, where: str) -> None:
    body = b"".join(response.streaming_content) if getattr(response, "streaming", False) else response.content
    text = body.decode(errors="replace")
    for canary in (CANARY_ID, CANARY_PHONE):
        assert canary not in text, f"{where} shows the raw personal data {canary}"


# The language choice (/i18n/setlang/) and the schema views are not the console's: GET only below.
@pytest.mark.parametrize("role", ROLES_UNDER_TEST)
@pytest.mark.parametrize(("route", "method"), console_cases())
def test_each_role_gets_what_the_matrix_says(world: World, role: str, route: str, method: str) -> None:
    rule = EXPECTED.get(route, {}).get(method)
    if rule is None:
        pytest.fail(f"add {route!r} {method} to tests/test_roles.py EXPECTED")
    response = call(world, role, route, method, rule)
    assert outcome_of(response) == rule.expect(role), (
        f"{method} /{route} as {role}: {response.status_code} {response.get('Location', '')}"
    )
    if method == "GET":
        assert_no_canary(response, f"GET /{route} as {role}")


def admin_addresses() -> list[str]:
    args = {
        "object_id": "1", "app_label": "accounts", "content_type_id": "1", "id": "1", "pk": "1", "url": "no-such-page/",
    }  # fmt: skip
    out = []
    for route, p in url_patterns():
        if not route.startswith(ADMIN_PREFIXES) or "GET" not in methods_of(p.callback):
            continue
        if route.startswith("admin/^"):  # app_list: a regular expression of the app labels
            out.append("/admin/accounts/")
            continue
        out.append(address(route, args))
    return sorted(set(out))


@pytest.mark.parametrize("role", ROLES_UNDER_TEST)
def test_the_admin_site_lets_in_staff_only(world: World, role: str) -> None:
    """Every GET address of the admin site: admins get past its login, nobody else does (an operator of another role
    is refused, 403; an anonymous visitor is sent to the login page); no canary shows."""
    client = world.client(role, api=False)
    staff = role != ANONYMOUS and role_may(role, STAFF)
    for url in admin_addresses():
        if url.startswith(("/admin/login/", "/admin/logout/")):
            continue
        response = client.get(url)
        got = outcome_of(response)
        if staff:
            assert got != ADMIN_LOGIN, f"GET {url} as {role}: {response.status_code}"
            assert_no_canary(response, f"GET {url} as {role}")
        else:
            assert got in (ADMIN_LOGIN, LOGIN, 403, 404), f"GET {url} as {role}: {response.status_code}"
            assert got != OK, f"GET {url} as {role}: {response.status_code}"


# --- The document cannot drift


def test_docs_roles_md_is_generated_from_the_grants() -> None:
    committed = (ROOT / "docs" / "ROLES.md").read_text(encoding="utf-8")
    assert committed == render(), "docs/ROLES.md is out of date: python manage.py roles_matrix --write docs/ROLES.md"


def test_roles_matrix_command_writes_what_it_checks(tmp_path: Path) -> None:
    target = tmp_path / "ROLES.md"
    call_command("roles_matrix", write=str(target))
    call_command("roles_matrix", check=str(target))
    target.write_text(target.read_text() + "edited by hand\n")
    with pytest.raises(Exception, match="out of date"):
        call_command("roles_matrix", check=str(target))


def test_the_groups_hold_exactly_the_grants() -> None:
    from django.contrib.auth.models import Group

    roles.ensure_roles()
    for role, codenames in GRANTS.items():
        held = sorted(Group.objects.get(name=role).permissions.values_list("codename", flat=True))
        assert held == sorted(codenames), role


def test_every_action_of_the_matrix_names_a_real_check() -> None:
    perms = {roles.DECIDE_CASE, APPROVE_DECISION, ASSIGN_CASE, REVEAL_PII, SUBMIT_APPEAL, INGEST_EVENTS, VIEW_AUDIT}
    perms |= {WRITE_GUIDANCE, VIEW_OPERATOR_FIGURES, TUNE_RULES}
    assert {a.check for a in ACTIONS} <= perms | {OPERATOR, STAFF}
    assert {a.check for a in ACTIONS} >= perms  # every permission of GRANTS is in the document


# --- Another operator's objects


def test_an_analyst_cannot_decide_a_case_another_holds(world: World) -> None:
    analyst = world.users[ANALYST]
    case_services.case_claim(case_id=world.proposal_case.pk, actor=op(world.other))
    other_case = flag(make_line(), "OVERDUE")
    case_services.case_claim(case_id=other_case.pk, actor=op(world.other))
    before = (Case.objects.get(pk=other_case.pk).status, Decision.objects.filter(case=other_case).count())

    response = logged_in(analyst).post(
        f"/cases/{other_case.pk}/decide/",
        {"kind": "remind", "reason_code": "other", "note": "", "version": other_case.version + 1, "token": "t-1"},
    )

    assert response.status_code == 403
    assert "This case is assigned to other-analyst" in response.content.decode()
    assert (Case.objects.get(pk=other_case.pk).status, Decision.objects.filter(case=other_case).count()) == before
    with pytest.raises(NotAllowed):
        case_services.case_decide(
            case_id=other_case.pk,
            actor=op(analyst),
            kind="remind",
            reason_code="other",
            expected_version=None,
            idempotency_key="t-2",
        )


def test_a_senior_reviewer_may_step_in_on_a_case_another_holds(world: World) -> None:
    case = flag(make_line(), "OVERDUE")
    case_services.case_claim(case_id=case.pk, actor=op(world.other))
    outcome = case_services.case_decide(
        case_id=case.pk,
        actor=op(world.users[SENIOR_REVIEWER]),
        kind="remind",
        reason_code="other",
        expected_version=None,
        idempotency_key="t-3",
    )
    assert outcome.applied


def test_an_analyst_cannot_decide_an_appeal_whose_case_another_holds(world: World) -> None:
    case_services.case_claim(case_id=world.case.pk, actor=op(world.other))
    with pytest.raises(NotAllowed, match="assigned to other-analyst"):
        appeal_services.appeal_decide(
            appeal_id=world.appeal.pk,
            actor=op(world.users[ANALYST]),
            outcome="reject",
            reply="维持冻结。",
            expected_version=None,
        )
    assert Appeal.objects.get(pk=world.appeal.pk).status == "open"


def test_an_analyst_cannot_release_a_case_another_holds(world: World) -> None:
    case_services.case_claim(case_id=world.case.pk, actor=op(world.other))
    response = logged_in(world.users[ANALYST]).post(f"/cases/{world.case.pk}/release/")
    assert response.status_code == 302
    assert Case.objects.get(pk=world.case.pk).assignee_id == world.other.pk
    assert case_services.cases_assign(case_ids=[world.case.pk], assignee_id=None, actor=op(world.users[ANALYST])) == []


# --- The buttons each page shows


class Forms(HTMLParser):
    """The POST forms of a page: (action path, id, the buttons' values or formactions) each."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, str, list[str]]] = []
        self._open: tuple[str, str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form" and (a.get("method") or "").lower() == "post":
            self._open = (a.get("action") or "", a.get("id") or "", [])
            self.forms.append(self._open)
        elif tag == "button" and self._open is not None and (a.get("type") or "submit") == "submit":
            self._open[2].append(a.get("formaction") or a.get("value") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def _route(action: str) -> str:
    return re.sub(r"/\d+/", "/<id>/", action)


def actions_shown(body: str) -> set[str]:
    """What a page offers: the routes its POST forms send to, when they have a button (or a key: "n" sends the
    next-case form), and each named button as route#value."""
    parser = Forms()
    parser.feed(body)
    shown = set()
    for action, form_id, buttons in parser.forms:
        if not buttons and form_id != "next-case-form":
            continue
        shown.add(_route(action))
        for b in buttons:
            if b.startswith("/"):
                shown.add(_route(b))
            elif b:
                shown.add(f"{_route(action)}#{b}")
    return shown


# What each form or button needs (None: every operator). Forms not listed fail the test.
NEEDS: dict[str, tuple[str, ...]] = {
    "/logout/": (),
    "/i18n/setlang/": (),
    "/i18n/setlang/#zh-hans": (),
    "/i18n/setlang/#en": (),
    "/queue/next/": (DECIDE_CASE,),
    "/queue/bulk/": (DECIDE_CASE,),
    "/queue/bulk/#assign": (ASSIGN_CASE,),
    "/queue/bulk/#release": (DECIDE_CASE,),
    "/queue/bulk/#reevaluate": (DECIDE_CASE,),
    "/cases/<id>/claim/": (DECIDE_CASE,),
    "/cases/<id>/decide/": (DECIDE_CASE,),
    "/cases/<id>/notes/": (DECIDE_CASE,),
    "/cases/<id>/reveal/": (REVEAL_PII,),
    "/cases/<id>/exempt/": (TUNE_RULES,),
    "/jobs/new/": (DECIDE_CASE,),
    "/decisions/<id>/approve/": (APPROVE_DECISION,),
    "/decisions/<id>/reject/": (APPROVE_DECISION,),
    "/appeals/next/": (DECIDE_CASE,),
    "/appeals/assign/": (DECIDE_CASE,),
    "/appeals/assign/#claim": (DECIDE_CASE,),
    "/appeals/assign/#assign": (ASSIGN_CASE,),
    "/appeals/assign/#release": (DECIDE_CASE,),
    "/appeals/alerts/read/": (),
    "/appeals/<id>/decide/": (DECIDE_CASE,),
    "/jobs/<id>/approve/": (APPROVE_DECISION,),
    "/jobs/<id>/cancel/": (APPROVE_DECISION,),
}
# Buttons that are only there in some states of the page (the world's case is unassigned and frozen).
OPTIONAL = {"/cases/<id>/release/", "/appeals/alerts/read/", "/queue/bulk/#reevaluate", "/i18n/setlang/#en"}


OPERATOR_ROLES = [r for r in GRANTS if role_may(r, OPERATOR)]


@pytest.mark.parametrize("role", OPERATOR_ROLES)
@pytest.mark.parametrize("which", ["queue", "case", "proposal case", "inbox", "appeal", "jobs", "job"])
def test_a_page_shows_the_buttons_of_the_grants_only(world: World, role: str, which: str) -> None:
    url = {
        "queue": "/queue/",
        "case": f"/cases/{world.case.pk}/",
        "proposal case": f"/cases/{world.proposal_case.pk}/",
        "inbox": "/appeals/",
        "appeal": f"/appeals/{world.appeal.pk}/",
        "jobs": "/jobs/",
        "job": f"/jobs/{world.job.pk}/",
    }[which]
    response = world.client(role, api=False).get(url, headers={"accept-language": "en"})
    assert response.status_code == 200
    shown = actions_shown(response.content.decode())
    unknown = shown - set(NEEDS) - {"/cases/<id>/release/", "/cases/<id>/reevaluate/", "/i18n/setlang/#zh-hans"}
    assert not unknown, f"{which}: forms without an entry in NEEDS: {unknown}"
    for action in shown & set(NEEDS):
        assert all(role_may(role, c) for c in NEEDS[action]), f"{which} as {role} offers {action}"
    expected_here = {
        "queue": {"/queue/next/", "/queue/bulk/#assign", "/queue/bulk/#release"},
        "case": {"/cases/<id>/claim/", "/cases/<id>/decide/", "/cases/<id>/notes/", "/cases/<id>/reveal/",
                 "/jobs/new/"},
        "proposal case": {"/decisions/<id>/approve/", "/decisions/<id>/reject/"},
        "inbox": {"/appeals/next/", "/appeals/assign/#claim", "/appeals/assign/#assign"},
        "appeal": {"/appeals/<id>/decide/"},
        "jobs": set(),
        "job": {"/jobs/<id>/approve/", "/jobs/<id>/cancel/"},
    }[which]  # fmt: skip
    for action in expected_here - OPTIONAL:
        if all(role_may(role, c) for c in NEEDS[action]):
            assert action in shown, f"{which} as {role} lacks {action}"


def test_the_case_page_offers_no_decision_on_a_case_another_holds(world: World) -> None:
    case_services.case_claim(case_id=world.case.pk, actor=op(world.other))
    analyst_sees = actions_shown(logged_in(world.users[ANALYST]).get(f"/cases/{world.case.pk}/").content.decode())
    senior_sees = actions_shown(
        logged_in(world.users[SENIOR_REVIEWER]).get(f"/cases/{world.case.pk}/").content.decode()
    )
    appeal_sees = actions_shown(logged_in(world.users[ANALYST]).get(f"/appeals/{world.appeal.pk}/").content.decode())
    assert "/cases/<id>/decide/" not in analyst_sees
    assert "/cases/<id>/decide/" in senior_sees
    assert "/appeals/<id>/decide/" not in appeal_sees


def test_assignment_offers_only_active_operators_who_decide_cases(world: World) -> None:
    inactive = make_role_operator(ANALYST, "gone-analyst")
    inactive.is_active = False
    inactive.save()
    body = logged_in(world.users[SENIOR_REVIEWER]).get("/queue/").content.decode()
    bulk = body.split('id="bulk"')[1].split("</form>")[0]
    offered = set(re.findall(r'<option value="\d+">([^<]+)</option>', bulk))
    deciders = {f"{role}-user" for role in GRANTS if role_may(role, DECIDE_CASE)}
    assert offered == deciders | {"other-analyst", "proposer"}
    assert not offered & {f"{AUDITOR}-user", f"{INTEGRATION}-user", "gone-analyst"}
    with pytest.raises(DomainError, match="cannot decide cases"):
        case_services.cases_assign(
            case_ids=[world.case.pk], assignee_id=world.users[AUDITOR].pk, actor=op(world.users[SENIOR_REVIEWER])
        )


# --- Personal data: shown raw only to whoever revealed it


def test_the_canaries_show_after_an_audited_reveal_only(world: World) -> None:
    senior = logged_in(world.users[SENIOR_REVIEWER])
    assert CANARY_ID not in senior.get(f"/cases/{world.case.pk}/").content.decode()
    response = senior.post(
        f"/cases/{world.case.pk}/reveal/",
        {"targets": ["national_id", "phone"], "reason": "the borrower called about the appeal"},
    )
    body = senior.get(response["Location"]).content.decode()
    assert CANARY_ID in body and CANARY_PHONE in body  # the canaries are real: this is how they would show


# --- The integration reads only the appeals it sent


def test_an_integration_token_reads_only_the_appeals_it_sent(world: World) -> None:
    link_case = flag(make_line(), "MULTI_HEAD")
    by_borrower = submit(link_case)
    second_app = make_role_operator(INTEGRATION, "payments-ledger")
    client = token_client(world.users[INTEGRATION])

    assert client.get(f"/api/v1/appeals/{world.appeal.pk}/").status_code == 200
    assert client.get(f"/api/v1/appeals/{by_borrower.pk}/").status_code == 404
    assert token_client(second_app).get(f"/api/v1/appeals/{world.appeal.pk}/").status_code == 404
    listed = client.get("/api/v1/appeals/").json()
    assert [a["id"] for a in listed["results"]] == [world.appeal.pk]
    assert listed["next_after"] is None
    assert token_client(second_app).get("/api/v1/appeals/").json()["results"] == []
    assert Appeal.objects.get(pk=world.appeal.pk).submitted_by_id == world.users[INTEGRATION].pk
    assert by_borrower.submitted_by_id is None


def test_the_appeal_list_pages_by_id(world: World, settings: Any) -> None:
    from appeals import api as appeals_api

    client = token_client(world.users[INTEGRATION])
    more = [flag(make_line(), "MULTI_HEAD") for _ in range(2)]
    ids = [post_api(client, c.line.account_no).json()["id"] for c in more]
    old = appeals_api.LIST_PAGE_SIZE
    appeals_api.LIST_PAGE_SIZE = 2
    try:
        first = client.get("/api/v1/appeals/").json()
        second = client.get(f"/api/v1/appeals/?after={first['next_after']}").json()
    finally:
        appeals_api.LIST_PAGE_SIZE = old
    assert [a["id"] for a in first["results"]] == sorted(ids, reverse=True)
    assert [a["id"] for a in second["results"]] == [world.appeal.pk]
    assert second["next_after"] is None
    assert client.get("/api/v1/appeals/?after=0").status_code == 400


def test_only_an_integration_submits_appeals_through_the_service(world: World) -> None:
    with pytest.raises(NotAllowed, match="may not submit appeals"):
        appeal_services.appeal_submit(
            line_id=world.proposal_case.line_id,
            reason="loans_closed",
            statement="我已结清。",
            files=[],
            channel="api",
            actor=op(world.users[RISK_MANAGER]),
        )


def test_only_a_role_with_ingest_events_sends_events_through_the_service(world: World) -> None:
    with pytest.raises(NotAllowed, match="may not send events"):
        events_ingest(items=[{"kind": "nonsense"}], actor=op(world.users[ANALYST]), source="api")


# --- API throttling per token


def test_a_token_over_the_rate_gets_429_and_others_are_not_held_back(world: World, settings: Any) -> None:
    settings.API_THROTTLE_RATE = "3/min"
    cache.clear()
    mine = token_client(world.users[INTEGRATION])
    url = f"/api/v1/appeals/{world.appeal.pk}/"
    assert [mine.get(url).status_code for _ in range(3)] == [200, 200, 200]
    refused = mine.get(url)
    assert refused.status_code == 429
    assert re.fullmatch(r"Request was throttled\. Expected available in \d+ seconds?\.", refused.json()["detail"])
    assert int(refused["Retry-After"]) > 0
    # Another token (another client of the API) has its own count.
    assert token_client(world.users[RISK_MANAGER]).get(f"/api/v1/ingest/batches/{world.batch_id}/").status_code == 200


def test_an_anonymous_request_without_an_address_is_counted_not_a_500(settings: Any) -> None:
    """Found by schemathesis: a request with no REMOTE_ADDR (a unix socket) made the throttle's key a TypeError."""
    from django.contrib.auth.models import AnonymousUser
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from riskops.core.throttling import TokenRateThrottle

    settings.API_THROTTLE_RATE = "2/min"
    cache.clear()
    raw = APIRequestFactory().get("/api/schema/")
    del raw.META["REMOTE_ADDR"]
    request = Request(raw)
    request.user = AnonymousUser()
    throttle = TokenRateThrottle()
    assert [throttle.allow_request(request, None) for _ in range(3)] == [True, True, False]
    assert throttle.key == "throttle_api_addr:unknown"


# --- The cap on cases one operator holds


def _open_cases(n: int) -> list[Case]:
    return [flag(make_line(), "OVERDUE") for _ in range(n)]


def test_a_claim_beyond_the_cap_is_refused_with_the_cap_named(world: World, settings: Any) -> None:
    settings.MAX_CASES_PER_OPERATOR = 2
    analyst = world.users[ANALYST]
    cases = _open_cases(3)
    for c in cases[:2]:
        case_services.case_claim(case_id=c.pk, actor=op(analyst))
    with pytest.raises(DomainError) as refused:
        case_services.case_claim(case_id=cases[2].pk, actor=op(analyst))
    assert str(refused.value) == (
        "analyst-user already holds 2 unresolved cases; one operator holds at most 2 (MAX_CASES_PER_OPERATOR). "
        "Decide or release some first."
    )
    assert Case.objects.get(pk=cases[2].pk).assignee_id is None
    with pytest.raises(DomainError, match="at most 2"):
        case_services.case_claim_next(actor=op(analyst))
    # The queue's "next case" says it on the page.
    response = logged_in(analyst).post("/queue/next/", follow=True)
    assert "one operator holds at most 2" in response.content.decode()
    # Re-claiming a case already held is not a new one.
    assert case_services.case_claim(case_id=cases[0].pk, actor=op(analyst)).assignee_id == analyst.pk


def test_a_bulk_assignment_beyond_the_cap_changes_nothing(world: World, settings: Any) -> None:
    settings.MAX_CASES_PER_OPERATOR = 3
    cases = _open_cases(4)
    with pytest.raises(
        DomainError, match="other-analyst already holds 0 unresolved cases; one operator holds at most 3"
    ):
        case_services.cases_assign(
            case_ids=[c.pk for c in cases], assignee_id=world.other.pk, actor=op(world.users[SENIOR_REVIEWER])
        )
    assert Case.objects.filter(assignee=world.other).count() == 0
    assert (
        len(
            case_services.cases_assign(
                case_ids=[c.pk for c in cases[:3]], assignee_id=world.other.pk, actor=op(world.users[SENIOR_REVIEWER])
            )
        )
        == 3
    )


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_claims_at_the_cap_never_pass_it(settings: Any) -> None:
    from tests.factories import default_ruleset

    default_ruleset()
    settings.MAX_CASES_PER_OPERATOR = 3
    analyst = make_role_operator(ANALYST, "racer")
    cases = _open_cases(4)
    for c in cases[:2]:
        case_services.case_claim(case_id=c.pk, actor=op(analyst))
    for _round in range(3):
        results = in_threads(
            lambda: case_services.case_claim(case_id=cases[2].pk, actor=op(analyst)),
            lambda: case_services.case_claim(case_id=cases[3].pk, actor=op(analyst)),
        )
        held = Case.objects.filter(assignee=analyst).exclude(status="resolved").count()
        assert held == 3, results
        assert sum(isinstance(r, DomainError) for r in results) == 1
        # Back to two held, for another round.
        case_services.cases_assign(case_ids=[cases[2].pk, cases[3].pk], assignee_id=None, actor=op(analyst))
    results = in_threads(
        lambda: case_services.case_claim_next(actor=op(analyst)),
        lambda: case_services.case_claim_next(actor=op(analyst)),
    )
    assert Case.objects.filter(assignee=analyst).exclude(status="resolved").count() == 3, results


def test_the_cap_and_the_rate_are_read_from_the_environment() -> None:
    import os
    import subprocess
    import sys

    def settings_with(**env: str) -> subprocess.CompletedProcess[str]:
        code = "import riskops.settings as s; print(s.MAX_CASES_PER_OPERATOR, s.API_THROTTLE_RATE)"
        return subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, **env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )

    assert settings_with(MAX_CASES_PER_OPERATOR="", API_THROTTLE_RATE="").stdout.split() == ["50", "600/min"]
    assert settings_with(MAX_CASES_PER_OPERATOR="7", API_THROTTLE_RATE="20/s").stdout.split() == ["7", "20/s"]
    refused = settings_with(API_THROTTLE_RATE="lots")
    assert refused.returncode != 0
    assert "API_THROTTLE_RATE='lots' is not a rate like 600/min or 10/s" in refused.stderr
