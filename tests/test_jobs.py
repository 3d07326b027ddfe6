"""Jobs over many accounts (riskops.jobs): selection cut into batches, runs and counts, four eyes, re-runs that
change nothing twice, failure isolation, cancellation, dispatch through a broker outage, pinned query counts, the
jobs pages and the API.

Lines are flagged by the real engine at the real clock. A batch runs through `jobs.job_run_batch` (what the Celery
task calls), or through the dispatch after commit with the eager Celery of tests. Where a test needs to see what
reached the broker, Celery is pointed at a real filesystem broker in a temporary directory; a broker outage is a
real unreachable broker.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from typing import TypedDict

import pytest
from celery.exceptions import Retry
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services
from accounts.engine import evaluate_lines
from accounts.models import (
    Case,
    CaseStatus,
    CreditLine,
    Installment,
    LineChange,
    LineStatus,
    Notification,
    NotificationKind,
    Signal,
    SignalStatus,
    Suppression,
)
from accounts.notifications import TEMPLATES
from appeals import services as appeal_services
from appeals.models import Appeal
from riskops import jobs
from riskops import tasks as job_tasks
from riskops.celery import app as celery_app
from riskops.core.audit import Actor
from riskops.core.errors import ConflictError, DomainError, NotAllowed
from riskops.jobs.selectors import job_outcomes
from riskops.models import ActorKind, AuditEvent, Job, JobBatch, JobItem
from tests.factories import default_ruleset, flag, installment, make_line, make_role_operator
from tests.helpers import EN, fresh, in_threads, linked, logged_in, op, page, token_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ruleset")]

OWN_JOB = "You cannot approve your own job; another senior reviewer must"
NOT_SENIOR = "Only a senior reviewer can approve a job"
NOT_CANCELLER = "Only who asked for the job or a senior reviewer can cancel it"
CANNOT_START = "Your role cannot start jobs"
HIGH_LIMIT = "restoring a limit of ¥50,000.00 needs a second reviewer; decide it on the case page"
BAD_TIER = "The queue filter is not valid: tier: Select a valid choice. 9 is not one of the available choices."


# --- helpers


def overdue_line(**line_kwargs) -> CreditLine:
    """An installment 31 days past due that the engine has not seen yet: OVERDUE fires on the next evaluation."""
    line = make_line(**line_kwargs)
    installment(line, timezone.localdate() - timedelta(days=31))
    return line


def frozen(code: str = "MULTI_HEAD", **line_kwargs) -> CreditLine:
    """A line the engine froze on `code`, with its open case."""
    case = flag(make_line(**line_kwargs), code)
    assert case is not None and fresh(case.line).status == LineStatus.FROZEN
    return case.line


def pay(line: CreditLine) -> None:
    """The borrower repays: the OVERDUE evidence goes away."""
    Installment.objects.filter(line=line).update(paid_at=timezone.now(), paid_amount=F("amount"))


def request(kind: str, lines, user, **kwargs) -> Job:
    return jobs.job_request(
        kind=kind, selection_kind="ids", selection={"line_ids": [line.pk for line in lines]}, actor=op(user), **kwargs
    )


def batches(job: Job) -> list[JobBatch]:
    return list(JobBatch.objects.filter(job=job).order_by("seq"))


def run_batches(job: Job) -> list[str]:
    return [jobs.job_run_batch(b.pk) for b in batches(job)]


def counts(job: Job) -> tuple:
    job = fresh(job)
    return (job.status, job.selected, job.done, job.changed, job.unchanged, job.failed)


def outcomes(job: Job) -> dict[int, tuple[str, str]]:
    return job_outcomes(job.pk)


class Effects(TypedDict):
    audit: int
    notifications: int
    line_changes: int
    suppressions: int
    signals: list[tuple[int, str]]
    items: int
    changed_ids: list[int]
    job: tuple[int, int, int, int, int, str]


def effects(job: Job) -> Effects:
    """Everything a batch may write, counted."""
    job = fresh(job)
    return {
        "audit": AuditEvent.objects.count(),
        "notifications": Notification.objects.count(),
        "line_changes": LineChange.objects.count(),
        "suppressions": Suppression.objects.count(),
        "signals": list(Signal.objects.order_by("pk").values_list("pk", "status")),
        "items": JobItem.objects.filter(job=job).count(),
        "changed_ids": [i for b in job.batches.order_by("seq") for i in b.changed_ids],
        "job": (job.done, job.changed, job.unchanged, job.failed, job.batches_done, job.status),
    }


def refuse_updates_of(line: CreditLine, message: str, errcode: str = "P0001") -> None:
    """The database itself refuses any UPDATE of this line (a trigger, created in the test's transaction)."""
    with connection.cursor() as cur:
        cur.execute(
            f"""
            CREATE FUNCTION test_jobs_refuse_line() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.id = {int(line.pk)} THEN
                    RAISE EXCEPTION USING ERRCODE = '{errcode}', MESSAGE = '{message}';
                END IF;
                RETURN NEW;
            END $$
            """
        )
        cur.execute(
            "CREATE TRIGGER test_jobs_refuse_line BEFORE UPDATE ON accounts_creditline "
            "FOR EACH ROW EXECUTE FUNCTION test_jobs_refuse_line()"
        )


@contextmanager
def celery_sending_to(monkeypatch, url: str, **transport_options):
    """Celery sends to a real broker at `url` (eager off) for the duration; the app's connection pools are fresh."""
    conf = celery_app.conf
    saved = {k: conf[k] for k in ("task_always_eager", "broker_url", "broker_transport_options")}
    conf.update(task_always_eager=False, broker_url=url, broker_transport_options=transport_options)
    with monkeypatch.context() as mp:
        # Celery reads CELERY_BROKER_URL from the environment before its configuration (CI sets it).
        mp.setenv("CELERY_BROKER_URL", url)
        mp.setattr(celery_app, "_pool", None)
        mp.setattr(celery_app.amqp, "_producer_pool", None)
        try:
            yield
        finally:
            conf.update(saved)


@pytest.fixture
def filesystem_broker(monkeypatch, tmp_path):
    """Kombu's filesystem broker in a temporary directory: (a context that sends to it, the batch ids sent so far)."""
    folder = tmp_path / "broker"
    folder.mkdir()

    def sent() -> list[int]:
        ids = []
        for message in sorted(folder.glob("*.msg")):
            data = json.loads(message.read_text())
            assert data["headers"]["task"] == "riskops.tasks.job_run_batch"
            args, _kwargs, _embed = json.loads(base64.b64decode(data["body"]))
            ids.extend(args)
        return sorted(ids)

    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(tmp_path / "control"),
    }
    return lambda: celery_sending_to(monkeypatch, "filesystem://", **options), sent


@pytest.fixture
def broker_down(monkeypatch):
    """Nothing listens on port 9: every send fails with a connection refused, as in a broker outage."""
    return lambda: celery_sending_to(monkeypatch, "amqp://guest:guest@127.0.0.1:9//")


# --- 1. selection, batches, counts


