"""Jobs on real Celery worker processes against a real broker: counts, cancelling, failures, a killed worker, an outage.

Nothing here is eager: each test starts `celery worker` processes (the project's app, the pytest database through
DATABASE_URL) on Redis (db 13, flushed per test), and on RabbitMQ too where a test is parametrised for it and the
port answers. The broker outage test runs a redis-server of its own on a free port, and beat.

- The tests are transactional (`django_db(transaction=True)`): the worker sees only committed rows.
- Each test uses a queue of its own, so a worker elsewhere on the same broker never takes these tasks (nor the
  reverse); the worker is started through `app.start()` after setting that queue as its default.
- Dispatch: the test process plays beat. While it waits it calls `jobs.jobs_dispatch()` once a second (the beat
  schedule's JOB_DISPATCH_SECONDS=1), with JOB_REDISPATCH_SECONDS=5, so a batch lost with its worker is sent
  again after 5 s. Calling it here keeps the timing under the test's control; the outage test runs the real beat
  process instead (its `jobs_dispatch` task runs on the worker), so that path is covered too.
- Workers run in a process group of their own: SIGKILL of the group kills the main process and its pool children
  at once, with no chance to ack, requeue or roll back cleanly (PostgreSQL rolls back the dropped connections).

Without Redis on 127.0.0.1:6379 the module is skipped, unless CI is set: then it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Count, Max
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation
from django.utils.translation import gettext

from accounts import engine
from accounts.models import Case, CreditLine, LineChange, LineStatus, Notification, Signal, Suppression
from appeals import services as appeal_services
from riskops import jobs
from riskops.celery import app as celery_app
from riskops.core.audit import Actor
from riskops.jobs.selectors import job_outcomes
from riskops.models import ActorKind, AuditEvent, Job, JobBatch, JobItem, JobKind, JobSelection
from tests.factories import INSTITUTIONS, default_ruleset, flag, make_line, make_role_operator, port_open
from tests.helpers import ROOT, current_database_url, free_port, reset_celery_connections

REDIS_URL = os.environ.get("JOBS_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
AMQP_URL = os.environ.get("JOBS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
IN_CI = bool(os.environ.get("CI"))
REDIS_SERVER = "redis-server"


if not port_open(REDIS_URL):
    if IN_CI:
        raise RuntimeError(f"Redis does not answer at {REDIS_URL}; .ci/run starts it")
    pytest.skip(f"no Redis at {REDIS_URL} (these tests need a real broker)", allow_module_level=True)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# The worker is the project's Celery app with this run's queue as its default queue (so the tasks it sends itself,
# such as notification sending, stay on that queue too).
_BOOT = (
    "import os, sys\n"
    "from riskops.celery import app\n"
    "app.conf.task_default_queue = os.environ['RISKOPS_TEST_QUEUE']\n"
    "app.start(sys.argv[1:])\n"
)


# --- the broker


@dataclass
class Broker:
    kind: str
    url: str
    queue: str = field(default_factory=lambda: f"riskops-jobs-test-{uuid.uuid4().hex[:12]}")

    @property
    def transport_options(self) -> dict[str, Any]:
        # What settings.py gives a redis:// or amqp:// CELERY_BROKER_URL.
        return {"visibility_timeout": 3600}


def _redis_flush(url: str) -> None:
    import redis

    redis.Redis.from_url(url, socket_timeout=5).flushdb()


def _amqp_delete_queue(broker: Broker) -> None:
    from kombu import Connection, Queue

    with contextlib.suppress(Exception), Connection(broker.url, connect_timeout=3) as conn:
        Queue(broker.queue).bind(conn.default_channel).delete()


@contextlib.contextmanager
def celery_on(broker: Broker) -> Iterator[None]:
    """Point this process's Celery app at the broker (not eager), as the worker is; put it back afterwards."""
    conf = celery_app.conf
    keys = ("task_always_eager", "broker_url", "broker_transport_options", "task_default_queue")
    saved = {k: conf[k] for k in keys}

    conf.update(
        task_always_eager=False,
        broker_url=broker.url,
        broker_transport_options=broker.transport_options,
        task_default_queue=broker.queue,
    )
    # Celery reads CELERY_BROKER_URL from the environment before its configuration (CI sets it for the suite).
    saved_env = os.environ.get("CELERY_BROKER_URL")
    os.environ["CELERY_BROKER_URL"] = broker.url
    reset_celery_connections()
    try:
        yield
    finally:
        reset_celery_connections()
        conf.update(saved)
        if saved_env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = saved_env


