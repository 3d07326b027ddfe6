"""Rule tuning (issue 17), drafts and versions: a live version never changes (the database refuses it), a draft is a
copy whose rules are changed through a validated form (types, ranges, no unknown keys), any two versions compare
parameter by parameter, and only risk managers draft. Every change is audited."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F

from accounts.engine import evaluate_lines
from accounts.models import Rule, RuleSet, Signal, SignalStatus, Simulation
from accounts.rule_params import ParamsInvalid, clean_params
from accounts.rule_queries import active_rules
from accounts.selectors.rules import Difference, ruleset_diff
from accounts.services.rulesets import rule_change, rule_fields, ruleset_discard, ruleset_draft
from riskops.core.errors import DomainError, NotAllowed
from riskops.models import AuditEvent
from tests.factories import flag, make_line, make_role_operator
from tests.helpers import logged_in, messages_of, op, page

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ruleset")]

MULTI_HEAD = {"window_days": 30, "min_inquiries": 4, "min_institutions": 3}


@pytest.fixture
def manager():
    return make_role_operator("risk_manager", "mia")


@pytest.fixture
def manager2():
    return make_role_operator("risk_manager", "max")


def flagged_line(code: str):
    line = make_line()
    flag(line, code)
    return line


def live() -> RuleSet:
    return RuleSet.objects.get(is_active=True)


def change(draft: RuleSet, manager, code: str = "MULTI_HEAD", **params) -> Rule:
    rule = draft.rules.get(code=code)
    return rule_change(
        rule_id=rule.pk,
        actor=op(manager),
        params={**rule.params, **params},
        severity=rule.severity,
        action=rule.action,
        enabled=rule.enabled,
        restore_on_clear=rule.restore_on_clear,
    )


# --- A live version never changes.


@pytest.mark.parametrize(
    "write",
    [
        lambda v: Rule.objects.filter(ruleset=v, code="MULTI_HEAD").update(params={**MULTI_HEAD, "min_inquiries": 9}),
        lambda v: Rule.objects.filter(ruleset=v, code="MULTI_HEAD").update(enabled=False),
        lambda v: Rule.objects.filter(ruleset=v, code="OVERDUE").delete(),
        lambda v: Rule.objects.create(ruleset=v, code="MULTI_HEAD", params={}, severity="low", action="freeze"),
        lambda v: RuleSet.objects.filter(pk=v.pk).update(note="edited"),
        lambda v: RuleSet.objects.filter(pk=v.pk).update(version=99),
    ],
    ids=["params", "enabled", "delete-rule", "add-rule", "note", "number"],
)
def test_the_database_refuses_any_change_to_a_live_version(write):
    version = live()
    before = {r.code: rule_fields(r) for r in version.rules.all()}
    with pytest.raises(IntegrityError, match=r"ruleset v1 was active"), transaction.atomic():
        write(version)
    assert {r.code: rule_fields(r) for r in version.rules.all()} == before
    assert (live().note, live().version) == (version.note, 1)


def test_a_retired_version_cannot_go_live_again_in_place(manager):
    draft = ruleset_draft(source=live(), actor=op(manager))
    RuleSet.objects.filter(pk=live().pk).update(is_active=False)  # what an activation does to the old version
    RuleSet.objects.filter(pk=draft.pk).update(is_active=True, activated_at=draft.created_at)
    with transaction.atomic():
        RuleSet.objects.filter(pk=draft.pk).update(is_active=False)
        with pytest.raises(IntegrityError, match="ruleset v1 was active"), transaction.atomic():
            RuleSet.objects.filter(version=1).update(is_active=True)
        transaction.set_rollback(True)
    assert live().version == draft.version


def test_an_active_version_must_have_gone_live():
    at = live().created_at
    RuleSet.objects.filter(is_active=True).update(is_active=False)
    with pytest.raises(IntegrityError, match="active_ruleset_was_activated"), transaction.atomic():
        RuleSet.objects.create(version=5, is_active=True, created_at=at)


def test_the_service_refuses_to_change_a_live_rule_and_changes_nothing(manager):
    with pytest.raises(DomainError, match="Version 1 has been live and cannot change: copy it into a draft"):
        change(live(), manager, min_inquiries=6)
    assert live().rules.get(code="MULTI_HEAD").params == MULTI_HEAD
    assert not AuditEvent.objects.filter(action="rule.change").exists()


# --- Drafts.


def test_a_draft_is_a_copy_that_changes_nothing_live(manager):
    line = flagged_line("MULTI_HEAD")
    draft = ruleset_draft(source=live(), actor=op(manager), note="fewer multi-head freezes")

    assert (draft.version, draft.is_active, draft.is_draft, draft.based_on_id) == (2, False, True, live().pk)
    assert {r.code: rule_fields(r) for r in draft.rules.all()} == {r.code: rule_fields(r) for r in live().rules.all()}
    change(draft, manager, min_inquiries=40)
    assert active_rules()["MULTI_HEAD"].params == MULTI_HEAD  # the engine still applies version 1
    evaluate_lines([line.pk])
    assert Signal.objects.filter(line=line, code="MULTI_HEAD", status=SignalStatus.ACTIVE).exists()
    event = AuditEvent.objects.get(action="ruleset.draft")
    assert (event.object_id, event.before, (event.after or {})["version"], (event.after or {})["note"]) == (
        draft.pk,
        {"version": 1},
        2,
        "fewer multi-head freezes",
    )


def test_a_rule_change_is_audited_with_before_and_after_and_a_repeat_changes_nothing(manager):
    draft = ruleset_draft(source=live(), actor=op(manager))
    change(draft, manager, min_inquiries=6)
    change(draft, manager, min_inquiries=6)
    events = list(AuditEvent.objects.filter(action="rule.change"))
    assert len(events) == 1
    assert (
        (events[0].before or {})["params"]["min_inquiries"],
        (events[0].after or {})["params"]["min_inquiries"],
    ) == (
        4,
        6,
    )
    assert draft.rules.get(code="MULTI_HEAD").params == {**MULTI_HEAD, "min_inquiries": 6}


@pytest.mark.parametrize(
    ("code", "params", "errors"),
    [
        ("MULTI_HEAD", {**MULTI_HEAD, "min_inqueries": 5}, {"min_inqueries": "unknown parameter"}),
        ("MULTI_HEAD", {"window_days": 30, "min_inquiries": 4}, {"min_institutions": "missing"}),
        ("MULTI_HEAD", {**MULTI_HEAD, "min_inquiries": 0}, {"min_inquiries": "from 1 to 1000"}),
        ("MULTI_HEAD", {**MULTI_HEAD, "min_inquiries": "four"}, {"min_inquiries": "a whole number"}),
        ("MULTI_HEAD", {**MULTI_HEAD, "min_inquiries": 4.5}, {"min_inquiries": "a whole number"}),
        ("MULTI_HEAD", {**MULTI_HEAD, "min_inquiries": True}, {"min_inquiries": "a whole number"}),
        (
            "MULTI_HEAD",
            {**MULTI_HEAD, "min_institutions": 5},
            {"min_institutions": "cannot exceed the inquiries (each inquiry is from one institution)"},
        ),
        (
            "OVERDUE",
            {"min_days_past_due": 30, "reminder_min_days_past_due": 31},
            {"reminder_min_days_past_due": "cannot exceed the days past due to freeze"},
        ),
        (
            "ABNORMAL_USE",
            {"window_days": 7, "min_share": "1.5", "categories": ["crypto"], "lookback_days": 90},
            {"min_share": "from 0.01 to 1"},
        ),
        (
            "ABNORMAL_USE",
            {"window_days": 7, "min_share": "0.5", "categories": ["crypto", "lottery"], "lookback_days": 90},
            {"categories": "unknown categories: lottery"},
        ),
        (
            "ABNORMAL_USE",
            {"window_days": 7, "min_share": "0.5", "categories": [], "lookback_days": 90},
            {"categories": "at least one category"},
        ),
        (
            "PROFILE_STALE",
            {"min_income_drop": "0.12345", "grace_days": 60, "lookback_days": 365, "cut_ratio": "0.5"},
            {"min_income_drop": "a number with at most 4 decimals"},
        ),
        (
            "PROFILE_STALE",
            {"min_income_drop": "0.3", "grace_days": 60, "lookback_days": 60, "cut_ratio": "NaN"},
            {"cut_ratio": "a number with at most 4 decimals"},
        ),
    ],
)
def test_bad_parameters_are_refused_each_with_its_message_and_nothing_changes(manager, code, params, errors):
    draft = ruleset_draft(source=live(), actor=op(manager))
    rule = draft.rules.get(code=code)
    before = rule_fields(rule)
    with pytest.raises(ParamsInvalid) as refused:
        rule_change(
            rule_id=rule.pk,
            actor=op(manager),
            params=params,
            severity=rule.severity,
            action=rule.action,
            enabled=True,
            restore_on_clear=None,
        )
    assert refused.value.errors == errors
    assert rule_fields(Rule.objects.get(pk=rule.pk)) == before


def test_parameters_are_stored_in_their_type():
    assert clean_params(
        "ABNORMAL_USE",
        {"window_days": "10", "min_share": "0.50", "categories": ["gambling", "crypto", "crypto"], "lookback_days": 90},
    ) == {
        "window_days": 10,
        "min_share": "0.5",
        "categories": ["crypto", "gambling"],
        "lookback_days": 90,
    }


def test_a_reminder_is_not_an_action_a_rule_takes(manager):
    draft = ruleset_draft(source=live(), actor=op(manager))
    rule = draft.rules.get(code="MULTI_HEAD")
    with pytest.raises(ParamsInvalid) as refused:
        rule_change(
            rule_id=rule.pk,
            actor=op(manager),
            params=rule.params,
            severity="urgent",
            action="remind",
            enabled=True,
            restore_on_clear=None,
        )
    assert refused.value.errors == {"severity": "not a severity", "action": "not an action a rule takes"}


def test_only_risk_managers_draft_and_change_rules(analyst, manager):
    with pytest.raises(NotAllowed, match="Your role cannot change the rules"):
        ruleset_draft(source=live(), actor=op(analyst))
    draft = ruleset_draft(source=live(), actor=op(manager))
    with pytest.raises(NotAllowed):
        change(draft, analyst, min_inquiries=6)
    assert RuleSet.objects.count() == 2
    response = logged_in(analyst).post("/rules/drafts/", {"source": "1"})
    assert response.status_code == 403
    assert RuleSet.objects.count() == 2


def test_a_draft_can_be_discarded_and_a_live_version_cannot(manager):
    draft = ruleset_draft(source=live(), actor=op(manager))
    assert ruleset_discard(ruleset_id=draft.pk, actor=op(manager)) == 2
    assert list(RuleSet.objects.values_list("version", flat=True)) == [1]
    with pytest.raises(DomainError, match="Version 1 has been live: it is kept"):
        ruleset_discard(ruleset_id=live().pk, actor=op(manager))
    assert AuditEvent.objects.filter(action="ruleset.discard").count() == 1


# --- Comparing versions.


def test_the_diff_lists_exactly_what_changed(manager):
    draft = ruleset_draft(source=live(), actor=op(manager))
    change(draft, manager, min_inquiries=6)
    rule = draft.rules.get(code="OVERDUE")
    rule_change(
        rule_id=rule.pk,
        actor=op(manager),
        params=rule.params,
        severity="medium",
        action="cut",
        enabled=False,
        restore_on_clear=None,
    )
    assert ruleset_diff(live(), draft) == [
        Difference("MULTI_HEAD", "min_inquiries", 4, 6),
        Difference("OVERDUE", "severity", "high", "medium"),
        Difference("OVERDUE", "action", "freeze", "cut"),
        Difference("OVERDUE", "enabled", True, False),
    ]
    assert ruleset_diff(live(), live()) == []


# --- The pages.


def test_the_rules_page_shows_each_live_rule_with_what_it_fires_on_now(analyst):
    flagged_line("MULTI_HEAD")
    flagged_line("MULTI_HEAD")
    body = page(logged_in(analyst).get("/rules/"))
    holding = Signal.objects.filter(status=SignalStatus.ACTIVE, code="MULTI_HEAD").count()
    assert holding == 2
    row = body[body.index('data-rule="MULTI_HEAD"') :]
    row = row[: row.index("</tr>")]
    assert f'<td class="holding">{holding}</td>' in row
    assert "<dt>inquiries at least</dt><dd>4</dd>" in row
    assert "Draft a change" not in body  # analysts read only
    assert 'data-version="1"' in body and "live" in body


def test_a_manager_drafts_edits_and_compares_through_the_pages(manager):
    client = logged_in(manager)
    response = client.post("/rules/drafts/", {"source": "1", "note": "fewer multi-head freezes"}, follow=True)
    assert response.redirect_chain == [("/rules/v2/", 302)]
    assert messages_of(response) == ["Draft version 2 holds a copy of version 1: change its rules below."]
    assert "Save this rule" in page(response)
    form = {
        "MULTI_HEAD-p_window_days": "30",
        "MULTI_HEAD-p_min_inquiries": "6",
        "MULTI_HEAD-p_min_institutions": "3",
        "MULTI_HEAD-severity": "high",
        "MULTI_HEAD-action": "freeze",
        "MULTI_HEAD-enabled": "on",
        "MULTI_HEAD-restore_on_clear": "",
    }
    response = client.post("/rules/v2/rules/MULTI_HEAD/", form, follow=True)
    assert messages_of(response) == ["MULTI_HEAD of draft version 2 saved."]
    body = page(client.get("/rules/v2/?other=1"))
    diff = body[body.index('id="table-diff"') :]
    diff = diff[: diff.index("</table>")]
    assert diff.count("<tr data-rule") == 1
    assert '<td class="before">4</td><td class="after">6</td>' in diff


def test_a_bad_value_in_the_form_is_shown_beside_its_field_and_changes_nothing(manager):
    client = logged_in(manager)
    client.post("/rules/drafts/", {"source": "1"})
    form = {
        "MULTI_HEAD-p_window_days": "30",
        "MULTI_HEAD-p_min_inquiries": "",
        "MULTI_HEAD-p_min_institutions": "3000",
        "MULTI_HEAD-severity": "high",
        "MULTI_HEAD-action": "freeze",
        "MULTI_HEAD-enabled": "on",
    }
    response = client.post("/rules/v2/rules/MULTI_HEAD/", form)
    assert response.status_code == 400
    body = page(response)
    assert 'id="id_MULTI_HEAD-p_min_inquiries"' in body
    inquiries = body[body.index('id="id_MULTI_HEAD-p_min_inquiries"') :]
    assert inquiries.index("missing") < inquiries.index('id="id_MULTI_HEAD-p_min_institutions"')
    assert "from 1 to 1000" in body
    assert RuleSet.objects.get(version=2).rules.get(code="MULTI_HEAD").params == MULTI_HEAD


def test_a_live_version_has_no_form_and_a_post_to_it_is_refused(manager):
    client = logged_in(manager)
    assert "Save this rule" not in page(client.get("/rules/v1/"))
    form = {
        "MULTI_HEAD-p_window_days": "30",
        "MULTI_HEAD-p_min_inquiries": "9",
        "MULTI_HEAD-p_min_institutions": "3",
        "MULTI_HEAD-severity": "high",
        "MULTI_HEAD-action": "freeze",
        "MULTI_HEAD-enabled": "on",
    }
    response = client.post("/rules/v1/rules/MULTI_HEAD/", form, follow=True)
    assert messages_of(response) == ["Version 1 has been live and cannot change: copy it into a draft"]
    assert live().rules.get(code="MULTI_HEAD").params == MULTI_HEAD


@pytest.mark.parametrize(("url", "status"), [("/rules/v9/", 404), ("/rules/v1/?other=9", 400)])
def test_a_missing_version_is_a_clear_error(analyst, url, status):
    assert logged_in(analyst).get(url).status_code == status


def test_the_rules_page_costs_a_fixed_number_of_queries(manager, django_assert_max_num_queries):
    client = logged_in(manager)
    for _ in range(3):
        ruleset_draft(source=live(), actor=op(manager))
    client.get("/rules/")
    with django_assert_max_num_queries(16):
        assert client.get("/rules/").status_code == 200


# --- Simulating a draft on today's book.


def test_a_simulation_still_running_says_so_and_polls(manager):
    from riskops.tuning.services import simulation_request

    make_line()
    draft = ruleset_draft(source=live(), actor=op(manager))
    simulation = simulation_request(version=draft.version, actor=op(manager))  # its batches wait for the commit
    client = logged_in(manager)
    body = page(client.get(f"/rules/simulations/{simulation.pk}/"))
    assert f'hx-get="/rules/simulations/{simulation.pk}/" hx-trigger="every 2s"' in body
    assert "Still running: the figures fill in as its batches finish." in body
    partial = page(client.get(f"/rules/simulations/{simulation.pk}/", headers={"HX-Request": "true"}))
    assert partial.startswith('<div id="simulation-report"') and "<html" not in partial


def book():
    """Accounts of known fate: A frozen by MULTI_HEAD on 5 inquiries, D frozen by MULTI_HEAD and OVERDUE, C frozen
    by OVERDUE alone, E 25 days past due (a reminder), F untouched."""
    a, d, c, e, f = (make_line() for _ in range(5))
    flag(a, "MULTI_HEAD")
    flag(d, "MULTI_HEAD", "OVERDUE")
    flag(c, "OVERDUE")
    flag(e, "OVERDUE", overdue_days=25)
    return a, d, c, e, f


def state() -> dict[str, object]:
    """Everything a simulation must not change."""
    from accounts.models import Case, CreditLine, LineChange, Notification

    return {
        "lines": sorted(CreditLine.objects.values_list("id", "status", "limit", "available", "outstanding")),
        "signals": sorted(Signal.objects.values_list("id", "status", "code", "severity")),
        "cases": sorted(Case.objects.values_list("id", "status", "severity_rank")),
        "changes": LineChange.objects.count(),
        "notifications": Notification.objects.count(),
        "audit": AuditEvent.objects.exclude(action__startswith="job.").count(),
    }


def draft_fewer_multi_head_more_overdue(manager) -> RuleSet:
    draft = ruleset_draft(source=live(), actor=op(manager))
    change(draft, manager, min_inquiries=6)
    change(draft, manager, code="OVERDUE", min_days_past_due=20)
    return draft


def test_a_simulation_changes_no_account_and_its_figures_equal_an_activation(
    manager, django_capture_on_commit_callbacks
):
    from accounts.engine import evaluate_all, frozen_by_signal
    from accounts.models import CreditLine, SimulationLine
    from riskops.models import Job
    from riskops.tuning.services import simulation_request

    a, _d, _c, e, _f = book()
    draft = draft_fewer_multi_head_more_overdue(manager)
    before = state()

    with django_capture_on_commit_callbacks(execute=True):  # the job's batches run as the request commits
        simulation = simulation_request(version=draft.version, actor=op(manager))

    assert state() == before  # nothing but the report and the job
    assert Job.objects.get(pk=simulation.job_id).status == "succeeded"
    simulation.refresh_from_db()
    assert simulation.evaluated == CreditLine.objects.exclude(status="closed").count()
    simulated = {
        (o, line_id): codes for o, line_id, codes in SimulationLine.objects.values_list("outcome", "line_id", "codes")
    }
    assert simulated == {("freeze", e.pk): "OVERDUE", ("release", a.pk): "MULTI_HEAD"}

    # The same draft activated on this data, then the engine over every account at the simulation's instant.
    all_ids = list(CreditLine.objects.values_list("id", flat=True))
    frozen_before = set(CreditLine.objects.filter(status="frozen").values_list("id", flat=True))
    lifted_before = frozen_by_signal(all_ids, lifted=True)
    RuleSet.objects.filter(pk=live().pk).update(is_active=False)
    RuleSet.objects.filter(pk=draft.pk).update(is_active=True, activated_at=simulation.requested_at)
    evaluate_all(now=simulation.requested_at)
    frozen_after = set(CreditLine.objects.filter(status="frozen").values_list("id", flat=True))
    lifted_after = frozen_by_signal(all_ids, lifted=True)
    assert frozen_after - frozen_before == {line for o, line in simulated if o == "freeze"}
    assert lifted_after - lifted_before == {line for o, line in simulated if o == "release"}


def test_what_the_live_version_would_change_by_itself_is_not_put_down_to_the_draft(
    manager, django_capture_on_commit_callbacks
):
    """Data moved since the last evaluation: an account whose new events fire a rule the draft leaves as it is, and
    a frozen account that repaid. The live version's next evaluation changes both: not the draft."""
    from accounts.models import Installment, SimulationLine
    from riskops.tuning.services import simulation_request

    a, _d, c, e, _f = book()
    g = with_events("MULTI_HEAD", inquiries=9)  # 9 inquiries, never evaluated: both versions freeze it
    Installment.objects.filter(line=c).update(paid_at=timezone_now(), paid_amount=F("amount"))  # C repaid
    draft = draft_fewer_multi_head_more_overdue(manager)
    with django_capture_on_commit_callbacks(execute=True):
        simulation = simulation_request(version=draft.version, actor=op(manager))
    simulated = set(SimulationLine.objects.filter(simulation=simulation).values_list("outcome", "line_id"))
    assert simulated == {("freeze", e.pk), ("release", a.pk)}
    assert g.pk not in {line for _o, line in simulated} and c.pk not in {line for _o, line in simulated}