def test_a_reevaluate_job_over_chosen_accounts_runs_in_ordered_batches_and_counts_what_changed(analyst, settings):
    settings.JOB_BATCH_SIZE = 3
    fires = overdue_line()
    clears = frozen("OVERDUE")
    pay(clears)
    holds = frozen("MULTI_HEAD")
    quiet = [make_line() for _ in range(4)]
    ids = sorted(line.pk for line in [fires, clears, holds, *quiet])

    job = jobs.job_request(
        kind="reevaluate", selection_kind="ids", selection={"line_ids": [*reversed(ids), ids[0]]}, actor=op(analyst)
    )

    assert (job.status, job.selected, job.batches_total) == ("queued", 7, 3)
    assert (job.started_at, job.finished_at) == (None, None)
    assert fresh(job).selection == {"line_ids": ids}
    assert [(b.seq, b.line_ids, b.first_id, b.last_id, b.status) for b in batches(job)] == [
        (0, ids[0:3], ids[0], ids[2], "pending"),
        (1, ids[3:6], ids[3], ids[5], "pending"),
        (2, ids[6:7], ids[6], ids[6], "pending"),
    ]
    first, *rest = batches(job)

    assert jobs.job_run_batch(first.pk) == "done"
    job = fresh(job)
    assert (job.status, job.done, job.batches_done, job.finished_at) == ("running", 3, 1, None)
    assert job.started_at is not None
    assert [jobs.job_run_batch(b.pk) for b in rest] == ["done", "done"]

    assert counts(job) == ("succeeded", 7, 7, 2, 5, 0)
    job = fresh(job)
    assert job.started_at is not None
    assert job.batches_done == 3 and job.finished_at is not None and job.finished_at >= job.started_at
    assert {b.status for b in batches(job)} == {"done"}
    assert outcomes(job) == {
        fires.pk: ("changed", ""),
        clears.pk: ("changed", ""),
        **{line.pk: ("unchanged", "") for line in [holds, *quiet]},
    }
    assert list(Signal.objects.filter(line=fires).values_list("code", "status")) == [("OVERDUE", "active")]
    assert list(Signal.objects.filter(line=clears).values_list("status", flat=True)) == ["cleared"]
    assert (fresh(fires).status, fresh(clears).status) == ("frozen", "frozen")  # the engine never unfreezes
    assert AuditEvent.objects.filter(action="line.freeze", account_id=fires.pk, actor_label=f"job #{job.pk}").exists()


def test_a_job_over_a_queue_filter_takes_the_lines_of_the_matching_cases(
    analyst, settings, django_capture_on_commit_callbacks
):
    settings.JOB_BATCH_SIZE = 3
    overdue = [frozen("OVERDUE") for _ in range(4)]
    pay(overdue[0])
    pay(overdue[3])
    frozen("MULTI_HEAD")
    make_line()

    with django_capture_on_commit_callbacks(execute=True):
        job = jobs.job_request(
            kind="reevaluate", selection_kind="filter", selection={"family": "OVERDUE", "tier": ""}, actor=op(analyst)
        )

    assert fresh(job).selection == {"family": "OVERDUE", "_user_id": analyst.pk}
    assert [b.line_ids for b in batches(job)] == [[line.pk for line in overdue[:3]], [overdue[3].pk]]
    assert counts(job) == ("succeeded", 4, 4, 2, 2, 0)
    assert sorted(outcomes(job)) == [line.pk for line in overdue]


def test_the_nightly_reevaluation_is_a_job_over_all_active_and_frozen_lines_asked_by_the_schedule(
    settings, django_capture_on_commit_callbacks
):
    settings.JOB_BATCH_SIZE = 3
    lines = [make_line(), make_line(), frozen("MULTI_HEAD"), frozen("OVERDUE"), overdue_line()]
    closed = make_line(status="closed")
    installment(closed, timezone.localdate() - timedelta(days=40))

    with django_capture_on_commit_callbacks(execute=True):
        job = Job.objects.get(pk=job_tasks.job_reevaluate_all.delay().get())

    asked = (job.kind, job.selection_kind, job.requested_by_id, job.requested_label, job.reason)
    assert asked == ("reevaluate", "all", None, "schedule", "nightly re-evaluation")
    assert [b.line_ids for b in batches(job)] == [[line.pk for line in lines[:3]], [line.pk for line in lines[3:]]]
    assert counts(job) == ("succeeded", 5, 5, 1, 4, 0)
    assert sorted(outcomes(job)) == [line.pk for line in lines]
    assert not Signal.objects.filter(line=closed).exists()
    assert AuditEvent.objects.filter(action="job.request", object_id=job.pk, actor_kind="system").count() == 1


def test_a_selection_with_no_line_is_refused_and_queues_nothing(analyst):
    with pytest.raises(DomainError, match="The selection holds no account; nothing to do"):
        jobs.job_request(kind="reevaluate", selection_kind="filter", selection={"family": "OVERDUE"}, actor=op(analyst))
    with pytest.raises(DomainError, match="The selection holds no account; nothing to do"):
        jobs.job_request(kind="reevaluate", selection_kind="ids", selection={"line_ids": [10**12]}, actor=op(analyst))

    assert not Job.objects.exists()


# --- 2. a batch that runs twice changes nothing twice


@pytest.mark.parametrize("kind", ["reevaluate", "reevaluate_unfreeze", "bulk_unfreeze", "bulk_remind"])
def test_running_a_finished_batch_again_or_receiving_it_twice_changes_nothing(
    kind, analyst, senior, settings, django_capture_on_commit_callbacks
):
    settings.JOB_BATCH_SIZE = 2
    repaid = frozen("OVERDUE")
    pay(repaid)
    lines = [overdue_line(), repaid, frozen("MULTI_HEAD"), frozen("OVERDUE"), make_line()]
    with django_capture_on_commit_callbacks(execute=True):
        job = request(kind, lines, analyst)
        if job.status == "awaiting_approval":
            jobs.job_approve(job_id=job.pk, actor=op(senior))
    assert fresh(job).status == "succeeded" and fresh(job).changed > 0
    before = effects(job)

    again = run_batches(job)
    delivered_twice = [job_tasks.job_run_batch.delay(b.pk).get() for b in batches(job)]

    assert again == delivered_twice == ["finished"] * 3
    assert effects(job) == before


@pytest.mark.django_db(transaction=True)
def test_two_workers_receiving_the_same_batch_at_once_run_it_once(filesystem_broker):
    default_ruleset()
    senior, senior2 = make_role_operator("senior_reviewer", "sen"), make_role_operator("senior_reviewer", "sue")
    lines = [frozen("MULTI_HEAD") for _ in range(3)]
    use_broker, sent = filesystem_broker
    with use_broker():
        job = request("bulk_unfreeze", lines, senior)
        jobs.job_approve(job_id=job.pk, actor=op(senior2))
    (batch,) = batches(job)
    assert sent() == [batch.pk] and batch.status == "pending"
    before = effects(job)

    results = in_threads(lambda: jobs.job_run_batch(batch.pk), lambda: jobs.job_run_batch(batch.pk))

    assert sorted(results) in (["busy", "done"], ["done", "finished"])
    after = effects(job)
    assert after["job"] == (3, 3, 0, 0, 1, "succeeded")
    assert (after["items"], after["changed_ids"]) == (0, sorted(line.pk for line in lines))
    assert after["line_changes"] == before["line_changes"] + 3
    assert after["notifications"] == before["notifications"] + 3
    assert AuditEvent.objects.filter(action="line.unfreeze").count() == 3


@pytest.mark.django_db(transaction=True)
def test_batches_run_at_once_by_several_workers_give_the_same_result_as_one(settings, filesystem_broker):
    default_ruleset()
    analyst = make_role_operator("analyst", "ana")
    settings.JOB_BATCH_SIZE = 3
    lines = [overdue_line() for _ in range(6)] + [make_line() for _ in range(3)]
    use_broker, sent = filesystem_broker
    with use_broker():
        job = request("reevaluate", lines, analyst)
    assert sent() == [b.pk for b in batches(job)]

    results = in_threads(*(lambda b=b: jobs.job_run_batch(b.pk) for b in batches(job)))

    assert results == ["done", "done", "done"]
    assert counts(job) == ("succeeded", 9, 9, 6, 3, 0)
    assert fresh(job).batches_done == 3
    assert [fresh(line).status for line in lines] == ["frozen"] * 6 + ["active"] * 3
    assert AuditEvent.objects.filter(action="line.freeze").count() == 6
    assert Notification.objects.filter(kind=NotificationKind.FREEZE).count() == 6