@pytest.fixture(params=["redis", "amqp"])
def broker(request, settings) -> Iterator[Broker]:
    """The real broker (Redis, and RabbitMQ when its port answers), with this process's Celery app on it."""
    if request.param == "amqp":
        if not port_open(AMQP_URL):
            pytest.skip(f"no RabbitMQ at {AMQP_URL} (optional broker)")
        b = Broker("amqp", AMQP_URL)
    else:
        _redis_flush(REDIS_URL)
        b = Broker("redis", REDIS_URL)
    settings.JOB_REDISPATCH_SECONDS = 5
    with celery_on(b):
        yield b
    if b.kind == "amqp":
        _amqp_delete_queue(b)


@pytest.fixture
def redis_broker(settings) -> Iterator[Broker]:
    _redis_flush(REDIS_URL)
    b = Broker("redis", REDIS_URL)
    settings.JOB_REDISPATCH_SECONDS = 5
    with celery_on(b):
        yield b


# --- processes: workers, beat, a private redis-server


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def pgid(self) -> int:
        return self.popen.pid  # started with start_new_session: its own process group

    def group_pids(self) -> list[int]:
        """The live (not zombie) processes of the group: the main process and its pool children."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == self.pgid and fields[0] != "Z":
                pids.append(int(entry.name))
        return pids

    def kill(self) -> None:
        """SIGKILL the whole group, then wait until none of it is left."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        deadline = time.monotonic() + 10
        while self.group_pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not self.group_pids(), f"{self.name}: processes left after SIGKILL: {self.group_pids()}"

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(text[-lines:])

    def wait_for_log(self, needle: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log.read_text(errors="replace"):
                return
            if self.popen.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.popen.returncode}\n{self.tail(60)}")
            time.sleep(0.1)
        raise AssertionError(f"{self.name}: no {needle!r} in its log after {timeout} s\n{self.tail(60)}")