def timezone_now():
    from django.utils import timezone

    return timezone.now()


def test_the_simulation_report_and_its_lists(manager, analyst, django_capture_on_commit_callbacks):
    from accounts.models import Case
    from tests.helpers import submit

    a, _d, _c, e, _f = book()
    submit(Case.objects.get(line=a))  # the released one's appeal history is shown beside it
    draft = draft_fewer_multi_head_more_overdue(manager)
    client = logged_in(manager)
    with django_capture_on_commit_callbacks(execute=True):  # the job's batches run as the request commits
        response = client.post(f"/rules/v{draft.version}/simulate/")
    assert response.status_code == 302
    simulation_id = response["Location"].rstrip("/").split("/")[-1]
    body = page(client.get(response["Location"]))
    assert "hx-trigger" not in body  # the job is done: the report stops polling
    assert '<div class="tile" data-figure="freeze"><span class="n">1</span>' in body
    assert '<div class="tile" data-figure="release"><span class="n">1</span>' in body
    assert e.account_no in body and a.account_no in body
    released = body[body.index('id="sample-release"') :]
    assert released.index(a.account_no) < released.index("in review") < released.index("</section>")
    csv = client.get(f"/rules/simulations/{simulation_id}/release.csv").content.decode("utf-8-sig").splitlines()
    assert csv[0] == "account_no,rule_families,exposure,latest_case_id"
    assert [row.split(",")[0] for row in csv[1:]] == [a.account_no]
    assert logged_in(analyst).post(f"/rules/v{draft.version}/simulate/").status_code == 403
    job_id = Simulation.objects.get(pk=simulation_id).job_id
    assert f'href="/rules/simulations/{simulation_id}/" id="job-simulation"' in page(client.get(f"/jobs/{job_id}/"))
    assert logged_in(analyst).get(f"/rules/simulations/{simulation_id}/nothing.csv").status_code == 404


