"""The admin panel: administrators only, every model registered, safe on large tables, personal data masked,
append-only records and rulesets read-only, and the few changes made through the services."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Model
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation

from accounts.models import Case, CreditLine, Decision, DecisionStatus, Rule, RuleSet
from riskops.admin_base import EstimatingPaginator, ProjectAdmin
from riskops.models import AuditEvent
from tests.factories import (
    default_ruleset,
    flag,
    frozen_medium_only_case,
    frozen_multi_head_case,
    make_line,
    make_role_operator,
)
from tests.helpers import logged_in, messages_of, page

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ruleset")]

PROJECT_APPS = ["riskops", "accounts", "appeals", "ingest"]
# Canary personal data: none of it may appear whole on an admin page.
CANARY = {"name": "司马相如", "phone": "13912340987", "national_id": "11010519491231002X"}
MASKED = ["司**如", "139****0987", "****002X"]


def project_models() -> list[type[Model]]:
    return [m for app in PROJECT_APPS for m in apps.get_app_config(app).get_models()]


def model_admin(model: type[Model]) -> ProjectAdmin:
    found = admin.site.get_model_admin(model)
    assert isinstance(found, ProjectAdmin)
    return found


def changelist(model: type[Model]) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def change_url(obj: Model) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


# --- Who enters


def test_the_admin_sends_an_anonymous_visitor_to_the_console_login(client: Client) -> None:
    response = client.get("/admin/accounts/creditline/", follow=True)
    assert response.redirect_chain[-1][0] == "/login/?next=/admin/accounts/creditline/"
    assert response.status_code == 200


@pytest.mark.parametrize("role", ["analyst", "senior_reviewer", "risk_manager", "auditor", "integration"])
def test_only_administrators_enter_the_admin(role: str) -> None:
    user = make_role_operator(role)
    user.is_staff = True  # the flag Django's own admin goes by does not let anyone in here
    user.save()
    client = logged_in(user)
    assert client.get("/admin/").status_code == 403
    assert client.get("/admin/accounts/creditline/").status_code == 403
    assert client.get("/admin/login/").status_code == 403


def test_administrators_and_superusers_enter_the_admin(as_admin: Client) -> None:
    assert as_admin.get("/admin/").status_code == 200
    root = User.objects.create_superuser("root", password="pw-12345678")
    assert logged_in(root).get("/admin/").status_code == 200
    root.is_active = False
    root.save()
    assert logged_in(root).get("/admin/").status_code == 302  # an inactive user is logged out, then asked to log in


# --- Every model, safely


def test_every_project_model_is_registered_with_the_project_admin() -> None:
    missing = [m._meta.label for m in project_models() if not admin.site.is_registered(m)]
    assert missing == []
    for model in project_models():
        model_admin(model)


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_every_model_is_named_in_both_languages_singular_and_plural(language: str) -> None:
    """The admin's index, lists and buttons name models by these: no English left in Chinese, no "案件s"."""
    from django.utils import translation

    with translation.override(language):
        for model in project_models():
            one, many = str(model._meta.verbose_name), str(model._meta.verbose_name_plural)
            if language == "zh-hans":
                assert not re.search(r"[A-Za-z]{2,}", one.replace("API", "")), (model, one)
                assert not re.search(r"[A-Za-z]{2,}", many.replace("API", "")), (model, many)
            # Declared, not Django's verbose_name + "s" ("job batchs", "案件s").
            assert "verbose_name_plural" in model._meta.original_attrs, model


def test_the_apps_and_roles_are_named_in_chinese_in_the_admin(as_admin) -> None:
    """The screenshots showed "ACCOUNTS AND RISK ENGINE" and "APPEALS" over Chinese model names, and the operators'
    roles as the groups' code words ("senior_reviewer")."""
    for label in ("accounts", "appeals", "ingest"):
        with translation.override("zh-hans"):
            name = str(apps.get_app_config(label).verbose_name)
        assert not re.search(r"[A-Za-z]{2,}", name), name
    as_admin.cookies["django_language"] = "zh-hans"
    index = as_admin.get("/admin/").content.decode()
    assert "Accounts and risk engine" not in index and "账户与风控引擎" in index
    operators = as_admin.get("/admin/auth/user/").content.decode()
    assert '<td class="field-roles">管理员</td>' in operators
    assert ">高级审核员</a>" in operators and ">senior_reviewer<" not in operators  # the role filter
    filtered = as_admin.get("/admin/auth/user/?role=admin").content.decode()
    assert 'class="field-roles">管理员<' in filtered and 'field-roles">分析师' not in filtered