class Processes:
    """Starts workers, beat and redis-servers for one test; kills whatever is left at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[Proc] = []

    def _env(self, broker: Broker) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=current_database_url(),
            CELERY_BROKER_URL=broker.url,
            RISKOPS_TEST_QUEUE=broker.queue,
            DEBUG="false",
            SECRET_KEY="jobs-worker-test-" + uuid.uuid4().hex,
            LOG_LEVEL="INFO",
            RISKOPS_VAR_DIR=str(self.tmp_path / "var"),
            NOTIFICATION_SENDER="accounts.notifications.FileSender",
            NOTIFICATION_FILE_PATH=str(self.tmp_path / "notifications.jsonl"),
            JOB_REDISPATCH_SECONDS="5",
            JOB_DISPATCH_SECONDS="1",
            PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        )
        env.pop("CELERY_TASK_ALWAYS_EAGER", None)
        return env

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str] | None) -> Proc:
        log = self.tmp_path / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        proc = Proc(name, popen, log)
        self.started.append(proc)
        return proc

    def worker(self, broker: Broker, *, concurrency: int = 2, name: str = "worker") -> Proc:
        node = f"{name}-{uuid.uuid4().hex[:8]}@%h"
        proc = self._spawn(
            name,
            [
                *(sys.executable, "-c", _BOOT),
                *("worker", "--concurrency", str(concurrency), "--loglevel", "INFO", "-n", node),
                *("--without-gossip", "--without-mingle", "--without-heartbeat"),
            ],
            self._env(broker),
        )
        proc.wait_for_log(" ready.")
        return proc

    def beat(self, broker: Broker) -> Proc:
        schedule = self.tmp_path / "celerybeat-schedule"
        proc = self._spawn(
            "beat",
            [sys.executable, "-c", _BOOT, "beat", "--loglevel", "INFO", "--max-interval", "1", "-s", str(schedule)],
            self._env(broker),
        )
        proc.wait_for_log("beat: Starting")
        return proc

    def redis_server(self, port: int) -> Proc:
        proc = self._spawn(
            f"redis-{port}",
            [
                *(REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
                *("--daemonize", "no", "--dir", str(self.tmp_path)),
            ],
            None,
        )
        proc.wait_for_log("Ready to accept connections", timeout=20)
        return proc

    def tails(self) -> str:
        return "\n".join(p.tail() for p in self.started)

    def kill_all(self) -> None:
        for proc in reversed(self.started):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pgid, signal.SIGKILL)
        for proc in self.started:
            proc.kill()


@pytest.fixture
def procs(tmp_path) -> Iterator[Processes]:
    processes = Processes(tmp_path)
    try:
        yield processes
    finally:
        processes.kill_all()


# --- data and polling


def seniors() -> tuple[Actor, Actor]:
    return (
        Actor.operator(make_role_operator("senior_reviewer", f"sen-{uuid.uuid4().hex[:6]}")),
        Actor.operator(make_role_operator("senior_reviewer", f"sue-{uuid.uuid4().hex[:6]}")),
    )


def make_frozen_lines(n: int, *, limit: str = "20000.00") -> list[int]:
    """n frozen lines, each with its active MULTI_HEAD signal (4 inquiries from 4 institutions), open case, and the
    freeze's history row and audit event.

    Written by a few INSERT ... SELECT statements: the rows the engine's first pass would write (the engine itself
    freezes some hundreds of lines a second when every line freezes, too slow to prepare 20k here). A sample is then
    evaluated by the real engine in a rolled-back transaction: it must find nothing to change, so this is a state the
    engine agrees with.
    """
    default_ruleset()
    rule = engine.active_rules()["MULTI_HEAD"]
    now = timezone.now()
    with connection.cursor() as cur:
        cur.execute(
            """
            WITH b AS (
                INSERT INTO accounts_borrower (name, phone, national_id, city, occupation, employer,
                    declared_monthly_income, profile_updated_at, created_at)
                SELECT '测试' || g, '139' || lpad(g::text, 8, '0'), lpad(g::text, 18, '0'), '杭州', '职员',
                    '杭州云栖科技有限公司', 10000, %(now)s - interval '400 days', %(now)s - interval '500 days'
                FROM generate_series(1, %(n)s) g
                RETURNING id
            )
            INSERT INTO accounts_creditline (account_no, borrower_id, "limit", available, outstanding, status,
                frozen_since, opened_at, updated_at)
            SELECT 'TW' || lpad(b.id::text, 12, '0'), b.id, %(limit)s, %(limit)s, 5000, 'frozen', %(now)s,
                %(now)s - interval '500 days', %(now)s
            FROM b
            RETURNING id
            """,
            {"n": n, "limit": limit, "now": now},
        )
        ids = sorted(r[0] for r in cur.fetchall())
        params: dict[str, Any] = {"ids": ids, "now": now, "institutions": INSTITUTIONS[:4]}
        cur.execute(
            """
            INSERT INTO accounts_creditinquiry (line_id, upstream_id, occurred_at, institution)
            SELECT l, 'tw-inq-' || l || '-' || k, %(now)s - make_interval(days => k), (%(institutions)s::text[])[k]
            FROM unnest(%(ids)s::bigint[]) l, generate_series(1, 4) k
            """,
            params,
        )
        cur.execute(
            """
            INSERT INTO accounts_case (line_id, status, severity_rank, exposure, opened_at, updated_at, sla_due_at,
                outcome, version, signal_codes)
            SELECT l.id, 'open', 3, l.outstanding, %(now)s, %(now)s, %(now)s + interval '48 hours', '', 1,
                '{MULTI_HEAD}'
            FROM accounts_creditline l WHERE l.id = ANY(%(ids)s::bigint[])
            """,
            params,
        )
        cur.execute(
            """
            INSERT INTO accounts_signal (line_id, rule_id, code, severity, action, ruleset_version, status, fired_at,
                evidence, case_id)
            SELECT i.line_id, %(rule)s, 'MULTI_HEAD', %(severity)s, %(action)s, %(version)s, 'active', %(now)s,
                jsonb_build_object(
                    'events', jsonb_build_object('inquiry', jsonb_agg(i.id ORDER BY i.occurred_at, i.id)),
                    'values', jsonb_build_object('inquiries', count(*), 'institutions', count(DISTINCT i.institution)),
                    'thresholds', %(thresholds)s::jsonb),
                c.id
            FROM accounts_creditinquiry i JOIN accounts_case c ON c.line_id = i.line_id
            WHERE i.line_id = ANY(%(ids)s::bigint[])
            GROUP BY i.line_id, c.id
            """,
            {
                **params,
                "rule": rule.pk,
                "severity": rule.severity,
                "action": rule.action,
                "version": rule.ruleset.version,
                "thresholds": json.dumps(
                    {k: rule.params[k] for k in ("min_inquiries", "min_institutions", "window_days")}
                ),
            },
        )
        # The freeze's history row and audit event, pointing at the signal (what tells a job the freeze was the
        # engine's, so re-evaluation may lift it).
        cur.execute(
            """
            WITH changes AS (
                INSERT INTO accounts_linechange (line_id, at, actor_kind, kind, status_before, status_after,
                    limit_before, limit_after, available_before, available_after, reason, signal_id)
                SELECT l.id, %(now)s, 'engine', 'freeze', 'active', 'frozen', l."limit", l."limit", l.available,
                    l.available, 'MULTI_HEAD signal #' || s.id || ' (ruleset v' || s.ruleset_version || ')', s.id
                FROM accounts_signal s JOIN accounts_creditline l ON l.id = s.line_id
                WHERE s.line_id = ANY(%(ids)s::bigint[])
                RETURNING line_id, limit_before, available_before, reason
            )
            INSERT INTO riskops_auditevent (at, actor_kind, actor_label, action, object_type, object_id, account_id,
                before, after, reason)
            SELECT %(now)s, 'engine', 'engine', 'line.freeze', 'credit_line', line_id, line_id,
                jsonb_build_object('status', 'active', 'limit', limit_before::text,
                    'available', available_before::text),
                jsonb_build_object('status', 'frozen', 'limit', limit_before::text,
                    'available', available_before::text),
                reason
            FROM changes
            """,
            params,
        )
    with transaction.atomic():
        sample = engine.evaluate_lines(ids[:: max(1, n // 200)])
        transaction.set_rollback(True)
    assert (sample.fired, sample.cleared, sample.suppressed) == (0, 0, 0), sample
    return ids


def job_state(job_id: int) -> str:
    job = Job.objects.get(pk=job_id)
    batches = dict(JobBatch.objects.filter(job_id=job_id).values_list("status").annotate(n=Count("id")))
    return (
        f"job #{job.pk} {job.status}: selected {job.selected} done {job.done} changed {job.changed} "
        f"unchanged {job.unchanged} failed {job.failed} batches {job.batches_done}/{job.batches_total} {batches}"
    )


def wait_until(
    condition: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    procs: Processes | None = None,
    dispatch: bool = True,
    job_id: int | None = None,
    interval: float = 0.05,
) -> Any:
    """Poll until `condition()` is truthy. With `dispatch`, play beat: jobs_dispatch() once a second."""
    deadline = time.monotonic() + timeout
    next_dispatch = 0.0
    while True:
        value = condition()
        if value:
            return value
        now = time.monotonic()
        if now > deadline:
            state = job_state(job_id) if job_id else ""
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what}\n{state}\n{procs.tails() if procs else ''}"
            )
        if dispatch and now >= next_dispatch:
            jobs.jobs_dispatch()
            next_dispatch = now + 1
        time.sleep(interval)


def finished(job_id: int) -> Callable[[], Job | None]:
    def check() -> Job | None:
        job = Job.objects.get(pk=job_id)
        return job if job.status not in ("queued", "running", "awaiting_approval") else None

    return check


def per_line(queryset, field_name: str = "line_id") -> tuple[int, int, int]:
    """(rows, distinct lines, most rows for one line)."""
    rows = queryset.count()
    grouped = queryset.values(field_name).annotate(n=Count("id"))
    return rows, grouped.count(), grouped.aggregate(m=Max("n"))["m"] or 0


def changed_ids(job: Job) -> list[int]:
    """The accounts the job's done batches list as changed, one entry per listing (a duplicate would show)."""
    return [
        i for ids in JobBatch.objects.filter(job=job, status="done").values_list("changed_ids", flat=True) for i in ids
    ]