# --- Activating a draft: a second risk manager, fresh evidence, a bounded blast radius.


def simulated(manager, django_capture_on_commit_callbacks) -> tuple[RuleSet, Simulation]:
    """Draft v2 (MULTI_HEAD at 6 inquiries, OVERDUE freezing at 20 days) simulated on book(): 1 newly frozen (E),
    1 newly released (A); and backtested."""
    from riskops.tuning.services import backtest_request, simulation_request

    draft = draft_fewer_multi_head_more_overdue(manager)
    with django_capture_on_commit_callbacks(execute=True):
        simulation = simulation_request(version=draft.version, actor=op(manager))
        backtest_request(version=draft.version, actor=op(manager))
    return draft, simulation


def latest_backtest_id(draft: RuleSet) -> int:
    from accounts.models import Backtest

    return Backtest.objects.filter(ruleset=draft).order_by("-pk").values_list("pk", flat=True).first() or 0


def activate(user, draft: RuleSet, simulation: Simulation, **kw):
    from riskops.tuning.services import ruleset_activate

    backtest_id = kw.pop("backtest_id", None) or latest_backtest_id(draft)
    return ruleset_activate(
        version=draft.version, actor=op(user), simulation_id=simulation.pk, backtest_id=backtest_id, **kw
    )


def approval(simulation: Simulation, **fields) -> dict[str, object]:
    """The approval form as the page fills it in."""
    return {"simulation": simulation.pk, "backtest": latest_backtest_id(simulation.ruleset), "reason": "", **fields}