def _indexed_alone(model: type[Model], name: str) -> bool:
    """Whether an index (or unique constraint) leads with this column, so ORDER BY or = on it reads an index."""
    field: Any = model._meta.get_field(name)
    if (
        field.primary_key
        or field.unique
        or (field.db_index and not field.is_relation)
        or (field.is_relation and field.db_index)
    ):
        return True
    leading = [i.fields[0].lstrip("-") for i in model._meta.indexes if i.fields and i.condition is None]
    leading += [c.fields[0] for c in model._meta.total_unique_constraints]
    return name in leading


def test_changelists_sort_only_on_indexed_columns_and_never_count_the_whole_table() -> None:
    for model in project_models():
        found = model_admin(model)
        assert found.show_full_result_count is False, model
        assert found.paginator is EstimatingPaginator, model
        assert found.show_facets == admin.ShowFacets.NEVER, model
        for name in found.get_sortable_by(None):  # type: ignore[arg-type]
            assert isinstance(name, str) and _indexed_alone(model, name), (
                f"{model._meta.label} sorts on {name}, which no index leads with"
            )


def test_search_reads_an_index() -> None:
    for model in project_models():
        found = model_admin(model)
        for spec in found.search_fields:
            assert spec[0] in "=^", f"{model._meta.label}: {spec} would scan (use = or ^)"
            name = spec.lstrip("=^")
            if spec[0] == "^":
                assert any(
                    list(i.fields) == [name] and "varchar_pattern_ops" in i.opclasses for i in model._meta.indexes
                ), f"{model._meta.label}.{name} has no pattern index for a prefix search"
            else:
                assert _indexed_alone(model, name), f"{model._meta.label}.{name} is searched without an index"


def test_every_foreign_key_is_picked_by_a_search() -> None:
    for model in project_models():
        found = model_admin(model)
        picked = set(found.get_autocomplete_fields(None)) | set(found.raw_id_fields)  # type: ignore[arg-type]
        for f in model._meta.get_fields():
            if f.concrete and (f.many_to_one or f.one_to_one):
                assert f.name in picked, f"{model._meta.label}.{f.name} would be a select of every row"


def _flagged(n: int) -> None:
    for _ in range(n):
        flag(
            make_line(name=CANARY["name"], phone=CANARY["phone"], national_id=CANARY["national_id"]),
            "MULTI_HEAD",
            "OVERDUE",
        )


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(ctx.captured_queries)


def test_a_changelist_costs_the_same_queries_with_3_and_with_30_rows(as_admin: Client) -> None:
    _flagged(3)
    urls = [changelist(m) for m in project_models()]
    _queries(as_admin, "/admin/")  # the session and the user's roles, read once
    with3 = {url: _queries(as_admin, url) for url in urls}
    _flagged(27)
    assert CreditLine.objects.count() == 30
    with30 = {url: _queries(as_admin, url) for url in urls}
    assert with30 == with3
    # The credit lines: the session, the user and their roles, the capped count, the page (borrowers joined).
    assert with3[changelist(CreditLine)] <= 6