def assert_job_bookkeeping(job: Job) -> None:
    """The job's counters agree with its batches and its items."""
    assert job.changed + job.unchanged + job.failed == job.done
    # Items only for failed accounts (with the reason); a done batch lists the accounts it changed; its other
    # accounts were unchanged.
    items = JobItem.objects.filter(job=job)
    assert dict(items.values_list("outcome").annotate(n=Count("id"))) == ({"failed": job.failed} if job.failed else {})
    per_account = job_outcomes(job.pk)
    assert len(per_account) == job.done
    for outcome in ("changed", "unchanged", "failed"):
        assert sum(1 for o, _m in per_account.values() if o == outcome) == getattr(job, outcome), outcome
    changed = changed_ids(job)
    assert len(changed) == len(set(changed)) == job.changed
    done_batches = JobBatch.objects.filter(job=job, status="done")
    assert done_batches.count() == job.batches_done
    with connection.cursor() as cur:
        cur.execute(
            "SELECT coalesce(sum(cardinality(line_ids)), 0) FROM riskops_jobbatch"
            " WHERE job_id = %s AND status = 'done'",
            [job.pk],
        )
        assert cur.fetchone()[0] == job.done


# --- a) a job over seeded accounts


def test_a_reevaluation_job_on_real_workers_gives_the_engines_result_with_exact_counts(broker, procs, settings):
    default_ruleset()
    call_command("seed_demo", "--accounts", "3000", "--seed", "42", "--reset", "--no-engine", verbosity=0)
    open_ids = set(CreditLine.objects.exclude(status=LineStatus.CLOSED).values_list("pk", flat=True))

    # The expectation, computed independently of jobs, batches and workers: the engine in this process over the
    # same lines, in a transaction that is then rolled back.
    with transaction.atomic():
        expected_changed: set[int] = set()
        for ids in engine.line_id_batches(2000):
            expected_changed |= engine.evaluate_lines(ids).changed_line_ids
        expected_signals = set(Signal.objects.filter(status="active").values_list("line_id", "code", "severity"))
        expected_frozen = set(CreditLine.objects.filter(status=LineStatus.FROZEN).values_list("pk", flat=True))
        transaction.set_rollback(True)
    assert expected_changed and expected_frozen and not Signal.objects.exists()

    procs.worker(broker, concurrency=2)
    settings.JOB_BATCH_SIZE = 250
    requester, _ = seniors()
    job = jobs.job_request(
        kind=JobKind.REEVALUATE, selection_kind=JobSelection.ALL, selection={}, actor=requester, reason="test"
    )
    assert job.status == "queued" and job.selected == len(open_ids)
    assert job.batches_total == -(-len(open_ids) // 250)

    job = wait_until(finished(job.pk), timeout=90, what="the job to finish", procs=procs, job_id=job.pk)
    assert job.status == "succeeded", job_state(job.pk)
    assert (job.selected, job.done, job.failed) == (len(open_ids), len(open_ids), 0)
    assert job.changed == len(expected_changed)
    assert job.unchanged == len(open_ids) - len(expected_changed)
    assert job.batches_done == job.batches_total and job.started_at and job.finished_at
    assert_job_bookkeeping(job)
    assert set(job_outcomes(job.pk)) == open_ids
    assert {i for i, (outcome, _m) in job_outcomes(job.pk).items() if outcome == "changed"} == expected_changed

    # The worker's result is the engine's, and each signal and freeze happened once, by this job.
    assert set(Signal.objects.filter(status="active").values_list("line_id", "code", "severity")) == expected_signals
    assert Signal.objects.count() == len(expected_signals)
    assert set(CreditLine.objects.filter(status=LineStatus.FROZEN).values_list("pk", flat=True)) == expected_frozen
    fire_events = AuditEvent.objects.filter(action="signal.fire")
    assert per_line(fire_events, "object_id") == (len(expected_signals), len(expected_signals), 1)
    assert set(fire_events.values_list("actor_kind", "actor_label").distinct()) == {(ActorKind.JOB, f"job #{job.pk}")}
    freezes = AuditEvent.objects.filter(action="line.freeze")
    assert per_line(freezes, "account_id") == (len(expected_frozen), len(expected_frozen), 1)
    assert per_line(LineChange.objects.filter(kind="freeze")) == (len(expected_frozen), len(expected_frozen), 1)

    # A second job over the same lines changes nothing.
    again = jobs.job_request(kind=JobKind.REEVALUATE, selection_kind=JobSelection.ALL, selection={}, actor=requester)
    again = wait_until(finished(again.pk), timeout=60, what="the second job", procs=procs, job_id=again.pk)
    assert (again.status, again.done, again.changed, again.unchanged) == ("succeeded", len(open_ids), 0, len(open_ids))
    assert Signal.objects.count() == len(expected_signals)
    assert AuditEvent.objects.filter(action="line.freeze").count() == len(expected_frozen)


# --- b) cancelling


def test_cancelling_a_running_job_stops_it_and_its_remaining_batches_never_run(redis_broker, procs, settings):
    default_ruleset()
    call_command("seed_demo", "--accounts", "3000", "--seed", "42", "--reset", "--no-engine", verbosity=0)
    procs.worker(redis_broker, concurrency=1)
    settings.JOB_BATCH_SIZE = 10  # 300 small batches: seconds of work, so the cancel lands while it runs
    requester, other_senior = seniors()
    job = jobs.job_request(kind=JobKind.REEVALUATE, selection_kind=JobSelection.ALL, selection={}, actor=requester)
    wait_until(
        lambda: Job.objects.get(pk=job.pk).batches_done >= 5, timeout=60, what="5 batches", procs=procs, job_id=job.pk
    )

    cancelled = jobs.job_cancel(job_id=job.pk, actor=other_senior)
    assert cancelled.status == "cancelled"

    # The batch running at that moment finishes; then nothing moves any more.
    def settled() -> bool:
        return not JobBatch.objects.filter(job=job, status="pending").exists()

    wait_until(settled, timeout=30, what="no pending batch", procs=procs, job_id=job.pk)
    snapshot = (Job.objects.get(pk=job.pk).done, len(job_outcomes(job.pk)))
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # the queued messages of cancelled batches reach the worker meanwhile
        jobs.jobs_dispatch()
        time.sleep(0.25)
    job = Job.objects.get(pk=job.pk)
    assert (job.done, len(job_outcomes(job.pk))) == snapshot
    assert job.status == "cancelled" and job.finished_at
    assert 0 < job.done < job.selected
    assert_job_bookkeeping(job)
    statuses = dict(JobBatch.objects.filter(job=job).values_list("status").annotate(n=Count("id")))
    assert statuses.get("done", 0) == job.batches_done
    assert statuses.get("cancelled", 0) == job.batches_total - job.batches_done > 0

    # The accounts of the cancelled batches were never evaluated: no item, no audit event by this job.
    with connection.cursor() as cur:
        cur.execute(
            "SELECT array_agg(l) FROM riskops_jobbatch, unnest(line_ids) l WHERE job_id = %s AND status = 'cancelled'",
            [job.pk],
        )
        never_ran = cur.fetchone()[0]
    assert not JobItem.objects.filter(job=job, line_id__in=never_ran).exists()
    assert not set(changed_ids(job)) & set(never_ran)
    assert not set(job_outcomes(job.pk)) & set(never_ran)
    assert not AuditEvent.objects.filter(actor_label=f"job #{job.pk}", account_id__in=never_ran).exists()
    assert AuditEvent.objects.filter(action="job.cancel", object_id=job.pk).count() == 1


# --- c) one failing account


def test_failing_accounts_are_reported_and_the_rest_of_their_batch_is_unfrozen(redis_broker, procs):
    default_ruleset()
    ids = sorted(flag(make_line(), "MULTI_HEAD").line_id for _ in range(8))  # frozen by the engine, a case each
    appealed, held = ids[2], ids[5]
    case = Case.objects.get(line_id=appealed)
    appeal = appeal_services.appeal_submit(
        line_id=appealed,
        reason="loans_closed",
        statement="我已还清其他机构的借款。",
        files=[],
        channel="link",
        actor=Actor(ActorKind.BORROWER, None, "borrower"),
    ).appeal
    assert appeal.case_id == case.pk
    # An account the database refuses to change (as a ledger lock or a constraint would): the set-based batch
    # fails as a whole, then runs account by account.
    with connection.cursor() as cur:
        cur.execute(
            f"""
            CREATE FUNCTION tw_refuse_line() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'line {held} is held by the ledger'; END $$;
            CREATE TRIGGER tw_refuse_line BEFORE UPDATE ON accounts_creditline
            FOR EACH ROW WHEN (OLD.id = {held}) EXECUTE FUNCTION tw_refuse_line();
            """
        )
    try:
        procs.worker(redis_broker, concurrency=1)
        requester, approver = seniors()
        job = jobs.job_request(
            kind=JobKind.BULK_UNFREEZE, selection_kind=JobSelection.IDS, selection={"line_ids": ids}, actor=requester
        )
        assert job.status == "awaiting_approval"
        jobs.job_approve(job_id=job.pk, actor=approver)
        job = wait_until(finished(job.pk), timeout=60, what="the job", procs=procs, job_id=job.pk)
    finally:
        with connection.cursor() as cur:
            cur.execute("DROP TRIGGER IF EXISTS tw_refuse_line ON accounts_creditline")
            cur.execute("DROP FUNCTION IF EXISTS tw_refuse_line()")

    assert (job.status, job.selected, job.done, job.changed, job.failed) == ("succeeded", 8, 8, 6, 2)
    assert job.batches_total == 1
    assert_job_bookkeeping(job)
    items = {item.line_id: item for item in JobItem.objects.filter(job=job, outcome="failed")}
    assert set(items) == {appealed, held}
    # Kept as the English template and its values (the worker's language is nobody's), read in the reader's.
    template = "the borrower's appeal #%(id)s is open; decide it from the appeal page"
    assert (items[appealed].message, items[appealed].params) == (template, {"id": appeal.pk})
    assert items[appealed].text == template % {"id": appeal.pk}
    with translation.override("zh-hans"):
        assert items[appealed].text == gettext(template) % {"id": appeal.pk} != template % {"id": appeal.pk}
    assert f"line {held} is held by the ledger" in items[held].text
    statuses = dict(CreditLine.objects.filter(pk__in=ids).values_list("pk", "status"))
    assert {i for i, s in statuses.items() if s == "frozen"} == {appealed, held}
    # The others were unfrozen once: the failed whole-batch attempt left nothing behind.
    unfrozen = [i for i in ids if i not in (appealed, held)]
    assert per_line(AuditEvent.objects.filter(action="line.unfreeze"), "account_id") == (6, 6, 1)
    assert set(AuditEvent.objects.filter(action="line.unfreeze").values_list("account_id", flat=True)) == set(unfrozen)
    assert per_line(Notification.objects.filter(kind="unfreeze")) == (6, 6, 1)
    assert per_line(LineChange.objects.filter(kind="unfreeze")) == (6, 6, 1)


# --- d) SIGKILL in the middle of a 20k-account job


def test_a_worker_killed_mid_job_loses_nothing_and_doubles_nothing(broker, procs, settings):
    # 20k accounts on Redis (CI's broker). RabbitMQ adds its own redelivery (a dropped connection's unacked
    # messages come back at once), shown on 5k to keep the module's time reasonable. 20 batches either way.
    n = 20_000 if broker.kind == "redis" else 5_000
    ids = make_frozen_lines(n)
    settings.JOB_BATCH_SIZE = n // 20
    requester, approver = seniors()
    job = jobs.job_request(
        kind=JobKind.BULK_UNFREEZE, selection_kind=JobSelection.IDS, selection={"line_ids": ids}, actor=requester
    )
    first = procs.worker(broker, concurrency=2, name="worker-1")
    jobs.job_approve(job_id=job.pk, actor=approver)
    assert Job.objects.get(pk=job.pk).batches_total == 20

    wait_until(
        lambda: Job.objects.get(pk=job.pk).batches_done >= 4,
        timeout=90,
        what="4 batches done",
        procs=procs,
        job_id=job.pk,
        interval=0.01,
    )
    pool = first.group_pids()
    assert len(pool) == 3, pool  # the main process and its two pool processes
    first.kill()
    at_kill = Job.objects.get(pk=job.pk)
    assert at_kill.batches_done < at_kill.batches_total, "the job ended before the kill: nothing was interrupted"

    # Right after the kill: what is committed is whole batches (the interrupted ones rolled back).
    def consistent() -> bool:
        j = Job.objects.get(pk=job.pk)
        active = CreditLine.objects.filter(pk__in=ids, status=LineStatus.ACTIVE).count()
        return active == j.done == len(changed_ids(j))

    wait_until(consistent, timeout=10, what="a consistent state after the kill", dispatch=False, job_id=job.pk)
    assert_job_bookkeeping(Job.objects.get(pk=job.pk))

    procs.worker(broker, concurrency=2, name="worker-2")
    job = wait_until(finished(job.pk), timeout=120, what="the job to finish", procs=procs, job_id=job.pk)

    assert job.status == "succeeded", job_state(job.pk)
    assert (job.selected, job.done, job.changed, job.unchanged, job.failed) == (n, n, n, 0, 0)
    assert job.batches_done == job.batches_total == 20
    assert_job_bookkeeping(job)
    assert sorted(changed_ids(job)) == sorted(ids) and not JobItem.objects.filter(job=job).exists()
    assert not CreditLine.objects.filter(pk__in=ids).exclude(status=LineStatus.ACTIVE).exists()
    # Every account exactly once in effect: its history row, audit events, notification, overturned signal, case.
    assert per_line(LineChange.objects.filter(kind="unfreeze")) == (n, n, 1)
    assert per_line(AuditEvent.objects.filter(action="line.unfreeze"), "account_id") == (n, n, 1)
    assert per_line(AuditEvent.objects.filter(action="signal.overturn"), "object_id") == (n, n, 1)
    assert per_line(AuditEvent.objects.filter(action="case.update", after__status="resolved"), "object_id") == (n, n, 1)
    assert per_line(Notification.objects.filter(kind="unfreeze")) == (n, n, 1)
    assert per_line(Suppression.objects.all()) == (n, n, 1)
    assert Signal.objects.filter(status="overturned").count() == n and not Signal.objects.filter(status="active")
    assert not Case.objects.exclude(status="resolved").exists()
    assert AuditEvent.objects.filter(actor_label=f"job #{job.pk}").count() == 3 * n
    if broker.kind == "redis":
        # Redis keeps the messages the killed worker had taken, unacked, for its visibility timeout (an hour): the
        # outbox sent those batches again. (RabbitMQ hands them to the next consumer when the connection drops.)
        assert JobBatch.objects.filter(job=job, dispatch_count__gte=2).exists()


# --- e) the broker is down when the job is asked for


def test_a_job_asked_for_while_the_broker_is_down_runs_once_when_it_is_back(procs, settings):
    import shutil

    if not shutil.which(REDIS_SERVER):
        if IN_CI:
            raise AssertionError("redis-server is not installed; the outage test starts one of its own")
        pytest.skip("redis-server is not installed")
    port = free_port()
    private = Broker("redis", f"redis://127.0.0.1:{port}/0")
    settings.JOB_REDISPATCH_SECONDS = 5
    n = 1000
    settings.JOB_BATCH_SIZE = 250
    ids = make_frozen_lines(n)
    # Their inquiries are withdrawn upstream: re-evaluation clears every signal, and the lines may be unfrozen.
    with connection.cursor() as cur:
        cur.execute("DELETE FROM accounts_creditinquiry WHERE line_id = ANY(%s::bigint[])", [ids])
    requester, approver = seniors()

    with celery_on(private):
        server = procs.redis_server(port)
        assert port_open(private.url)
        server.kill()  # the broker goes away
        assert not port_open(private.url)

        started = time.monotonic()
        job = jobs.job_request(
            kind=JobKind.REEVALUATE_UNFREEZE,
            selection_kind=JobSelection.IDS,
            selection={"line_ids": ids},
            actor=requester,
        )
        assert job.status == "awaiting_approval" and job.may_unfreeze == n
        jobs.job_approve(job_id=job.pk, actor=approver)  # starts it: batches written, sending fails quietly
        assert time.monotonic() - started < 30
        job = Job.objects.get(pk=job.pk)
        assert job.status == "queued" and job.batches_total == 4 and job.selected == n
        assert set(JobBatch.objects.filter(job=job).values_list("status", "dispatched_at")) == {("pending", None)}
        assert not JobItem.objects.filter(job=job).exists()

        # The broker is back (empty: nothing was ever sent); beat's jobs_dispatch sends the batch, a worker runs it.
        procs.redis_server(port)
        procs.worker(private, concurrency=2)
        procs.beat(private)
        job = wait_until(
            finished(job.pk), timeout=90, what="the job after the outage", procs=procs, dispatch=False, job_id=job.pk
        )

    assert (job.status, job.selected, job.done, job.changed, job.failed) == ("succeeded", n, n, n, 0)
    assert_job_bookkeeping(job)
    assert sorted(changed_ids(job)) == sorted(ids) and not JobItem.objects.filter(job=job).exists()
    assert not CreditLine.objects.filter(pk__in=ids).exclude(status=LineStatus.ACTIVE).exists()
    assert per_line(AuditEvent.objects.filter(action="signal.clear"), "object_id") == (n, n, 1)
    assert per_line(AuditEvent.objects.filter(action="line.unfreeze"), "account_id") == (n, n, 1)
    assert per_line(LineChange.objects.filter(kind="unfreeze")) == (n, n, 1)
    assert per_line(Notification.objects.filter(kind="unfreeze")) == (n, n, 1)
    assert not Case.objects.filter(line_id__in=ids).exclude(status="resolved").exists()


# --- a bug found on the way (no worker needed)


# A re-evaluate-and-unfreeze batch asks which freezes the evidence lifted once, not once per frozen line.
def test_a_reevaluate_and_unfreeze_batch_costs_the_same_queries_whatever_its_number_of_frozen_lines(redis_broker):
    # The broker is real but no worker runs: the batch waits for the direct call below.
    requester, _ = seniors()

    def queries_for(n: int) -> int:
        ids = make_frozen_lines(n)
        with connection.cursor() as cur:
            cur.execute("DELETE FROM accounts_creditinquiry WHERE line_id = ANY(%s::bigint[])", [ids])
        job = jobs.job_request(
            kind=JobKind.REEVALUATE_UNFREEZE,
            selection_kind=JobSelection.IDS,
            selection={"line_ids": ids},
            actor=requester,
        )
        batch = JobBatch.objects.get(job=job)
        with CaptureQueriesContext(connection) as ctx:
            assert jobs.job_run_batch(batch.pk) == "done"
        assert Job.objects.get(pk=job.pk).changed == n
        return len(ctx)

    assert queries_for(40) == queries_for(4)