# --- 3. bulk unfreeze: four eyes, effects per line, appeals, suppression


def test_a_bulk_unfreeze_waits_for_a_different_senior_reviewer(
    analyst, senior, senior2, django_capture_on_commit_callbacks
):
    lines = [frozen("MULTI_HEAD"), frozen("OVERDUE")]

    job = request("bulk_unfreeze", lines, senior, reason=" repayment wave ")

    assert (job.status, job.may_unfreeze, job.reason) == ("awaiting_approval", 2, "repayment wave")
    assert (job.batches_total, batches(job)) == (0, [])
    for user, message in [(senior, OWN_JOB), (analyst, NOT_SENIOR)]:
        with pytest.raises(NotAllowed) as refused:
            jobs.job_approve(job_id=job.pk, actor=op(user))
        assert str(refused.value) == message
    assert (fresh(job).status, fresh(job).approved_by_id) == ("awaiting_approval", None)
    assert {fresh(line).status for line in lines} == {"frozen"}

    with django_capture_on_commit_callbacks(execute=True):
        jobs.job_approve(job_id=job.pk, actor=op(senior2))

    job = fresh(job)
    assert (job.approved_by_id, job.status) == (senior2.pk, "succeeded")
    assert {fresh(line).status for line in lines} == {"active"}
    assert list(AuditEvent.objects.filter(object_type="job", object_id=job.pk).values_list("action", "actor_user")) == [
        ("job.request", senior.pk),
        ("job.approve", senior2.pk),
    ]
    with pytest.raises(ConflictError) as conflict:
        jobs.job_approve(job_id=job.pk, actor=op(senior2))
    assert str(conflict.value) == "This job is succeeded; nothing to approve"


def test_the_database_refuses_a_job_approved_by_its_requester_even_by_a_direct_update(senior):
    job = request("bulk_unfreeze", [frozen()], senior)

    with pytest.raises(IntegrityError, match="job_approver_is_not_requester"), transaction.atomic():
        Job.objects.filter(pk=job.pk).update(approved_by=senior)

    assert fresh(job).approved_by_id is None


def test_an_approved_bulk_unfreeze_lifts_each_freeze_like_a_reviewer_and_leaves_an_open_appeal_alone(
    senior, senior2, django_capture_on_commit_callbacks
):
    unfreeze = [frozen("MULTI_HEAD"), frozen("OVERDUE")]
    appealed = frozen("MULTI_HEAD")
    appeal = appeal_services.appeal_submit(
        line_id=appealed.pk,
        reason="loans_closed",
        statement="我已还清其他机构的借款。",
        files=[],
        channel="link",
        actor=Actor(ActorKind.BORROWER, None, "borrower"),
    ).appeal
    appeal_status = appeal.status
    not_frozen = make_line()
    lines = [*unfreeze, appealed, not_frozen]
    freezing = {line.pk: list(Signal.objects.filter(line=line, status="active", action="freeze")) for line in lines}
    assert [len(freezing[line.pk]) for line in lines] == [1, 1, 1, 0]

    with django_capture_on_commit_callbacks(execute=True):
        job = request("bulk_unfreeze", lines, senior)
        jobs.job_approve(job_id=job.pk, actor=op(senior2))

    assert len(batches(job)) == 1
    assert counts(job) == ("succeeded", 4, 4, 2, 1, 1)
    assert outcomes(job) == {
        unfreeze[0].pk: ("changed", ""),
        unfreeze[1].pk: ("changed", ""),
        appealed.pk: ("failed", f"the borrower's appeal #{appeal.pk} is open; decide it from the appeal page"),
        not_frozen.pk: ("unchanged", ""),
    }
    for line in unfreeze:
        line = fresh(line)
        assert (line.status, line.frozen_since) == ("active", None)
        (signal,) = freezing[line.pk]
        assert fresh(signal).status == SignalStatus.OVERTURNED
        assert Suppression.objects.filter(signal=signal, line=line).count() == 1
        assert list(Case.objects.filter(line=line).values_list("status", "outcome")) == [("resolved", "unfrozen")]
        assert Notification.objects.filter(line=line, kind=NotificationKind.UNFREEZE).count() == 1
        unfreezes = AuditEvent.objects.filter(account_id=line.pk, action="line.unfreeze")
        assert list(unfreezes.values_list("actor_kind", "actor_label")) == [("job", f"job #{job.pk}")]
        assert LineChange.objects.filter(line=line, kind="unfreeze").count() == 1
    assert fresh(appealed).status == "frozen"
    assert fresh(freezing[appealed.pk][0]).status == "active"
    assert Case.objects.get(line=appealed).status != CaseStatus.RESOLVED
    assert Appeal.objects.get(pk=appeal.pk).status == appeal_status
    assert not AuditEvent.objects.filter(account_id__in=[appealed.pk, not_frozen.pk], actor_kind="job").exists()

    result = evaluate_lines([line.pk for line in unfreeze])

    assert {fresh(line).status for line in unfreeze} == {"active"}  # the same evidence is suppressed
    assert (result.suppressed, result.fired, result.frozen) == (2, 0, 0)


def _unfreeze_rows(line: CreditLine) -> dict[str, object]:
    """What an unfreeze wrote for a line, without what differs by who asked and when (actor, reason, ids, times)."""
    change = LineChange.objects.get(line=line, kind="unfreeze")
    signals = {s.pk: s.code for s in Signal.objects.filter(line=line)}
    audit = AuditEvent.objects.filter(account_id=line.pk, action__in=["line.unfreeze", "signal.overturn"])
    return {
        "history": (
            change.status_before,
            change.status_after,
            change.limit_before,
            change.limit_after,
            change.available_before,
            change.available_after,
            change.signal_id,
        ),
        "audit": sorted(
            (e.action, e.object_type, signals[e.object_id] if e.object_type == "signal" else "line", e.before, e.after)
            for e in audit.order_by("pk")
        ),
        "signals": sorted((s.code, s.status, s.cleared_at == change.at) for s in Signal.objects.filter(line=line)),
        "suppressions": sorted(
            (
                sup.code,
                sup.signal.code,
                [k.split(":")[0] for k in sup.event_ids],
                sup.event_ids == services.evidence_event_keys(sup.signal.evidence),
                sup.created_at == change.at,
            )
            for sup in Suppression.objects.filter(line=line).select_related("signal")
        ),
        "messages": [
            (
                n.kind,
                n.channel,
                linked(n.body, line.pk),  # each with its own line's link
                n.dedupe_key == f"unfreeze:{line.pk}:{change.at.isoformat()}",
                n.created_at == change.at,
            )
            for n in Notification.objects.filter(line=line, kind=NotificationKind.UNFREEZE)
        ],
        "case": tuple(Case.objects.filter(line=line).values_list("status", "outcome").get()),
        "line": tuple(
            CreditLine.objects.filter(pk=line.pk).values_list("status", "frozen_since", "limit", "available").get()
        ),
    }