def test_a_large_unfiltered_list_shows_the_tables_estimate_and_a_filtered_one_counts_up_to_a_cap(
    as_admin: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(EstimatingPaginator, "exact_up_to", 5)
    for _ in range(8):
        make_line()
    with connection.cursor() as cur:
        cur.execute(f"ANALYZE {CreditLine._meta.db_table}")
    with CaptureQueriesContext(connection) as ctx:
        body = page(as_admin.get(changelist(CreditLine)))
    assert re.search(r"≈ 8 credit lines", body)
    counts = [q["sql"] for q in ctx.captured_queries if "COUNT(" in q["sql"].upper()]
    assert len(counts) == 1 and "LIMIT 6" in counts[0]
    body = page(as_admin.get(changelist(CreditLine) + "?status__exact=active"))
    assert "≈ 6 credit lines" in body
    assert "≈" not in page(as_admin.get(changelist(CreditLine) + "?status__exact=frozen"))


def test_searching_a_line_by_account_number_prefix_and_its_records_by_the_whole_number(as_admin: Client) -> None:
    case = frozen_multi_head_case()
    other = make_line()
    line = case.line
    body = page(as_admin.get(changelist(CreditLine) + f"?q={line.account_no[:-1]}"))
    assert line.account_no in body
    body = page(as_admin.get(changelist(CreditLine) + f"?q={line.account_no}"))
    assert line.account_no in body and other.account_no not in body
    assert change_url(case) in as_admin.get(changelist(Case) + f"?q={line.account_no}").content.decode()
    assert "0 cases" in page(as_admin.get(changelist(Case) + f"?q={other.account_no}"))
    # A term that is no number is not compared with the ids (it was a database error on integer columns).
    assert as_admin.get(changelist(AuditEvent) + "?q=abc").status_code == 200


# --- Personal data


def test_the_admin_shows_a_borrowers_personal_data_masked_never_whole(as_admin: Client) -> None:
    case = flag(make_line(name=CANARY["name"], phone=CANARY["phone"], national_id=CANARY["national_id"]), "MULTI_HEAD")
    line = case.line
    pages = [
        changelist(CreditLine),
        change_url(line),
        changelist(type(line.borrower)),
        change_url(line.borrower),
        f"{changelist(CreditLine)}?q={line.account_no}",
        change_url(case),
        f"/admin/autocomplete/?app_label=accounts&model_name=creditline&field_name=borrower&term={line.account_no}",
    ]
    seen = ""
    for url in pages:
        response = as_admin.get(url)
        assert response.status_code == 200, url
        text = page(response) + response.content.decode()
        for raw in CANARY.values():
            assert raw not in text, f"{raw} whole on {url}"
        seen += text
    for masked in MASKED:
        assert masked in seen


# --- Read-only records


READ_ONLY = [
    "accounts.creditinquiry",
    "accounts.signal",
    "accounts.decision",
    "accounts.notification",
    "accounts.ruleset",
    "accounts.rule",
    "accounts.case",
    "accounts.creditline",
    "accounts.borrower",
    "riskops.auditevent",
    "riskops.jobitem",
    "appeals.appeal",
]


@pytest.mark.parametrize("label", READ_ONLY)
def test_records_cannot_be_added_changed_or_deleted_in_the_admin(label: str) -> None:
    found = model_admin(apps.get_model(label))
    request = type("R", (), {"user": make_role_operator("admin")})()
    assert not found.has_add_permission(request)  # type: ignore[arg-type]
    assert not found.has_change_permission(request)  # type: ignore[arg-type]
    assert not found.has_delete_permission(request)  # type: ignore[arg-type]


def test_the_audit_trail_cannot_be_edited_or_deleted_through_the_admin(as_admin: Client) -> None:
    frozen_multi_head_case()
    event = AuditEvent.objects.order_by("pk").first()
    assert event is not None
    before = AuditEvent.objects.values().get(pk=event.pk)
    response = as_admin.get(change_url(event))
    assert response.status_code == 200
    assert 'name="_save"' not in response.content.decode()
    assert as_admin.post(change_url(event), {"action": "tampered", "reason": "x"}).status_code == 403
    assert as_admin.post(change_url(event) + "delete/", {"post": "yes"}).status_code == 403
    assert as_admin.post(changelist(AuditEvent), {"action": "delete_selected", "_selected_action": [event.pk]})
    assert AuditEvent.objects.values().get(pk=event.pk) == before


def test_the_active_ruleset_cannot_be_edited_or_deleted_in_the_admin(as_admin: Client) -> None:
    ruleset = default_ruleset()
    rule = ruleset.rules.order_by("pk").first()
    assert rule is not None
    before = (list(RuleSet.objects.values()), list(Rule.objects.values()), AuditEvent.objects.count())
    response = as_admin.get(change_url(ruleset))
    assert response.status_code == 200
    assert 'name="_save"' not in response.content.decode()
    form = {
        "version": ruleset.version,
        "is_active": "on",
        "note": "edited in place",
        "rules-TOTAL_FORMS": "1",
        "rules-INITIAL_FORMS": "1",
        "rules-0-id": rule.pk,
        "rules-0-ruleset": ruleset.pk,
        "rules-0-code": rule.code,
        "rules-0-params": '{"min_inquiries": 99}',
        "rules-0-severity": rule.severity,
        "rules-0-action": rule.action,
        "rules-0-enabled": "on",
        "_save": "Save",
    }
    assert as_admin.post(change_url(ruleset), form).status_code == 403
    assert as_admin.post(change_url(rule), {"params": '{"min_inquiries": 99}'}).status_code == 403
    assert as_admin.post(change_url(ruleset) + "delete/", {"post": "yes"}).status_code == 403
    assert as_admin.post(reverse("admin:accounts_ruleset_add"), {**form, "version": 99}).status_code == 403
    assert (list(RuleSet.objects.values()), list(Rule.objects.values()), AuditEvent.objects.count()) == before


# --- Changes go through the services


def _action(client: Client, model: type[Model], action: str, ids: list[int]):
    return client.post(changelist(model), {"action": action, "_selected_action": ids}, follow=True)


def test_assigning_cases_in_the_admin_is_the_service_with_the_administrator_as_actor(
    as_admin: Client, administrator: User
) -> None:
    case = frozen_multi_head_case()
    assert case.assignee_id is None
    response = _action(as_admin, Case, "assign_to_me", [case.pk])
    assert messages_of(response) == ["1 of 1 changed"]
    case.refresh_from_db()
    assert case.assignee_id == administrator.pk and case.version == 2
    event = AuditEvent.objects.get(action="case.assign", object_id=case.pk)
    assert (event.actor_user_id, event.before, event.after) == (
        administrator.pk,
        {"assignee_id": None},
        {"assignee_id": administrator.pk},
    )
    _action(as_admin, Case, "release", [case.pk])
    case.refresh_from_db()
    assert case.assignee_id is None
    assert AuditEvent.objects.filter(action="case.release", object_id=case.pk, actor_user=administrator).exists()


def test_a_superuser_without_a_deciding_role_is_refused_as_the_service_says() -> None:
    case = frozen_multi_head_case()
    root = User.objects.create_superuser("root", password="pw-12345678")
    response = _action(logged_in(root), Case, "assign_to_me", [case.pk])
    assert messages_of(response) == [f"operator {root.pk} does not exist, is inactive or cannot decide cases"]
    case.refresh_from_db()
    assert case.assignee_id is None


def test_unfreezing_in_the_admin_keeps_four_eyes(as_admin: Client, administrator: User) -> None:
    high = frozen_multi_head_case()
    medium = frozen_medium_only_case()
    active = make_line()
    response = _action(as_admin, CreditLine, "unfreeze", [high.line_id, medium.line_id, active.pk])
    assert messages_of(response) == [
        f"{high.line.account_no}: proposed: a second reviewer must approve the unfreeze on the case page",
        f"{medium.line.account_no}: unfrozen",
        f"{active.account_no}: the line is not frozen",
    ]
    assert CreditLine.objects.get(pk=high.line_id).status == "frozen"
    proposal = Decision.objects.get(case=high)
    assert (proposal.status, proposal.proposed_by_id) == (DecisionStatus.PROPOSED, administrator.pk)
    assert CreditLine.objects.get(pk=medium.line_id).status == "active"
    assert AuditEvent.objects.filter(
        action="line.unfreeze", account_id=medium.line_id, actor_user=administrator
    ).exists()
