"""The appeal intake's fast path (POST /api/v1/appeals/): token and roles in one query, statements psycopg
prepares, the multi-table insert from JSON rows, the fallback when a unique index settles a race, coalesced
notification sends, and the web worker's malloc tuning.

Everything runs against the real PostgreSQL; the notification test publishes to a real Redis (db 11, flushed
before and after), and the race runs two real requests on their own connections.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.db import DataError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts import notifications
from accounts.models import Case, CreditLine, Notification, NotificationKind
from appeals import services
from appeals.documents import check_document
from appeals.models import Appeal, AppealDocument
from appeals.services import intake
from riskops.celery import app as celery_app
from riskops.core.audit import Actor
from riskops.core.auth import TokenWithRolesAuthentication, user_roles
from riskops.core.errors import ConflictError
from riskops.core.sql import rows_json, rows_sql
from riskops.models import ActorKind, AuditEvent
from tests.factories import default_ruleset, frozen_multi_head_case, make_line, make_role_operator, port_open
from tests.helpers import (
    APPEALS_API,
    NOTHING,
    ROOT,
    STATEMENT,
    in_threads,
    linked,
    pdf,
    post_api,
    reset_celery_connections,
    stored,
    submit,
    token_client,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ruleset")]

# A database of its own: CI's broker is db 15, the worker tests use db 13.
REDIS_URL = os.environ.get("INTAKE_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
ALREADY_OPEN = "An appeal for this account (no. {}) is already being reviewed; we will reply to it"
# One successful POST: the token with its roles, the savepoint of the service's atomic block (the test's own
# transaction is outside it), the lock of the line with what decides whether it may be appealed, the multi-table
# insert, the savepoint's release.
INTAKE_QUERIES = ["SELECT", "SAVEPOINT", "SELECT", "WITH", "RELEASE"]


def first_words(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"].split(None, 1)[0].upper() for q in queries.captured_queries]


def only_file() -> Path:
    [path] = Path(settings.APPEAL_DOCUMENTS_DIR).iterdir()
    return path


# --- 1. the token, the user and their roles in one query


@pytest.mark.parametrize(
    ("who", "status", "detail"),
    [
        ("unknown-token", 401, "Invalid token."),
        ("inactive-user", 401, "User inactive or deleted."),
        ("analyst", 403, "This token may not submit or read appeals"),
    ],
)
def test_the_api_refuses_an_unknown_token_an_inactive_user_and_an_operator_without_the_integration_role(
    integration, who, status, detail
):
    account = frozen_multi_head_case().line.account_no
    if who == "unknown-token":
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Token " + "f" * 40)
    elif who == "inactive-user":
        client = token_client(integration)
        integration.is_active = False
        integration.save(update_fields=["is_active"])
    else:
        client = token_client(make_role_operator("analyst", "ana"))

    response = post_api(client, account, [("a.pdf", pdf())], key="k1")

    assert (response.status_code, response.json()) == (status, {"detail": detail})
    if status == 401:
        assert response["WWW-Authenticate"] == "Token"
    assert stored() == NOTHING


def test_the_token_query_fills_the_roles_and_permissions_so_has_perm_costs_no_query(
    integration, django_assert_num_queries
):
    integration.user_permissions.add(Permission.objects.get(codename="reveal_pii"))
    key = Token.objects.create(user=integration).key
    auth = TokenWithRolesAuthentication()
    auth.authenticate_credentials(key)

    with django_assert_num_queries(1):
        user, token = auth.authenticate_credentials(key)
    with django_assert_num_queries(0):
        roles = user_roles(user)
        perms = user.get_all_permissions()
        allowed = (user.has_perm("appeals.submit_appeal"), user.has_perm("accounts.decide_case"))

    assert (user.pk, user.username, token.key, token.user) == (integration.pk, "lending-app", key, user)
    assert (roles, allowed) == ({"integration"}, (True, False))
    # The same answers as Django's ModelBackend reading the groups and permissions itself.
    fresh_user = type(integration).objects.get(pk=integration.pk)
    assert (
        perms
        == fresh_user.get_all_permissions()
        == {
            "appeals.submit_appeal",
            "ingest.ingest_events",
            "accounts.reveal_pii",
        }
    )


def test_a_second_appeal_over_the_api_costs_a_fixed_number_of_queries(integration, django_assert_num_queries):
    warm_up, measured = frozen_multi_head_case().line.account_no, frozen_multi_head_case().line.account_no
    client = token_client(integration)
    assert post_api(client, warm_up, [("a.pdf", pdf())], key="k1").status_code == 201

    with django_assert_num_queries(len(INTAKE_QUERIES)) as queries:
        response = post_api(client, measured, [("a.pdf", pdf())], key="k2")

    assert response.status_code == 201
    assert first_words(queries) == INTAKE_QUERIES
    assert Appeal.objects.count() == 2


# --- 2. prepared statements (psycopg's own: server-side binding and prepare_threshold)


def prepared_statements() -> list[str]:
    with connection.cursor() as cur:
        cur.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cur.fetchall()]


def test_psycopg_prepares_the_intakes_statements_once_a_connection_has_run_them_a_few_times(integration):
    client = token_client(integration)
    accounts = [frozen_multi_head_case().line.account_no for _ in range(7)]
    connection.ensure_connection()
    assert connection.connection.prepare_threshold == 5

    for n, account in enumerate(accounts):
        assert post_api(client, account, [("a.pdf", pdf())], key=f"k{n}").status_code == 201

    prepared = prepared_statements()
    assert any("FROM authtoken_token t" in sql for sql in prepared)  # the token with its roles
    assert any("FOR UPDATE OF l" in sql and "appeals_appeal" in sql for sql in prepared)  # the lock
    assert any(sql.startswith("WITH a AS (INSERT INTO") for sql in prepared)  # the multi-table insert


def _in_a_new_process(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env=dict(os.environ, DJANGO_SETTINGS_MODULE="riskops.settings", **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(("raw", "threshold"), [("", "5"), ("true", "5"), ("false", "None"), ("0", "None")])
def test_database_prepared_turns_psycopgs_prepared_statements_on_and_off(raw, threshold):
    code = "from django.db import connection; connection.ensure_connection(); print(connection.connection.prepare_threshold)"
    proc = _in_a_new_process(code, DATABASE_PREPARED=raw)
    assert (proc.returncode, proc.stdout.strip()) == (0, threshold), proc.stderr


def test_a_database_prepared_that_is_not_a_boolean_stops_start_up():
    proc = _in_a_new_process("", DATABASE_PREPARED="maybe")
    assert proc.returncode != 0
    assert "ImproperlyConfigured: DATABASE_PREPARED='maybe' is not a boolean" in proc.stderr


# --- 3. the rows the multi-table insert writes


def test_an_appeal_over_the_api_stores_exactly_the_rows_the_orm_would_have(integration, settings):
    case = frozen_multi_head_case()
    account = case.line.account_no
    data = pdf()
    client = token_client(integration)

    with CaptureQueriesContext(connection) as queries:
        response = post_api(client, account, [("结清证明.pdf", data)], key="req-1")

    assert response.status_code == 201, response.content
    assert first_words(queries) == INTAKE_QUERIES
    body = response.json()
    appeal = Appeal.objects.get()
    submitted = datetime.fromisoformat(body["submitted_at"])
    due = submitted + timedelta(hours=settings.APPEAL_SLA_HOURS)
    assert appeal.submitted_at == submitted  # to the microsecond
    assert {f.attname: getattr(appeal, f.attname) for f in Appeal._meta.concrete_fields} == {
        "id": body["id"],
        "case_id": case.pk,
        "line_id": case.line_id,
        "reason": "loans_closed",
        "statement": STATEMENT,
        "channel": "api",
        "status": "open",
        "priority": 0,
        "submitted_at": submitted,
        "updated_at": submitted,
        "sla_due_at": due,
        "sla_paused_at": None,
        "breach_notified_at": None,
        "info_request": "",
        "info_reply": "",
        "outcome": "",
        "reply": "",
        "decision_id": None,
        "decided_by_id": None,
        "decided_at": None,
        "idempotency_key": f"{integration.pk}:req-1",
        "submitted_by_id": integration.pk,
        "request_fingerprint": intake._fingerprint(
            account, "loans_closed", STATEMENT, [check_document("结清证明.pdf", data)]
        ),
        "version": 1,
    }
    case = Case.objects.get(pk=case.pk)
    assert (case.appeal_state, case.appeal_due_at) == ("open", due)

    document = AppealDocument.objects.get()
    assert {f.attname: getattr(document, f.attname) for f in AppealDocument._meta.concrete_fields} == {
        "id": body["documents"][0]["id"],
        "appeal_id": appeal.pk,
        "stored_name": only_file().name,
        "original_name": "结清证明.pdf",
        "content_type": "application/pdf",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "uploaded_at": submitted,
        "round": 0,
    }
    assert only_file().read_bytes() == data

    event = AuditEvent.objects.get(action__startswith="appeal.")
    assert {f.attname: getattr(event, f.attname) for f in AuditEvent._meta.concrete_fields if f.attname != "id"} == {
        "at": submitted,
        "actor_kind": "operator",
        "actor_user_id": integration.pk,
        "actor_label": "lending-app",
        "action": "appeal.submit",
        "object_type": "appeal",
        "object_id": appeal.pk,
        "account_id": case.line_id,
        "before": None,
        "after": {"reason": "loans_closed", "channel": "api", "documents": 1, "case_id": case.pk},
        "reason": "",
        "client_address": "127.0.0.1",
        # Not sealed yet: the sealer links it into the chain after the commit.
        "content_hash": None,
        "chain_seq": None,
        "prev_hash": None,
        "chain_hash": None,
    }

    message = Notification.objects.get(kind__startswith="appeal_")
    assert linked(message.body, case.line_id) == (
        f"【借呗】我们已收到您的申诉（编号 {appeal.pk}），将在 72 小时内处理并告知结果。查看进度："
    )
    assert {
        f.attname: getattr(message, f.attname)
        for f in Notification._meta.concrete_fields
        if f.attname not in ("id", "body")
    } == {
        "line_id": case.line_id,
        "kind": "appeal_received",
        "channel": "sms",
        "dedupe_key": f"appeal_received:{appeal.pk}",
        "created_at": submitted,
        "sent_at": None,  # sent after the commit, which the test's transaction never reaches
        "attempts": 0,
        "last_error": "",
        "held_until": None,
        "held_reason": "",
    }

    # The answer built from what was written equals the one read back from the database.
    assert (
        client.get(f"{APPEALS_API}{appeal.pk}/").json()
        == body
        == {
            "id": appeal.pk,
            "account_no": account,
            "reason": "loans_closed",
            "status": "open",
            "submitted_at": body["submitted_at"],
            "sla_due_at": timezone.localtime(due).isoformat(),
            "outcome": "",
            "reply": "",
            "documents": [
                {"id": document.pk, "name": "结清证明.pdf", "content_type": "application/pdf", "size": len(data)}
            ],
        }
    )


def test_json_rows_are_written_as_bulk_create_writes_them():
    line = make_line()
    at = datetime(2026, 6, 15, 4, 0, 1, 123457, tzinfo=UTC)

    def event(label: str) -> AuditEvent:
        return AuditEvent(
            at=at,
            actor_kind=ActorKind.SYSTEM,
            actor_label=label,
            action="test.rows",
            object_type="line",
            object_id=line.pk,
            account_id=line.pk,
            before=None,
            after={"nested": {"list": [1, "二", None, True]}, "ratio": 1.5, "quote": 'it\'s "quoted" \\ 100%'},
            reason="原因 with 'quotes' and %s",
        )

    AuditEvent.objects.bulk_create([event("orm")])
    table, columns, rows = rows_sql([event("rows")], "rows")
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {rows}",  # noqa: S608 - table names from the models, values bound
            {"rows": rows_json([event("rows")])},
        )

    orm, written = (
        AuditEvent.objects.filter(actor_label=label)
        .values(*[f.attname for f in AuditEvent._meta.concrete_fields if f.attname not in {"id", "actor_label"}])
        .get()
        for label in ("orm", "rows")
    )
    assert written == orm
    assert written["at"] == at  # microseconds kept
    assert written["before"] is None


@pytest.mark.parametrize(("name", "fits"), [("证" * 120, True), ("x" * 200, False)], ids=["at-the-limit", "too-long"])
def test_a_json_row_with_a_value_longer_than_its_column_is_refused_not_cut(name, fits):
    appeal = submit(frozen_multi_head_case())
    document = AppealDocument(
        appeal_id=appeal.pk,
        stored_name="0" * 32 + ".pdf",
        original_name=name,
        content_type="application/pdf",
        size=1,
        sha256="0" * 64,
        uploaded_at=timezone.now(),
    )
    table, columns, rows = rows_sql([document], "rows")
    insert = f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {rows}"  # noqa: S608 - table names from the models, values bound

    if fits:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(insert, {"rows": rows_json([document])})
        assert AppealDocument.objects.get(stored_name=document.stored_name).original_name == name
    else:
        with (
            pytest.raises(DataError, match=r"value too long for type character varying\(120\)"),
            transaction.atomic(),
            connection.cursor() as cur,
        ):
            cur.execute(insert, {"rows": rows_json([document])})
        assert not AppealDocument.objects.filter(stored_name=document.stored_name).exists()


# --- 4. a race settled by the unique index


@pytest.mark.django_db(transaction=True)
def test_two_different_appeals_racing_for_one_account_give_one_appeal_and_a_clear_conflict(monkeypatch):
    """The second request locks the line after the first took it: its check read the snapshot from before the
    first committed, so only the unique index refuses its appeal; its file is removed and it is told why."""
    default_ruleset()
    integration = make_role_operator("integration", "lending-app")
    account = frozen_multi_head_case().line.account_no
    real_target, real_write = intake._target, intake._write
    arrived = threading.Lock()
    order: list[str] = []
    first_holds_the_lock, second_pid = threading.Event(), []
    writes = []

    def target(*args):
        with arrived:
            order.append("first" if not order else "second")
            role = order[-1]
        if role == "second":
            assert first_holds_the_lock.wait(10)
            second_pid.append(connection.connection.info.backend_pid)
            return real_target(*args)  # waits for the first request's transaction
        found = real_target(*args)
        first_holds_the_lock.set()
        deadline = time.monotonic() + 10
        with connection.cursor() as cur:
            while True:
                if second_pid:
                    cur.execute("SELECT pg_backend_pid() = ANY(pg_blocking_pids(%s))", [second_pid[0]])
                    if cur.fetchone()[0]:
                        break
                assert time.monotonic() < deadline, "the second request never waited for the first one's lock"
                time.sleep(0.01)
        return found

    def write(*args, **kwargs):
        writes.append(real_write(*args, **kwargs))
        return writes[-1]

    monkeypatch.setattr(intake, "_target", target)
    monkeypatch.setattr(intake, "_write", write)
    clients = [token_client(integration), token_client(integration)]

    responses = in_threads(
        lambda: post_api(clients[0], account, [("one.pdf", pdf())], key="one", statement="第一份说明"),
        lambda: post_api(clients[1], account, [("two.pdf", pdf() + b"\n")], key="two", statement="第二份说明"),
    )

    assert sorted(r.status_code for r in responses) == [201, 409], [r.content for r in responses]
    won = next(r for r in responses if r.status_code == 201).json()
    lost = next(r for r in responses if r.status_code == 409).json()
    assert lost == {"detail": ALREADY_OPEN.format(won["id"])}
    assert [w is None for w in writes] == [False, True]  # the loser's insert met the index
    [appeal] = Appeal.objects.all()
    assert appeal.pk == won["id"]
    [document] = AppealDocument.objects.all()
    assert (document.appeal_id, document.original_name) == (appeal.pk, won["documents"][0]["name"])
    assert stored() == (1, 1, [document.stored_name], 1, 1)


def stale_once(monkeypatch, case: Case) -> None:
    """The lock statement's first read comes from a snapshot without the case's open appeal (and the key's
    appeal); the intake reads again, for real, when the unique index refuses what it wrote."""
    real = intake._target
    calls = []

    def target(*args, **kwargs):
        calls.append(args)
        if len(calls) > 1:
            return real(*args, **kwargs)
        with connection.cursor() as cur:
            cur.execute("SELECT nextval(pg_get_serial_sequence('appeals_appeal', 'id'))")
            (appeal_id,) = cur.fetchone()
        line = CreditLine.objects.get(pk=case.line_id)
        return intake._Target(line.pk, line.account_no, line.status, case.pk, None, None, None, appeal_id)

    monkeypatch.setattr(intake, "_target", target)


def test_an_appeal_whose_check_was_stale_is_refused_by_the_index_and_leaves_nothing_behind(integration, monkeypatch):
    case = frozen_multi_head_case()
    first = submit(case, [("a.pdf", pdf())])
    before, marker = stored(), (Case.objects.get(pk=case.pk).appeal_state, first.sla_due_at)
    stale_once(monkeypatch, case)

    with pytest.raises(ConflictError) as excinfo:
        services.appeal_submit(
            line_id=case.line_id,
            reason="repaid",
            statement="另一份说明",
            files=[("b.pdf", pdf())],
            channel="api",
            actor=Actor.operator(integration),
            idempotency_key="other",
        )

    assert str(excinfo.value) == ALREADY_OPEN.format(first.pk)
    assert stored() == before  # no row, no audit event, no message, and the new file removed
    case = Case.objects.get(pk=case.pk)
    assert (case.appeal_state, case.appeal_due_at) == marker


def test_a_retry_whose_check_was_stale_gets_the_appeal_the_first_request_created(integration, monkeypatch):
    case = frozen_multi_head_case()
    actor = Actor.operator(integration)
    request = functools.partial(
        services.appeal_submit,
        line_id=case.line_id,
        reason="repaid",
        statement=STATEMENT,
        files=[("a.pdf", pdf())],
        channel="api",
        actor=actor,
        idempotency_key="req-1",
    )
    first = request()
    before = stored()
    stale_once(monkeypatch, case)

    again = request()

    assert (again.replayed, again.appeal.pk, again.documents) == (True, first.appeal.pk, None)
    assert stored() == before


# --- 6. coalesced notification sends


@pytest.fixture
def redis_queue(monkeypatch) -> Iterator[Callable[[], list[dict]]]:
    """Celery publishes to a real Redis (not eager) for the test; returns a function listing the queued messages."""
    if not port_open(REDIS_URL):
        if os.environ.get("CI"):
            raise RuntimeError(f"Redis does not answer at {REDIS_URL}; .ci/run starts it")
        pytest.skip(f"no Redis at {REDIS_URL}")
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    client.flushdb()
    conf = celery_app.conf
    saved = {k: conf[k] for k in ("task_always_eager", "broker_url", "broker_transport_options")}

    conf.update(task_always_eager=False, broker_url=REDIS_URL, broker_transport_options={"visibility_timeout": 3600})
    # Celery reads CELERY_BROKER_URL from the environment before its configuration (CI sets it).
    monkeypatch.setenv("CELERY_BROKER_URL", REDIS_URL)
    monkeypatch.setattr(notifications, "_send_due_at", 0.0)
    reset_celery_connections()
    queue = conf.task_default_queue or "celery"

    def messages() -> list[dict]:
        return [json.loads(raw) for raw in client.lrange(queue, 0, -1)]

    try:
        yield messages
    finally:
        reset_celery_connections()
        conf.update(saved)
        client.flushdb()
        client.close()


def commit_a_notification(line: CreditLine, n: int) -> None:
    with transaction.atomic():
        notifications.notifications_queue(
            [
                notifications.Outgoing(
                    line.pk, NotificationKind.CREDIT_EDUCATION, f"education:{line.pk}:{n}", {"link": "-"}
                )
            ],
            at=timezone.now(),
        )


@pytest.mark.django_db(transaction=True)
def test_commits_within_the_send_delay_publish_one_send_task(redis_queue, settings, monkeypatch):
    settings.NOTIFICATION_SEND_DELAY_SECONDS = 1
    clock = [1000.0]
    monkeypatch.setattr(notifications, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    line = make_line()

    commit_a_notification(line, 1)
    clock[0] = 1000.9
    commit_a_notification(line, 2)

    [message] = redis_queue()
    assert message["headers"]["task"] == "accounts.tasks.notifications_send_pending"
    assert message["headers"]["eta"] is not None  # runs the delay later, and sends both rows
    assert Notification.objects.filter(line=line, sent_at__isnull=True).count() == 2

    clock[0] = 1001.0  # the task published first is due: the next commit publishes again
    commit_a_notification(line, 3)

    assert len(redis_queue()) == 2


@pytest.mark.django_db(transaction=True)
def test_without_a_send_delay_every_commit_publishes_a_send_task(redis_queue, settings):
    settings.NOTIFICATION_SEND_DELAY_SECONDS = 0
    line = make_line()

    commit_a_notification(line, 1)
    commit_a_notification(line, 2)

    messages = redis_queue()
    assert [(m["headers"]["task"], m["headers"]["eta"]) for m in messages] == [
        ("accounts.tasks.notifications_send_pending", None)
    ] * 2


# --- 7. the web worker keeps request-sized buffers in the C heap (glibc's tunables, README)

GLIBC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864"


def test_the_documented_malloc_tuning_is_accepted_by_this_c_library():
    import glob

    [loader] = glob.glob("/lib64/ld-linux-*.so.*") or glob.glob("/lib/*/ld-linux-*.so.*")[:1]
    proc = subprocess.run(
        [loader, "--list-tunables"], env={"GLIBC_TUNABLES": GLIBC_TUNABLES}, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    tunables = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
    assert tunables["glibc.malloc.mmap_threshold"].split(" ")[0] == "0x2000000"
    assert tunables["glibc.malloc.trim_threshold"].split(" ")[0] == "0x4000000"
    readme = (ROOT / "README.md").read_text()
    assert f"GLIBC_TUNABLES={GLIBC_TUNABLES}" in readme