def test_a_bulk_unfreeze_writes_the_same_rows_a_reviewers_unfreeze_would(senior, senior2):
    # Twin accounts. Ten inquiries: the evidence cites ids that sort differently as numbers and as text.
    twins = [
        flag(make_line(limit="123456.70", available="23456.70"), "MULTI_HEAD", "OVERDUE", inquiries=10).line
        for _ in range(2)
    ]
    by_reviewer, by_job = twins
    case = Case.objects.get(line=by_job, status__in=["open", "escalated"])
    signals = list(Signal.objects.filter(line=by_job, status="active", action="freeze").order_by("pk"))
    assert len(signals) == 2

    # A reviewer's unfreeze (four eyes: an analyst's or senior's proposal, a second senior's approval) ...
    reviewer_case = Case.objects.get(line=by_reviewer, status__in=["open", "escalated"])
    proposal = services.case_decide(
        case_id=reviewer_case.pk,
        actor=op(senior),
        kind="unfreeze",
        reason_code="income_verified",
        expected_version=None,
        idempotency_key=uuid.uuid4().hex,
    ).decision
    services.decision_review(decision_id=proposal.pk, actor=op(senior2), approve=True)
    # ... and a bulk unfreeze job, asked for and approved the same way.
    job = request("bulk_unfreeze", [by_job], senior)
    jobs.job_approve(job_id=job.pk, actor=op(senior2))
    assert run_batches(job) == ["done"]

    assert _unfreeze_rows(by_job) == _unfreeze_rows(by_reviewer)

    # What differs is who and why: the job, with its reason, in every row it wrote.
    reason = f"job #{job.pk}: bulk unfreeze"
    change = LineChange.objects.get(line=by_job, kind="unfreeze")
    assert (change.actor_kind, change.actor_user_id, change.reason) == ("job", None, reason)
    events = AuditEvent.objects.filter(account_id=by_job.pk, actor_kind="job").order_by("action", "object_id")
    assert [(e.action, e.object_type, e.object_id, e.before, e.after, e.reason, e.actor_label) for e in events] == [
        ("case.update", "case", case.pk, {"status": case.status}, {"status": "resolved"}, reason, f"job #{job.pk}"),
        (
            "line.unfreeze",
            "credit_line",
            by_job.pk,
            {"status": "frozen", "limit": "123456.70", "available": "23456.70"},
            {"status": "active", "limit": "123456.70", "available": "23456.70"},
            reason,
            f"job #{job.pk}",
        ),
        *(
            (
                "signal.overturn",
                "signal",
                s.pk,
                {"status": "active"},
                {"status": "overturned"},
                reason,
                f"job #{job.pk}",
            )
            for s in signals
        ),
    ]
    for signal in signals:
        suppression = Suppression.objects.get(signal=signal)
        assert (suppression.line_id, suppression.code, suppression.reason, suppression.created_by_id) == (
            by_job.pk,
            signal.code,
            reason,
            None,
        )
        assert suppression.event_ids == services.evidence_event_keys(signal.evidence)
    assert len(Suppression.objects.get(signal=signals[0]).event_ids) >= 1
    (message,) = Notification.objects.filter(line=by_job, kind=NotificationKind.UNFREEZE)
    assert linked(message.body, by_job.pk) == TEMPLATES[NotificationKind.UNFREEZE].format(limit="123,456.70", link="")
    assert message.dedupe_key == f"unfreeze:{by_job.pk}:{change.at.isoformat()}"
    assert (message.channel, message.attempts, message.last_error) == ("sms", 0, "")
    case_after = Case.objects.get(pk=case.pk)
    assert (case_after.status, case_after.outcome, case_after.version) == ("resolved", "unfrozen", case.version + 1)


def test_a_bulk_unfreeze_leaves_a_case_with_a_pending_proposal_to_its_second_reviewer(
    analyst, senior, senior2, django_capture_on_commit_callbacks
):
    case = flag(make_line(), "MULTI_HEAD")
    proposal = services.case_decide(
        case_id=case.pk,
        actor=op(analyst),
        kind="unfreeze",
        reason_code="income_verified",
        new_limit=Decimal("10000.00"),
        expected_version=fresh(case).version,
        idempotency_key=uuid.uuid4().hex,
    ).decision
    assert (proposal.status, fresh(case).status) == ("proposed", "awaiting_approval")
    other = frozen()

    with django_capture_on_commit_callbacks(execute=True):
        job = request("bulk_unfreeze", [case.line, other], senior)
        jobs.job_approve(job_id=job.pk, actor=op(senior2))

    # A reviewer's unfreeze is refused while a proposal waits; so is the job's, for that account only.
    assert outcomes(job)[case.line_id][0] == "failed"
    assert (fresh(case.line).status, fresh(case).status) == ("frozen", "awaiting_approval")
    assert fresh(proposal).status == "proposed"
    assert fresh(other).status == "active"


# --- 4. re-evaluate, then unfreeze where every freezing signal cleared


def test_reevaluate_and_unfreeze_lifts_a_freeze_whose_evidence_went_away_and_keeps_a_risky_one(
    analyst, django_capture_on_commit_callbacks
):
    repaid, risky = frozen("OVERDUE"), frozen("MULTI_HEAD")
    pay(repaid)

    with django_capture_on_commit_callbacks(execute=True):
        job = request("reevaluate_unfreeze", [repaid, risky], analyst)

    assert (fresh(job).may_unfreeze, fresh(job).approved_by_id) == (2, None)
    assert counts(job) == ("succeeded", 2, 2, 1, 1, 0)
    assert (fresh(repaid).status, fresh(risky).status) == ("active", "frozen")
    assert list(Signal.objects.filter(line=repaid).values_list("status", flat=True)) == ["cleared"]
    assert list(Case.objects.filter(line=repaid).values_list("status", "outcome")) == [("resolved", "unfrozen")]
    assert Notification.objects.filter(line=repaid, kind=NotificationKind.UNFREEZE).count() == 1
    assert Case.objects.get(line=risky).status != CaseStatus.RESOLVED


def test_reevaluate_and_unfreeze_over_more_frozen_lines_than_allowed_waits_for_a_second_senior_reviewer(
    analyst, senior, settings, django_capture_on_commit_callbacks
):
    settings.JOB_FOUR_EYES_ACCOUNTS = 1
    big = frozen("OVERDUE", limit=str(settings.FOUR_EYES_LIMIT), available="0.00")
    small = frozen("OVERDUE")
    pay(big)
    pay(small)

    job = request("reevaluate_unfreeze", [big, small, make_line()], analyst)

    assert (job.status, job.may_unfreeze, batches(job)) == ("awaiting_approval", 2, [])
    with django_capture_on_commit_callbacks(execute=True):
        jobs.job_approve(job_id=job.pk, actor=op(senior))
    # approved as a whole: the per-account limit rule is the approver's to waive
    assert counts(job) == ("succeeded", 3, 3, 2, 1, 0)
    assert (fresh(big).status, fresh(small).status) == ("active", "active")
    assert request("reevaluate_unfreeze", [frozen()], analyst).status == "queued"  # 1 is not more than 1


def test_without_approval_reevaluate_and_unfreeze_leaves_a_high_limit_to_a_second_reviewer(
    analyst, settings, django_capture_on_commit_callbacks
):
    big = frozen("OVERDUE", limit="50000.00", available="0.00")
    small = frozen("OVERDUE")
    pay(big)
    pay(small)
    settings.FOUR_EYES_LIMIT = 50000

    with django_capture_on_commit_callbacks(execute=True):
        job = request("reevaluate_unfreeze", [big, small], analyst)

    assert counts(job) == ("succeeded", 2, 2, 1, 0, 1)
    assert outcomes(job)[big.pk] == ("failed", HIGH_LIMIT)
    assert (fresh(big).status, fresh(small).status) == ("frozen", "active")
    assert list(Signal.objects.filter(line=big).values_list("status", flat=True)) == ["cleared"]