def test_the_author_cannot_activate_a_second_manager_can(manager, manager2, django_capture_on_commit_callbacks):
    book()
    draft, simulation = simulated(manager, django_capture_on_commit_callbacks)
    author = logged_in(manager)
    review = page(author.get(f"/rules/v{draft.version}/activate/"))
    assert "You made or changed this draft: another risk manager must approve its activation." in review
    assert 'id="activate"' not in review
    with pytest.raises(NotAllowed, match="You made or changed version 2: another risk manager must approve"):
        activate(manager, draft, simulation)
    # Changing one of its rules makes one an author too.
    other = ruleset_draft(source=live(), actor=op(manager))
    change(other, manager2, min_inquiries=7)
    with pytest.raises(NotAllowed):
        activate(manager2, other, simulation)
    assert live().version == 1

    review = page(logged_in(manager2).get(f"/rules/v{draft.version}/activate/"))
    assert '<tr data-rule="MULTI_HEAD" data-field="min_inquiries">' in review
    assert '<div class="tile" data-figure="freeze"><span class="n">1</span>' in review
    assert '<div class="tile" data-figure="release"><span class="n">1</span>' in review
    assert 'id="evidence-fresh"' in review and 'id="activate"' in review
    response = logged_in(manager2).post(f"/rules/v{draft.version}/activate/", approval(simulation), follow=True)
    assert messages_of(response) == ["Version 2 is live (it replaced version 1)."]
    now_live = live()
    assert (now_live.version, now_live.activated_by, now_live.activated_at is not None) == (2, manager2, True)
    assert not RuleSet.objects.get(version=1).is_active
    event = AuditEvent.objects.get(action="ruleset.activate")
    assert (event.actor_user, event.before, event.after) == (
        manager2,
        {"live": 1},
        {
            "live": 2,
            "simulation": simulation.pk,
            "backtest": latest_backtest_id(draft),
            "newly_frozen": 1,
            "newly_released": 1,
            "exposure": f"{sum(line.exposure for line in simulation.lines.all()):.2f}",
            "over_blast_radius": False,
            "reason": "",
        },
    )
    with pytest.raises(DomainError, match="Version 2 has been live: only a draft can be activated"):
        activate(manager2, draft, simulation)