def test_reevaluate_and_unfreeze_does_not_lift_a_freeze_an_operator_made_by_hand(
    analyst, senior, django_capture_on_commit_callbacks
):
    by_hand = make_line()
    assert services.account_freeze(line_id=by_hand.pk, actor=op(senior), reason="borrower reported a stolen phone")
    assert not Signal.objects.filter(line=by_hand).exists()

    with django_capture_on_commit_callbacks(execute=True):
        job = request("reevaluate_unfreeze", [by_hand], analyst)

    # A freeze with no signal behind it is a person's to lift: re-evaluation never lifts it.
    assert fresh(by_hand).status == "frozen"
    assert counts(job) == ("succeeded", 1, 1, 0, 1, 0)


# --- 5. bulk reminders


def test_a_bulk_reminder_goes_to_lines_with_an_active_overdue_signal_once_per_job(
    analyst, django_capture_on_commit_callbacks
):
    very_late = frozen("OVERDUE")
    late = make_line()
    assert flag(late, "OVERDUE", overdue_days=10) is None  # low severity: an engine reminder, no case
    others = [frozen("MULTI_HEAD"), make_line()]
    reminders = Notification.objects.filter(kind=NotificationKind.OVERDUE_REMINDER)
    engine_reminders = set(reminders.values_list("pk", flat=True))
    assert len(engine_reminders) == 1

    with django_capture_on_commit_callbacks(execute=True):
        first = request("bulk_remind", [very_late, late, *others], analyst)

    assert counts(first) == ("succeeded", 4, 4, 2, 2, 0)
    assert sorted(reminders.exclude(pk__in=engine_reminders).values_list("line_id", "dedupe_key")) == sorted(
        [(very_late.pk, f"job:{first.pk}:remind:{very_late.pk}"), (late.pk, f"job:{first.pk}:remind:{late.pk}")]
    )
    assert run_batches(first) == ["finished"]
    assert reminders.count() == 3

    with django_capture_on_commit_callbacks(execute=True):
        second = request("bulk_remind", [very_late, late, *others], analyst)

    assert counts(second) == ("succeeded", 4, 4, 2, 2, 0)
    assert reminders.count() == 5
    assert reminders.filter(dedupe_key__startswith=f"job:{second.pk}:").count() == 2


# --- 6. one account failing in the database does not fail the others


def test_an_account_the_database_refuses_is_reported_and_the_rest_of_its_batch_is_unfrozen(
    senior, senior2, django_capture_on_commit_callbacks
):
    lines = [frozen("MULTI_HEAD") for _ in range(3)]
    broken = lines[1]
    refuse_updates_of(broken, f"the ledger refuses line {broken.pk}")

    with django_capture_on_commit_callbacks(execute=True):
        job = request("bulk_unfreeze", lines, senior)
        jobs.job_approve(job_id=job.pk, actor=op(senior2))

    assert len(batches(job)) == 1
    assert counts(job) == ("succeeded", 3, 3, 2, 0, 1)
    outcome, message = outcomes(job)[broken.pk]
    assert (outcome, message.splitlines()[0]) == ("failed", f"the ledger refuses line {broken.pk}")
    assert [fresh(line).status for line in lines] == ["active", "frozen", "active"]
    assert not AuditEvent.objects.filter(account_id=broken.pk, action="line.unfreeze").exists()
    assert not Notification.objects.filter(line=broken, kind=NotificationKind.UNFREEZE).exists()
    assert Signal.objects.get(line=broken).status == "active"


def test_a_batch_that_keeps_hitting_a_transient_database_error_is_retried_whole_then_fails_its_job(senior, senior2):
    lines = [frozen(), frozen()]
    job = request("bulk_unfreeze", lines, senior)
    jobs.job_approve(job_id=job.pk, actor=op(senior2))
    (batch,) = batches(job)
    refuse_updates_of(lines[0], "deadlock detected (simulated)", errcode="40P01")

    with pytest.raises(Retry):
        job_tasks.job_run_batch.apply(args=(batch.pk,))  # the whole batch again later: nothing half done

    assert (fresh(batch).status, counts(job)) == ("pending", ("running", 2, 0, 0, 0, 0))
    assert [fresh(line).status for line in lines] == ["frozen", "frozen"] and not JobItem.objects.exists()

    last = job_tasks.job_run_batch.apply(args=(batch.pk,), retries=job_tasks.job_run_batch.max_retries)

    assert last.get() == "failed"
    job = fresh(job)
    assert (job.status, job.error.splitlines()[0]) == ("failed", f"batch {batch.pk}: deadlock detected (simulated)")
    assert job.finished_at is not None and fresh(batch).status == "pending"
    assert [fresh(line).status for line in lines] == ["frozen", "frozen"] and not JobItem.objects.exists()
    assert AuditEvent.objects.filter(action="job.fail", object_id=job.pk, actor_label="job runner").count() == 1


# --- 7. cancelling


def test_the_requester_cancels_a_job_and_its_pending_batches_never_run(analyst, settings):
    settings.JOB_BATCH_SIZE = 2
    lines = [overdue_line() for _ in range(5)]
    job = request("reevaluate", lines, analyst)
    first, *rest = batches(job)
    assert jobs.job_run_batch(first.pk) == "done"

    jobs.job_cancel(job_id=job.pk, actor=op(analyst))

    before = effects(job)
    job = fresh(job)
    assert (job.status, job.cancelled_by_id, job.done, job.batches_done) == ("cancelled", analyst.pk, 2, 1)
    assert job.finished_at is not None
    assert [b.status for b in batches(job)] == ["done", "cancelled", "cancelled"]
    assert [jobs.job_run_batch(b.pk) for b in rest] == ["finished", "finished"]
    assert jobs.jobs_dispatch() == 0
    assert effects(job) == before
    assert {fresh(line).status for line in lines[2:]} == {"active"}
    assert AuditEvent.objects.filter(action="job.cancel", object_id=job.pk, actor_user=analyst).count() == 1


def test_a_senior_reviewer_may_cancel_someone_elses_job_an_analyst_may_not(analyst, analyst2, senior, auditor):
    job = request("reevaluate", [overdue_line()], analyst)

    with pytest.raises(NotAllowed) as refused:
        jobs.job_cancel(job_id=job.pk, actor=op(analyst2))
    assert str(refused.value) == NOT_CANCELLER
    for user in (analyst2, auditor):
        response = logged_in(user).post(f"/jobs/{job.pk}/cancel/", headers=EN)
        assert response.status_code == 403
        assert NOT_CANCELLER in page(response)
    assert fresh(job).status == "queued"

    response = logged_in(senior).post(f"/jobs/{job.pk}/cancel/", headers=EN, follow=True)

    assert response.redirect_chain == [(f"/jobs/{job.pk}/", 302)]
    assert "Job cancelled." in page(response)
    assert (fresh(job).status, fresh(job).cancelled_by_id) == ("cancelled", senior.pk)


def test_cancelling_a_finished_job_is_refused_with_its_state(analyst, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = request("reevaluate", [make_line()], analyst)
    assert fresh(job).status == "succeeded"

    with pytest.raises(ConflictError) as conflict:
        jobs.job_cancel(job_id=job.pk, actor=op(analyst))

    assert str(conflict.value) == "This job is already succeeded"
    assert (fresh(job).status, fresh(job).cancelled_by_id) == ("succeeded", None)


def test_a_batch_of_a_failed_job_is_cancelled_when_it_arrives(analyst, settings):
    settings.JOB_BATCH_SIZE = 1
    lines = [overdue_line(), overdue_line()]
    job = request("reevaluate", lines, analyst)
    first, second = batches(job)

    jobs.job_batch_failed(batch_id=first.pk, message="deadlock detected")

    job = fresh(job)
    assert (job.status, job.error) == ("failed", f"batch {first.pk}: deadlock detected")
    assert jobs.job_run_batch(second.pk) == "cancelled"
    assert fresh(second).status == "cancelled"
    assert (JobItem.objects.filter(job=job).count(), fresh(job).done) == (0, 0)
    assert not Signal.objects.filter(line__in=lines).exists()


@pytest.mark.django_db(transaction=True)
def test_cancelling_while_a_batch_runs_lets_it_finish_whole_and_stops_the_rest(settings, filesystem_broker):
    default_ruleset()
    analyst = make_role_operator("analyst", "ana")
    settings.JOB_BATCH_SIZE = 2
    lines = [overdue_line() for _ in range(4)]
    use_broker, _sent = filesystem_broker
    with use_broker():
        job = request("reevaluate", lines, analyst)
    first, second = batches(job)

    def hold_first_line() -> str:
        # Someone else holds the first line (a reviewer deciding it): the running batch waits for it.
        with transaction.atomic():
            CreditLine.objects.select_for_update().get(pk=lines[0].pk)
            time.sleep(3)
        return "released"

    def run_first() -> str:
        time.sleep(0.1)
        return jobs.job_run_batch(first.pk)

    def cancel() -> str:
        time.sleep(1.5)
        return jobs.job_cancel(job_id=job.pk, actor=op(analyst)).status

    assert in_threads(hold_first_line, run_first, cancel) == ["released", "done", "cancelled"]

    assert counts(job) == ("cancelled", 4, 2, 2, 0, 0)
    assert [fresh(first).status, fresh(second).status] == ["done", "cancelled"]
    assert jobs.job_run_batch(second.pk) == "finished"
    assert [fresh(line).status for line in lines] == ["frozen", "frozen", "active", "active"]
    assert counts(job) == ("cancelled", 4, 2, 2, 0, 0)


# --- 8. dispatch: the batch rows are the outbox


def test_dispatch_sends_pending_batches_of_live_jobs_once_and_again_when_long_unfinished(
    analyst, senior, settings, filesystem_broker
):
    settings.JOB_BATCH_SIZE = 1
    use_broker, sent = filesystem_broker
    live = request("reevaluate", [make_line() for _ in range(4)], analyst)
    recent, stale, new, done = batches(live)
    assert jobs.job_run_batch(done.pk) == "done"
    now = timezone.now()
    JobBatch.objects.filter(pk=recent.pk).update(dispatched_at=now - timedelta(seconds=10), dispatch_count=1)
    JobBatch.objects.filter(pk=stale.pk).update(
        dispatched_at=now - timedelta(seconds=settings.JOB_REDISPATCH_SECONDS + 5), dispatch_count=1
    )
    failed = request("reevaluate", [make_line(), make_line()], analyst)
    jobs.job_batch_failed(batch_id=batches(failed)[0].pk, message="gave up")
    cancelled = request("reevaluate", [make_line()], analyst)
    jobs.job_cancel(job_id=cancelled.pk, actor=op(analyst))
    request("bulk_unfreeze", [frozen()], senior)  # waits for approval: no batch yet

    with use_broker():
        assert jobs.jobs_dispatch() == 2
        assert jobs.jobs_dispatch() == 0

    assert sent() == [stale.pk, new.pk]
    assert [fresh(b).dispatch_count for b in (recent, stale, new, done)] == [1, 2, 1, 0]
    assert [fresh(b).status for b in (recent, stale, new, done)] == ["pending", "pending", "pending", "done"]
    assert fresh(recent).dispatched_at == now - timedelta(seconds=10)
    stale_dispatched_at = fresh(stale).dispatched_at
    assert stale_dispatched_at is not None
    assert stale_dispatched_at > now and fresh(new).dispatched_at == stale_dispatched_at
    assert {(b.dispatched_at, b.dispatch_count) for b in batches(failed) + batches(cancelled)} == {(None, 0)}


def test_a_job_asked_for_during_a_broker_outage_runs_once_when_the_broker_is_back(
    analyst, settings, broker_down, django_capture_on_commit_callbacks
):
    settings.JOB_BATCH_SIZE = 2
    lines = [overdue_line() for _ in range(3)]

    with broker_down(), django_capture_on_commit_callbacks(execute=True):
        job = request("reevaluate", lines, analyst)  # the send after commit fails quietly
    assert [(b.status, b.dispatched_at) for b in batches(job)] == [("pending", None), ("pending", None)]
    with broker_down(), pytest.raises(Exception, match="Connection refused"):
        jobs.jobs_dispatch()  # beat's round: the batches are released for the next one
    assert [(b.status, b.dispatched_at) for b in batches(job)] == [("pending", None), ("pending", None)]
    assert counts(job) == ("queued", 3, 0, 0, 0, 0)

    assert jobs.jobs_dispatch() == 2  # the broker is back (the eager Celery of tests)

    assert counts(job) == ("succeeded", 3, 3, 3, 0, 0)
    assert {fresh(line).status for line in lines} == {"frozen"}
    assert AuditEvent.objects.filter(action="line.freeze", account_id__in=[line.pk for line in lines]).count() == 3
    assert jobs.jobs_dispatch() == 0


# --- 9. a batch costs a fixed number of queries


# One of them checks the deferred foreign keys before the job's row is updated (SET CONSTRAINTS ALL IMMEDIATE).
# A freeze is two statements (lock, then lines, history, audit and messages in one), as an unfreeze is.
BATCH_QUERIES = {"reevaluate": 30, "bulk_unfreeze": 13}


@pytest.mark.parametrize("n", [3, 30])
@pytest.mark.parametrize("kind", ["reevaluate", "bulk_unfreeze"])
def test_a_batch_costs_the_same_queries_whatever_its_size(kind, n, senior, senior2, django_assert_num_queries):
    # every line changes the same way: a new OVERDUE freeze, or a freeze lifted
    lines = [overdue_line() if kind == "reevaluate" else frozen() for _ in range(n)]
    job = request(kind, lines, senior)
    if kind == "bulk_unfreeze":
        jobs.job_approve(job_id=job.pk, actor=op(senior2))
    (batch,) = batches(job)

    with django_assert_num_queries(BATCH_QUERIES[kind]):
        assert jobs.job_run_batch(batch.pk) == "done"

    assert counts(job) == ("succeeded", n, n, n, 0, 0)
    # the changed accounts are listed in the batch's row, not written as a row each
    assert fresh(batch).changed_ids == sorted(line.pk for line in lines)
    assert not JobItem.objects.filter(job=job).exists()
    assert job_outcomes(job.pk) == {line.pk: ("changed", "") for line in lines}


# --- 10. pages


JOBS_PAGE_QUERIES = 3


def test_the_jobs_page_lists_jobs_newest_first_with_progress_and_rate(
    analyst, senior, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        finished = request("reevaluate", [overdue_line(), *(make_line() for _ in range(5))], analyst)
    started = timezone.now() - timedelta(minutes=5)
    Job.objects.filter(pk=finished.pk).update(started_at=started, finished_at=started + timedelta(seconds=2))
    waiting = request("bulk_unfreeze", [frozen()], senior)

    response = logged_in(analyst).get("/jobs/", headers=EN)

    assert response.status_code == 200
    text = page(response)
    assert re.findall(r'<tr class="job st-(\w+)" id="job-(\d+)">', text) == [
        ("awaiting_approval", str(waiting.pk)),
        ("succeeded", str(finished.pk)),
    ]
    done_row = re.search(rf'id="job-{finished.pk}">(.*?)</tr>', text, re.S)
    assert done_row is not None
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", done_row.group(1), re.S)]
    # kind, selection, status, progress, changed, unchanged, failed, rate, ETA, asked by
    assert cells[1:11] == ["re-evaluate", "chosen accounts", "succeeded", "100% 6 / 6", "1", "5", "0", "3/s", "", "ana"]
    waiting_row = re.search(rf'id="job-{waiting.pk}">(.*?)</tr>', text, re.S)
    assert waiting_row is not None
    assert "waiting for approval" in waiting_row.group(1) and "0 / 0" in waiting_row.group(1)


def test_the_jobs_table_polls_while_a_job_is_live_and_htmx_gets_the_table_alone(
    analyst, django_capture_on_commit_callbacks
):
    live = request("reevaluate", [make_line()], analyst)
    client = logged_in(analyst)

    full = page(client.get("/jobs/", headers=EN))
    partial = page(client.get("/jobs/", headers={**EN, "HX-Request": "true"}))

    assert "<h1>Jobs</h1>" in full and '<div id="jobs-table" hx-get="/jobs/" hx-trigger="every 2s"' in full
    assert partial.startswith('<div id="jobs-table" hx-get="/jobs/" hx-trigger="every 2s"')
    assert "<h1>" not in partial and "<html" not in partial and f'id="job-{live.pk}"' in partial

    assert run_batches(live) == ["done"]
    partial = page(client.get("/jobs/", headers={**EN, "HX-Request": "true"}))
    assert partial.startswith('<div id="jobs-table" >') and "hx-get" not in partial


def test_a_job_page_shows_its_failures_with_account_numbers_and_htmx_gets_the_progress_alone(
    analyst, django_capture_on_commit_callbacks
):
    big = frozen("OVERDUE", limit="50000.00", available="0.00")
    pay(big)
    with django_capture_on_commit_callbacks(execute=True):
        job = request("reevaluate_unfreeze", [big, make_line()], analyst)
    client = logged_in(analyst)

    text = page(client.get(f"/jobs/{job.pk}/", headers=EN))
    partial = page(client.get(f"/jobs/{job.pk}/", headers={**EN, "HX-Request": "true"}))

    failures = re.search(r'<section class="card" id="job-failures">(.*?)</section>', text, re.S)
    assert failures is not None
    assert re.findall(r"<tr><td><code>(\w+)</code></td><td>(.*?)</td></tr>", failures.group(1)) == [
        (big.account_no, HIGH_LIMIT)
    ]
    assert '<span id="job-done">2</span> / <span id="job-selected">2</span>' in text
    assert '<dd id="job-failed">1</dd>' in text and "hx-get" not in text and 'id="job-cancel"' not in text
    assert partial.startswith('<div id="job-progress" >') and "<h1>" not in partial and big.account_no in partial


def test_a_live_job_page_polls_and_offers_cancel_and_approve_only_to_who_may(analyst, analyst2, senior, senior2):
    queued = request("reevaluate", [make_line()], analyst)
    waiting = request("bulk_unfreeze", [frozen()], senior)

    def buttons(user, job) -> list[str]:
        return re.findall(r'id="(job-approve|job-cancel)"', page(logged_in(user).get(f"/jobs/{job.pk}/", headers=EN)))

    assert f'hx-get="/jobs/{queued.pk}/" hx-trigger="every 2s"' in page(logged_in(analyst).get(f"/jobs/{queued.pk}/"))
    assert [buttons(u, queued) for u in (analyst, analyst2, senior)] == [["job-cancel"], [], ["job-cancel"]]
    assert [buttons(u, waiting) for u in (senior, senior2)] == [["job-cancel"], ["job-approve", "job-cancel"]]
    assert buttons(analyst, waiting) == []


def test_starting_a_job_from_the_queue_selection_creates_it_and_shows_it(analyst, django_capture_on_commit_callbacks):
    cases = [flag(overdue_line(), "OVERDUE") for _ in range(3)]
    client = logged_in(analyst)
    form = {"kind": "reevaluate", "selection_kind": "ids", "next": "/queue/?family=OVERDUE", "query": "family=OVERDUE"}

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/jobs/new/", {**form, "case_ids": [c.pk for c in cases[:2]]}, headers=EN, follow=True)

    job = Job.objects.get()
    assert response.redirect_chain == [(f"/jobs/{job.pk}/", 302)]
    assert f"Job #{job.pk} started." in page(response)
    assert (job.kind, job.selection_kind, job.requested_by_id) == ("reevaluate", "ids", analyst.pk)
    assert job.selection == {"line_ids": sorted(c.line_id for c in cases[:2])}
    assert counts(job) == ("succeeded", 2, 2, 0, 2, 0)


def test_starting_a_job_from_the_queue_filter_keeps_the_filter_without_the_page_cursor(analyst):
    cases = [flag(make_line(), "OVERDUE"), flag(make_line(), "OVERDUE")]
    flag(make_line(), "MULTI_HEAD")
    form = {"kind": "bulk_remind", "selection_kind": "filter", "query": "family=OVERDUE&after=1%3A2", "next": "/queue/"}

    response = logged_in(analyst).post("/jobs/new/", form, headers=EN)

    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    assert job.selection == {"family": "OVERDUE", "_user_id": analyst.pk}
    assert [b.line_ids for b in batches(job)] == [sorted(c.line_id for c in cases)]
    shown = page(logged_in(analyst).get(f"/jobs/{job.pk}/", headers=EN))
    assert "a queue filter · <code>family=OVERDUE </code>" in shown and "_user_id" not in shown


def test_a_bad_form_never_sends_the_operator_to_another_site(analyst):
    form = {"kind": "reevaluate", "selection_kind": "ids", "next": "https://evil.example/queue/"}

    response = logged_in(analyst).post("/jobs/new/", form, headers=EN)

    assert (response.status_code, response["Location"]) == (302, "/jobs/")
    assert not Job.objects.exists()


def test_starting_a_bulk_unfreeze_from_a_case_page_waits_for_approval(senior):
    case = flag(make_line(), "MULTI_HEAD")
    form = {"kind": "bulk_unfreeze", "selection_kind": "ids", "line_id": case.line_id, "next": f"/cases/{case.pk}/"}

    response = logged_in(senior).post("/jobs/new/", form, headers=EN, follow=True)

    job = Job.objects.get()
    assert response.redirect_chain == [(f"/jobs/{job.pk}/", 302)]
    assert f"Job #{job.pk} waits for a second senior reviewer's approval." in page(response)
    assert (job.status, job.selection, job.may_unfreeze) == ("awaiting_approval", {"line_ids": [case.line_id]}, 1)
    assert fresh(case.line).status == "frozen"


def test_the_approver_of_a_bulk_unfreeze_sees_the_accounts_their_exposure_and_the_reason(senior, senior2):
    """Not only a count and a filter: who would be unfrozen, the money at stake, and why it was asked."""
    lines = [make_line(outstanding=amount, limit="40000.00") for amount in ("1200.00", "30000.50", "800.00")]
    cases = [flag(line, "MULTI_HEAD") for line in lines]
    active = make_line()
    job = jobs.job_request(
        kind="bulk_unfreeze",
        selection_kind="ids",
        selection={"line_ids": [line.pk for line in [*lines, active]]},
        actor=op(senior),
        reason="upstream data error in the bureau feed",
    )
    assert job.status == "awaiting_approval"

    shown = page(logged_in(senior2).get(f"/jobs/{job.pk}/", headers=EN))
    preview = shown[shown.index('id="unfreeze-preview"') :]
    assert "Frozen now in its selection: 3 accounts, ¥32,000.50 outstanding." in preview
    assert (
        '<strong id="job-reason"><span translate="no">upstream data error in the bureau feed</span></strong>' in preview
    )
    rows = re.findall(r"<tr><td>(\w+)</td><td>¥([\d,.]+)</td>", preview)
    assert rows == [
        (lines[1].account_no, "30,000.50"),
        (lines[0].account_no, "1,200.00"),
        (lines[2].account_no, "800.00"),
    ]
    assert f'href="/cases/{cases[1].pk}/"' in preview and active.account_no not in preview


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"kind": "reevaluate", "selection_kind": "ids"}, "Select at least one case, or use the current filter"),
        (
            {"kind": "reevaluate", "selection_kind": "all!"},
            "Select a valid choice. all! is not one of the available choices.",
        ),
        (
            {"kind": "purge", "selection_kind": "all"},
            "Select a valid choice. purge is not one of the available choices.",
        ),
        ({"kind": "reevaluate", "selection_kind": "filter", "query": "tier=9"}, BAD_TIER),
    ],
)
def test_bad_input_on_the_job_form_gets_a_clear_message_and_starts_nothing(analyst, form, message):
    flag(make_line(), "OVERDUE")

    back = "/queue/?family=OVERDUE"

    response = logged_in(analyst).post("/jobs/new/", {**form, "next": back}, headers=EN, follow=True)

    assert response.redirect_chain == [(back, 302)]
    assert message in page(response)
    assert not Job.objects.exists() and not JobBatch.objects.exists()
    assert not AuditEvent.objects.filter(object_type="job").exists()