def test_activation_needs_a_simulation_and_a_backtest_of_the_draft_as_it_is_fresh_and_the_latest(
    manager, manager2, settings, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from accounts.models import Backtest
    from riskops.core.errors import ConflictError

    book()
    draft = draft_fewer_multi_head_more_overdue(manager)
    with pytest.raises(DomainError) as refused:
        activate(manager2, draft, Simulation(pk=0))
    assert str(refused.value) == (
        "Version 2 has not been simulated: simulate it first. Version 2 has not been backtested: backtest it first."
    )
    simulation = simulated_again(manager, draft, django_capture_on_commit_callbacks)
    backtest = backtested_again(manager, draft, django_capture_on_commit_callbacks)

    change(draft, manager, min_inquiries=7)
    with pytest.raises(DomainError) as refused:
        activate(manager2, draft, simulation)
    assert str(refused.value) == (
        f"Version 2 changed after simulation #{simulation.pk}: simulate it again. "
        f"Version 2 changed after backtest #{backtest.pk}: backtest it again."
    )
    newer = simulated_again(manager, draft, django_capture_on_commit_callbacks)
    with pytest.raises(ConflictError, match=f"Simulation #{newer.pk} is newer than the one you reviewed"):
        activate(manager2, draft, simulation)
    newer_backtest = backtested_again(manager, draft, django_capture_on_commit_callbacks)
    with pytest.raises(ConflictError, match=f"Backtest #{newer_backtest.pk} is newer than the one you reviewed"):
        activate(manager2, draft, newer, backtest_id=backtest.pk)

    Simulation.objects.filter(pk=newer.pk).update(requested_at=newer.requested_at - timedelta(minutes=61))
    Backtest.objects.filter(pk=newer_backtest.pk).update(requested_at=newer.requested_at - timedelta(minutes=1441))
    messages = [
        f"Simulation #{newer.pk} ran on the data of 61 minutes ago, more than the 60 allowed: simulate again.",
        f"Backtest #{newer_backtest.pk} ran on the data of 1441 minutes ago, more than the 1440 allowed: backtest again.",
    ]
    with pytest.raises(DomainError) as refused:
        activate(manager2, draft, newer)
    assert str(refused.value) == " ".join(messages)
    review = page(logged_in(manager2).get("/rules/v2/activate/"))
    assert all(m in review for m in messages) and 'id="activate"' not in review
    settings.RULES_EVIDENCE_MAX_AGE_MINUTES = 90
    settings.RULES_BACKTEST_MAX_AGE_MINUTES = 2000
    activate(manager2, draft, newer)
    assert live().version == 2


def backtested_again(manager, draft: RuleSet, django_capture_on_commit_callbacks):
    from riskops.tuning.services import backtest_request

    with django_capture_on_commit_callbacks(execute=True):
        return backtest_request(version=draft.version, actor=op(manager))


def simulated_again(manager, draft: RuleSet, django_capture_on_commit_callbacks) -> Simulation:
    from riskops.tuning.services import simulation_request

    with django_capture_on_commit_callbacks(execute=True):
        return simulation_request(version=draft.version, actor=op(manager))


def test_above_the_blast_radius_the_approver_types_why(manager, manager2, settings, django_capture_on_commit_callbacks):
    book()
    draft, simulation = simulated(manager, django_capture_on_commit_callbacks)
    settings.RULES_BLAST_RADIUS_ACCOUNTS = 1  # two accounts change
    assert 'id="over-radius"' in page(logged_in(manager2).get("/rules/v2/activate/"))
    response = logged_in(manager2).post("/rules/v2/activate/", approval(simulation, reason="ok"), follow=True)
    assert messages_of(response) == [
        "Activating version 2 changes 2 accounts "
        f"(¥{sum(line.exposure for line in simulation.lines.all()):,.2f}), above the blast radius of 1 accounts or "
        "¥1,000,000: type why, in at least 10 characters"
    ]
    assert live().version == 1
    activate(manager2, draft, simulation, reason="the bureau's new feed doubles inquiries")
    after = AuditEvent.objects.get(action="ruleset.activate").after
    assert after is not None and after["over_blast_radius"] is True
    assert live().version == 2


def test_activation_then_the_re_evaluation_of_the_accounts_it_names(
    manager, manager2, django_capture_on_commit_callbacks
):
    from accounts.models import CreditLine
    from riskops.models import Job

    a, d, c, e, f = book()
    _draft, simulation = simulated(manager, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in(manager2).post("/rules/v2/activate/", approval(simulation, reevaluate="on"))
    job = Job.objects.get(kind="reevaluate_unfreeze")
    assert response["Location"] == f"/jobs/{job.pk}/"
    assert (job.status, job.selection) == ("succeeded", {"line_ids": sorted([a.pk, e.pk])})
    status = dict(CreditLine.objects.values_list("pk", "status"))
    assert (status[a.pk], status[e.pk], status[d.pk], status[c.pk], status[f.pk]) == (
        "active",
        "frozen",
        "frozen",
        "frozen",
        "active",
    )


@pytest.mark.django_db(transaction=True)
def test_two_approvers_at_once_activate_it_once(manager, manager2, django_capture_on_commit_callbacks):
    from tests.helpers import in_threads

    book()
    draft, simulation = simulated(manager, django_capture_on_commit_callbacks)
    third = make_role_operator("risk_manager", "ray")
    results = in_threads(lambda: activate(manager2, draft, simulation), lambda: activate(third, draft, simulation))
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 1 and "Version 2 has been live" in str(refused[0])
    assert AuditEvent.objects.filter(action="ruleset.activate").count() == 1


# --- Backtesting a draft: day by day over a past window, on the events known on each day.


def noon(day):
    from datetime import datetime, time

    from django.utils import timezone

    return datetime.combine(day, time(12), tzinfo=timezone.get_current_timezone())


def run_backtest(manager, draft: RuleSet, django_capture_on_commit_callbacks, **kw):
    from riskops.tuning.services import backtest_request

    with django_capture_on_commit_callbacks(execute=True):
        return backtest_request(version=draft.version, actor=op(manager), **kw)


def day_counts(backtest) -> dict[tuple[str, str], dict[object, int]]:
    """(side, code) -> {day: n}, the days with n > 0."""
    out: dict[tuple[str, str], dict[object, int]] = {}
    for day, code, side, n in backtest.days.values_list("day", "code", "side", "n"):
        if n:
            out.setdefault((side, code), {})[day] = n
    return out


def history():
    """A hand-built history over the 10 days ending 3 days ago: A has 5 inquiries from 4 institutions on day[5] and
    a sixth on day[2]; B an installment 30 days past due on day[5], paid on day[4]; C one inquiry."""
    from datetime import timedelta

    from django.utils import timezone

    from tests.factories import inquiry, installment

    last = timezone.localdate() - timedelta(days=3)
    day = {k: last - timedelta(days=k) for k in range(41)}  # day[k] = k days before the window's last day
    a, b, c = make_line(), make_line(), make_line()
    for i, who in enumerate(["bank-1", "bank-2", "bank-3", "bank-4", "bank-1"]):
        inquiry(a, noon(day[5]) + timedelta(minutes=i), who)
    inquiry(a, noon(day[2]), "bank-2")
    installment(b, day[35], paid_at=noon(day[4]))
    inquiry(c, noon(day[1]), "bank-1")
    return last, day, a, b, c


def test_the_backtest_report_labels_the_accounts_that_flip_by_how_they_ended(
    manager, analyst, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import Backtest, LineChange
    from riskops.models import Job

    last, day, a, b, _c = history()
    LineChange.objects.create(  # a reviewer unfroze A: the live version's freeze of A was wrong
        line=a,
        at=timezone.now(),
        actor_kind="operator",
        actor_user=analyst,
        kind="unfreeze",
        status_before="frozen",
        status_after="active",
        limit_before=a.limit,
        limit_after=a.limit,
        available_before=0,
        available_after=a.available,
        reason="closed elsewhere",
    )
    draft = draft_fewer_multi_head_more_overdue(manager)
    client = logged_in(manager)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/rules/v{draft.version}/backtest/", {"days": "10"})
    assert response.status_code == 302
    backtest_id = response["Location"].rstrip("/").split("/")[-1]
    backtest = Backtest.objects.get(pk=backtest_id)
    assert (backtest.first_day, backtest.last_day) == (day[7], last + timedelta(days=2))  # 10 days to yesterday
    assert Job.objects.get(pk=backtest.job_id).status == "succeeded"
    body = page(client.get(response["Location"]))
    assert "hx-trigger" not in body
    assert '<div class="tile" data-figure="spared"><span class="n">1</span>' in body  # A, overturned by a person
    assert '<div class="tile" data-figure="let-through"><span class="n">0</span>' in body
    assert '<div class="tile" data-figure="caught"><span class="n">1</span>' in body  # B
    assert (
        '<tr data-ending="reviewer_unfroze"><td>Unfrozen by a reviewer</td><td class="n">1</td><td class="n">0</td>'
        in body
    )
    assert '<tr data-ending="repaid"><td>Repaid since</td><td class="n">0</td><td class="n">0</td>' in body
    spared = body[body.index('id="sample-spared"') :]
    assert spared.index(a.account_no) < spared.index("unfrozen by a reviewer") < spared.index('id="sample-caught"')
    csv = client.get(f"/rules/backtests/{backtest_id}/accounts.csv").content.decode("utf-8-sig").splitlines()
    assert csv[0] == "account_no,days_spared,days_caught,first_day,rule_families,ending"
    assert sorted(csv[1:]) == sorted(
        [
            f"{a.account_no},3,0,{day[5].isoformat()},MULTI_HEAD,reviewer_unfroze",
            f"{b.account_no},0,2,{day[7].isoformat()},OVERDUE,none",  # the window starts later
        ]
    )
    assert client.post(f"/rules/v{draft.version}/backtest/", {"days": "401"}, follow=True).status_code == 200
    assert Backtest.objects.count() == 1
    assert logged_in(analyst).post(f"/rules/v{draft.version}/backtest/", {"days": "10"}).status_code == 403


def test_the_labels_of_the_tuning_pages_follow_each_request_language_whatever_was_active_at_import():
    """Choices are translated when shown, not when their module is first imported (in whatever language a request
    had then)."""
    import importlib

    from django.utils import translation

    import riskops.tuning.selectors as tuning

    with translation.override("zh-hans"):
        reloaded = importlib.reload(tuning)
    with translation.override("en"):
        assert [str(label) for _v, label in reloaded.Ending.choices][:2] == [
            "appeal approved",
            "unfrozen by a reviewer",
        ]
        assert [str(label) for _v, label in reloaded.SIDES] == [
            "only the live version freezes",
            "only the draft freezes",
        ]
    importlib.reload(tuning)


def test_a_backtest_on_a_hand_built_history_gives_the_known_day_by_day_answer(
    manager, django_capture_on_commit_callbacks
):

    from accounts.models import BacktestLine

    last, day, a, b, _c = history()
    draft = draft_fewer_multi_head_more_overdue(manager)  # MULTI_HEAD at 6 inquiries, OVERDUE freezing at 20 days
    before = state()

    backtest = run_backtest(manager, draft, django_capture_on_commit_callbacks, days=10, last_day=last)

    assert state() == before
    assert (backtest.first_day, backtest.last_day) == (day[9], last)
    days = day_counts(backtest)
    # The live version: A from the day of its 5 inquiries on; B on the one day it was 30 days past due and unpaid.
    assert days[("live", "")] == {day[5]: 2, **{day[k]: 1 for k in range(5)}}
    assert days[("live", "MULTI_HEAD")] == {day[k]: 1 for k in range(6)}
    assert days[("live", "OVERDUE")] == {day[5]: 1}
    # The draft: A once its sixth inquiry came; B from the window's first day (20 days past due) until paid.
    assert days[("draft", "MULTI_HEAD")] == {day[k]: 1 for k in range(3)}
    assert days[("draft", "OVERDUE")] == {day[k]: 1 for k in range(5, 10)}
    assert days[("spared", "")] == days[("spared", "MULTI_HEAD")] == {day[k]: 1 for k in (3, 4, 5)}
    assert days[("caught", "")] == days[("caught", "OVERDUE")] == {day[k]: 1 for k in range(6, 10)}
    assert set(BacktestLine.objects.values_list("line_id", "spared_days", "caught_days", "first_day", "codes")) == {
        (a.pk, 3, 0, day[5], "MULTI_HEAD"),
        (b.pk, 0, 4, day[9], "OVERDUE"),
    }


def random_history(last) -> list:
    """40 accounts with random inquiries, installments (paid or not), drawdowns with risky transfers, income records
    with or without a profile update after them."""
    import random
    from datetime import timedelta

    from tests.factories import drawdown, income_record, inquiry, installment, profile_update, transfer

    rng = random.Random(7)
    lines = [make_line() for _ in range(40)]
    for line in lines:
        for _ in range(rng.randrange(0, 9)):
            at = noon(last - timedelta(days=rng.randrange(0, 60))) + timedelta(minutes=rng.randrange(-600, 600))
            inquiry(line, at, f"bank-{rng.randrange(5)}")
        for _ in range(rng.randrange(0, 3)):
            due = last - timedelta(days=rng.randrange(0, 70))
            paid = noon(due + timedelta(days=rng.randrange(0, 60))) if rng.random() < 0.6 else None
            installment(line, due, paid_at=paid)
        if rng.random() < 0.4:
            d = drawdown(line, noon(last - timedelta(days=rng.randrange(0, 40))), "10000.00")
            for _ in range(rng.randrange(1, 4)):
                transfer(line, d.occurred_at + timedelta(hours=rng.randrange(1, 200)), "2500.00", "securities")
        if rng.random() < 0.3:
            record = income_record(line, noon(last - timedelta(days=rng.randrange(0, 120))), "3000.00")
            if rng.random() < 0.5:
                profile_update(line, record.occurred_at + timedelta(days=rng.randrange(1, 40)))
    return lines


def naive_counts(versions: dict[str, dict], lines: list, days: list) -> dict[tuple[str, str], dict[object, int]]:
    """The backtest's figures the naive way: each version's freezing rules evaluated per account per day."""
    from accounts.backtest import freezing_on

    expected: dict[tuple[str, str], dict[object, int]] = {}

    def add(side: str, codes: set[str], d: object) -> None:
        for code in ["", *codes]:
            expected.setdefault((side, code), {}).setdefault(d, 0)
            expected[(side, code)][d] += 1

    for d in days:
        fired = {side: {ln.pk: freezing_on(rules, ln.pk, d) for ln in lines} for side, rules in versions.items()}
        for ln in lines:
            live_codes, draft_codes = fired["live"][ln.pk], fired["draft"][ln.pk]
            for side, codes in (("live", live_codes), ("draft", draft_codes)):
                if codes:
                    add(side, codes, d)
            if bool(live_codes) != bool(draft_codes):
                add(*(("spared", live_codes) if live_codes else ("caught", draft_codes)), d)
    return expected


def test_the_set_based_backtest_equals_one_evaluation_per_account_per_day(manager, django_capture_on_commit_callbacks):
    """A random history of every family; the backtest's figures equal the naive replay's, day by day."""
    from datetime import timedelta

    from django.utils import timezone

    last = timezone.localdate() - timedelta(days=1)
    days = [last - timedelta(days=k) for k in range(20)]
    lines = random_history(last)
    draft = ruleset_draft(source=live(), actor=op(manager))
    change(draft, manager, min_inquiries=6, min_institutions=4)
    change(draft, manager, code="OVERDUE", min_days_past_due=15)
    profile = draft.rules.get(code="PROFILE_STALE")
    rule_change(
        rule_id=profile.pk,
        actor=op(manager),
        params={**profile.params, "grace_days": 7},
        severity=profile.severity,
        action="freeze",  # so that the fourth family is backtested too
        enabled=True,
        restore_on_clear=None,
    )

    backtest = run_backtest(manager, draft, django_capture_on_commit_callbacks, days=20, last_day=last)

    versions = {
        "live": {r.code: r for r in live().rules.all()},
        "draft": {r.code: r for r in draft.rules.all()},
    }
    expected = naive_counts(versions, lines, days)
    got = day_counts(backtest)
    assert got == expected
    assert {side for side, _code in got} == {"live", "draft", "spared", "caught"}  # the history moves every side
    assert {code for _side, code in got} >= {"MULTI_HEAD", "OVERDUE", "ABNORMAL_USE", "PROFILE_STALE"}


# --- A draft in shadow: evaluated beside the live version, recorded, with no effect.


def with_events(kind: str, inquiries: int = 5):
    """A line with the events of one family, not evaluated yet."""
    from datetime import timedelta

    from django.utils import timezone

    from tests.factories import INSTITUTIONS, inquiry, installment

    line = make_line()
    now = timezone.now()
    if kind == "MULTI_HEAD":
        for i in range(inquiries):
            inquiry(line, now - timedelta(days=1, hours=i), INSTITUTIONS[i % 4])
    else:
        installment(line, timezone.localdate() - timedelta(days=31))
    return line


def effects(line) -> tuple[object, ...]:
    """What an evaluation did to one account: its state, signals, cases and messages."""
    from accounts.models import Case, CreditLine, Notification

    return (
        CreditLine.objects.get(pk=line.pk).status,
        sorted(Signal.objects.filter(line=line).values_list("code", "severity", "action", "status")),
        Case.objects.filter(line=line).count(),
        sorted(Notification.objects.filter(line=line).values_list("kind", flat=True)),
    )


def test_a_draft_in_shadow_records_what_it_would_do_and_changes_nothing_else(manager):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import ShadowRecord
    from accounts.services.rulesets import ruleset_shadow, ruleset_shadow_stop

    specs = [("MULTI_HEAD", 5), ("MULTI_HEAD", 7), ("OVERDUE", 0)]
    control = [with_events(kind, n) for kind, n in specs]
    evaluate_lines([line.pk for line in control])  # no shadow: what the live version does to these accounts
    draft = ruleset_draft(source=live(), actor=op(manager))
    change(draft, manager, min_inquiries=6)
    change(draft, manager, code="OVERDUE", min_days_past_due=40)
    ruleset_shadow(ruleset_id=draft.pk, until=timezone.now() + timedelta(days=7), actor=op(manager))

    a, b, c = (with_events(kind, n) for kind, n in specs)
    evaluate_lines([a.pk, b.pk, c.pk])

    assert [effects(line) for line in (a, b, c)] == [effects(line) for line in control]  # no effect at all
    assert effects(a)[0] == "frozen"
    assert set(ShadowRecord.objects.values_list("line_id", "kind", "codes")) == {
        (a.pk, "live_only", "MULTI_HEAD"),
        (b.pk, "both", "MULTI_HEAD"),
        (c.pk, "live_only", "OVERDUE"),
    }
    evaluate_lines([a.pk, b.pk, c.pk])  # nothing new fires: nothing new recorded
    assert ShadowRecord.objects.count() == 3

    shown = page(logged_in(manager).get("/rules/"))
    table = shown[shown.index('id="table-shadow"') :]
    for kind, n in (("live", 3), ("shadow", 1), ("live_only", 2), ("shadow_only", 0)):
        assert f'<tr data-kind="{kind}">' in table
        assert table.split(f'<tr data-kind="{kind}">')[1].split("</tr>")[0].endswith(f'<td class="n">{n}</td>')

    ruleset_shadow_stop(ruleset_id=draft.pk, actor=op(manager))
    d = with_events("MULTI_HEAD")
    evaluate_lines([d.pk])
    assert not ShadowRecord.objects.filter(line=d).exists()
    assert list(AuditEvent.objects.filter(action__startswith="ruleset.shadow").values_list("action", flat=True)) == [
        "ruleset.shadow",
        "ruleset.shadow_stop",
    ]
    assert 'id="table-shadow"' not in page(logged_in(manager).get("/rules/"))  # none runs now
    assert "Ran in shadow from" in page(logged_in(manager).get(f"/rules/v{draft.version}/"))


def test_a_shadow_is_refused_in_the_past_for_a_live_version_and_beside_another(manager):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.services.rulesets import ruleset_shadow

    first = ruleset_draft(source=live(), actor=op(manager))
    second = ruleset_draft(source=live(), actor=op(manager))
    client = logged_in(manager)
    yesterday = (timezone.localdate() - timedelta(days=1)).isoformat()
    response = client.post(f"/rules/v{first.version}/shadow/", {"until": yesterday}, follow=True)
    assert messages_of(response)[0].startswith("A shadow runs until a time in the next 90 days, not ")
    with pytest.raises(DomainError, match="Version 1 has been live: only a draft runs in shadow"):
        ruleset_shadow(ruleset_id=live().pk, until=timezone.now() + timedelta(days=1), actor=op(manager))
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    response = client.post(f"/rules/v{first.version}/shadow/", {"until": tomorrow}, follow=True)
    assert messages_of(response) == [
        f"Version {first.version} runs in shadow until the end of {tomorrow}: every live evaluation also evaluates it."
    ]
    response = client.post(f"/rules/v{second.version}/shadow/", {"until": tomorrow}, follow=True)
    assert messages_of(response)[0].startswith(f"Version {first.version} runs in shadow until ")
    assert RuleSet.objects.filter(shadow_until__isnull=False).count() == 1


def test_activating_a_draft_in_shadow_ends_its_shadow(manager, manager2, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.services.rulesets import ruleset_shadow

    book()
    draft, simulation = simulated(manager, django_capture_on_commit_callbacks)
    ruleset_shadow(ruleset_id=draft.pk, until=timezone.now() + timedelta(days=3), actor=op(manager))
    activate(manager2, draft, simulation)
    draft.refresh_from_db()
    assert draft.is_active and draft.shadow_until is not None and draft.shadow_until <= timezone.now()


# --- Exempting one account from one rule until a date.


def test_an_exemption_keeps_one_rule_quiet_for_one_account_until_it_expires(manager):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import Exemption
    from tests.factories import INSTITUTIONS, inquiry

    case = flag(make_line(), "OVERDUE")  # the account has a case: its page is where the exemption is made
    line, other = case.line, make_line()
    client = logged_in(manager)
    until = timezone.localdate() + timedelta(days=30)
    form = {"code": "MULTI_HEAD", "until": until.isoformat(), "reason": "known: refinancing through five banks"}
    response = client.post(f"/cases/{case.pk}/exempt/", form, follow=True)
    assert messages_of(response) == [f"The account is exempt from MULTI_HEAD until the end of {until.isoformat()}."]
    exemption = Exemption.objects.get()
    assert (exemption.line_id, exemption.code, exemption.created_by) == (line.pk, "MULTI_HEAD", manager)
    event = AuditEvent.objects.get(action="exemption.grant")
    assert (event.account_id, event.reason, (event.after or {})["code"]) == (line.pk, form["reason"], "MULTI_HEAD")
    shown = page(client.get(f"/cases/{case.pk}/"))
    assert '<li data-code="MULTI_HEAD"><code>MULTI_HEAD</code> · exempt until' in shown

    now = timezone.now()
    for target in (line, other):
        for i in range(5):
            inquiry(target, now - timedelta(days=1, hours=i), INSTITUTIONS[i % 4])
    result = evaluate_lines([line.pk, other.pk])
    assert result.suppressed == 1
    assert not Signal.objects.filter(line=line, code="MULTI_HEAD").exists()  # exempt
    assert Signal.objects.filter(line=other, code="MULTI_HEAD", status="active").exists()  # not exempt

    Exemption.objects.filter(pk=exemption.pk).update(until=timezone.now() - timedelta(seconds=1))  # it expires
    evaluate_lines([line.pk])
    assert Signal.objects.filter(line=line, code="MULTI_HEAD", status="active").exists()
    assert "expired" in page(client.get(f"/cases/{case.pk}/")).split('id="exemptions"')[1].split("</section>")[0]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"reason": "too short"}, "Say why, in at least 10 characters"),
        ({"code": "NOPE"}, "Rule: Select a valid choice. NOPE is not one of the available choices."),
        ({"until": "2020-01-01"}, "An exemption lasts until a time in the next 180 days, not 2020-01-02 00:00"),
    ],
)
def test_a_bad_exemption_is_refused_with_its_reason(manager, analyst, form, message):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import Exemption

    case = flag(make_line(), "OVERDUE")
    good = {"code": "MULTI_HEAD", "until": (timezone.localdate() + timedelta(days=3)).isoformat(), "reason": "x" * 12}
    response = logged_in(manager).post(f"/cases/{case.pk}/exempt/", {**good, **form}, follow=True)
    assert messages_of(response) == [message]
    assert logged_in(analyst).post(f"/cases/{case.pk}/exempt/", good).status_code == 403
    assert not Exemption.objects.exists()