def test_an_auditor_can_read_jobs_but_not_start_or_approve_one(auditor, senior):
    waiting = request("bulk_unfreeze", [frozen()], senior)
    client = logged_in(auditor)

    started = client.post("/jobs/new/", {"kind": "reevaluate", "selection_kind": "all"}, headers=EN)
    approved = client.post(f"/jobs/{waiting.pk}/approve/", headers=EN)

    assert (started.status_code, approved.status_code) == (403, 403)
    assert CANNOT_START in page(started) and NOT_SENIOR in page(approved)
    assert list(Job.objects.values_list("pk", "status")) == [(waiting.pk, "awaiting_approval")]
    assert client.get("/jobs/", headers=EN).status_code == 200
    assert client.get(f"/jobs/{waiting.pk}/", headers=EN).status_code == 200


@pytest.mark.parametrize("n", [1, 20])
def test_the_jobs_page_costs_the_same_queries_whatever_the_number_of_jobs(
    n, analyst, senior, senior2, django_assert_num_queries
):
    line = frozen()
    for i in range(n):
        if i % 3 == 2:
            job = request("bulk_unfreeze", [line], senior)
            jobs.job_approve(job_id=job.pk, actor=op(senior2))
        else:
            request("reevaluate", [line], analyst if i % 2 else senior)
    client = logged_in(analyst)
    client.get("/jobs/")  # the session is warm

    with django_assert_num_queries(JOBS_PAGE_QUERIES):
        response = client.get("/jobs/", headers=EN)

    assert len(re.findall(r'<tr class="job ', response.content.decode())) == n


# --- 11. API


API = "/api/v1/jobs/"


def test_an_operator_starts_a_job_through_the_api_with_a_session_and_follows_it(
    analyst, django_capture_on_commit_callbacks
):
    lines = [overdue_line(), make_line()]
    client = APIClient()
    client.force_login(analyst)
    body = {"kind": "reevaluate", "selection_kind": "ids", "account_nos": [line.account_no for line in lines]}

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(API, {**body, "reason": "repayment wave"}, format="json")

    assert response.status_code == 201, response.content
    job = Job.objects.get()
    fields = ("id", "kind", "selection_kind", "status", "selected", "done")
    assert [response.json()[k] for k in fields] == [job.pk, "reevaluate", "ids", "queued", 2, 0]
    assert (job.reason, job.selection) == ("repayment wave", {"line_ids": sorted(line.pk for line in lines)})

    followed = client.get(f"{API}{job.pk}/")

    assert followed.status_code == 200
    fields = ("status", "selected", "done", "changed", "unchanged", "failed")
    assert [followed.json()[k] for k in fields] == ["succeeded", 2, 2, 1, 1, 0]
    assert followed.json()["batches_total"] == followed.json()["batches_done"] == 1
    assert followed.json()["finished_at"] is not None and followed.json()["error"] == ""


def test_an_operator_token_starts_a_bulk_unfreeze_that_waits_for_approval(senior):
    line = frozen()

    response = token_client(senior).post(
        API, {"kind": "bulk_unfreeze", "selection_kind": "ids", "account_nos": [line.account_no]}, format="json"
    )

    assert response.status_code == 201
    assert (response.json()["status"], response.json()["selected"]) == ("awaiting_approval", 0)
    assert Job.objects.get().requested_by_id == senior.pk


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"account_nos": ["JB9999999999", "KNOWN", "JB9999999998"]},
            "unknown account numbers: JB9999999998, JB9999999999",
        ),
        ({}, "Choose at least one account"),
        ({"selection_kind": "filter", "filter": {"tier": "9"}}, BAD_TIER),
    ],
)
def test_a_bad_selection_through_the_api_is_a_400_with_the_reason_and_makes_no_job(analyst, body, message):
    known = make_line()
    if "account_nos" in body:
        body = {"account_nos": [known.account_no if n == "KNOWN" else n for n in body["account_nos"]]}

    response = token_client(analyst).post(API, {"kind": "reevaluate", "selection_kind": "ids", **body}, format="json")

    assert (response.status_code, response.json()) == (400, {"detail": message})
    assert not Job.objects.exists()


def test_the_queue_and_the_case_page_offer_only_the_jobs_a_selection_can_run(analyst):
    case = flag(make_line(), "MULTI_HEAD")
    expected = ["reevaluate", "reevaluate_unfreeze", "bulk_unfreeze", "bulk_remind"]
    for url in ("/queue/", f"/cases/{case.pk}/"):
        body = page(logged_in(analyst).get(url, headers=EN))
        select = body[body.index('<select name="kind" aria-label="Job"') :].split("</select>")[0]
        assert re.findall(r'<option value="(\w+)">', select) == expected, url


@pytest.mark.parametrize("kind", ["import", "simulate"])
def test_a_job_that_needs_its_own_page_cannot_be_asked_for_on_a_selection(analyst, kind):
    """An import needs its file, a simulation its draft: asked for on a selection they would fail every account."""
    line = make_line()

    response = token_client(analyst).post(
        API, {"kind": kind, "selection_kind": "ids", "account_nos": [line.account_no]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["detail"] == f'kind: "{kind}" is not a valid choice.'
    form = {"kind": kind, "selection_kind": "ids", "line_id": line.pk, "next": "/queue/"}
    followed = logged_in(analyst).post("/jobs/new/", form, headers=EN, follow=True)
    assert f"Select a valid choice. {kind} is not one of the available choices." in page(followed)
    with pytest.raises(DomainError, match=f"unknown job kind '{kind}'"):
        jobs.job_request(kind=kind, selection_kind="ids", selection={"line_ids": [line.pk]}, actor=op(analyst))
    assert not Job.objects.exists()


def test_the_integration_user_and_auditors_cannot_start_jobs_through_the_api(integration, auditor, analyst):
    job = request("reevaluate", [make_line()], analyst)
    body = {"kind": "reevaluate", "selection_kind": "all"}

    as_integration = token_client(integration).post(API, body, format="json")
    assert (as_integration.status_code, as_integration.json()) == (403, {"detail": "This account has no operator role"})
    assert token_client(integration).get(f"{API}{job.pk}/").status_code == 403
    refused = token_client(auditor).post(API, body, format="json")
    assert (refused.status_code, refused.json()) == (403, {"detail": CANNOT_START})
    assert token_client(auditor).get(f"{API}{job.pk}/").json()["status"] == "queued"
    assert list(Job.objects.values_list("pk", flat=True)) == [job.pk]
