"""The audit trail: append-only in PostgreSQL, hash-chained by the sealer, checkpointed, verified (docs/AUDIT.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import ProgrammingError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from riskops.core.audit import Actor, Change, audit_write
from riskops.core.audit_chain import (
    audit_checkpoint,
    audit_maintenance,
    audit_seal,
    audit_verify,
    chain_hash,
    chain_state,
    checkpoint_signature,
    content_hash,
)
from riskops.models import AuditCheckpoint, AuditEvent, AuditVerification
from tests.helpers import in_threads

pytestmark = pytest.mark.django_db


def write(n: int, *, label: str = "t") -> list[int]:
    """n audit events in one INSERT, as a service writes them; their ids."""
    at = timezone.now()
    audit_write(
        actor=Actor.system(label),
        at=at,
        changes=[
            Change("line.freeze", "line", i, i, {"status": "active"}, {"status": "frozen", "备注": "冻结"}, f"r{i}")
            for i in range(1, n + 1)
        ],
    )
    return list(AuditEvent.objects.filter(actor_label=label, at=at).order_by("id").values_list("id", flat=True))


def digest(value: bytes | memoryview | None) -> bytes:
    assert value is not None
    return bytes(value)


def refused(statement: str, params: list[Any] | None = None) -> str:
    with connection.cursor() as cur:
        # The test's transaction holds the foreign-key checks of its inserts, which TRUNCATE would not wait for.
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
    with pytest.raises(ProgrammingError) as exc, transaction.atomic(), connection.cursor() as cur:
        cur.execute(statement, params)
    return str(exc.value).splitlines()[0]


def verify_fails() -> str:
    with pytest.raises(CommandError) as exc:
        call_command("verify_audit", "--by", "tester")
    return str(exc.value)


def test_update_delete_and_truncate_are_refused_to_the_superuser():
    ids = write(2)
    audit_seal()
    with connection.cursor() as cur:
        cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        assert cur.fetchone()[0] is True

    assert refused("UPDATE riskops_auditevent SET reason = 'x' WHERE id = %s", [ids[0]]) == (
        "riskops_auditevent is append-only: UPDATE refused"
    )
    assert refused("DELETE FROM riskops_auditevent WHERE id = %s", [ids[0]]) == (
        "riskops_auditevent is append-only: DELETE refused"
    )
    assert refused("TRUNCATE riskops_auditevent") == "riskops_auditevent is append-only: TRUNCATE refused"
    # The sealer's one-time fill is over: chain columns cannot be rewritten either.
    assert refused("UPDATE riskops_auditevent SET chain_seq = chain_seq + 100 WHERE id = %s", [ids[1]]) == (
        "riskops_auditevent is append-only: UPDATE refused"
    )
    assert AuditEvent.objects.filter(pk__in=ids, reason__in=["r1", "r2"]).count() == 2


def test_checkpoints_and_verifications_are_append_only_too():
    write(1)
    audit_checkpoint()
    audit_verify(by="tester")
    for table in ("riskops_auditcheckpoint", "riskops_auditverification"):
        assert refused(f"UPDATE {table} SET id = id") == f"{table} is append-only: UPDATE refused"  # noqa: S608
        assert refused(f"DELETE FROM {table}") == f"{table} is append-only: DELETE refused"  # noqa: S608
        assert refused(f"TRUNCATE {table}") == f"{table} is append-only: TRUNCATE refused"
    assert AuditCheckpoint.objects.count() == 1
    assert AuditVerification.objects.count() == 1


def test_an_unsealed_event_cannot_be_edited_outside_maintenance():
    [event] = write(1)
    assert refused("UPDATE riskops_auditevent SET reason = 'x' WHERE id = %s", [event]) == (
        "riskops_auditevent is append-only: UPDATE refused"
    )
    # Filling the chain columns while changing the content is not the sealer's fill.
    assert refused(
        "UPDATE riskops_auditevent SET reason = 'x', chain_seq = 1, content_hash = '\\x00', prev_hash = '\\x00', "
        "chain_hash = '\\x00' WHERE id = %s",
        [event],
    ) == ("riskops_auditevent is append-only: UPDATE refused")


def test_the_sealer_chains_events_in_id_order_and_is_idempotent():
    ids = write(7)
    assert audit_seal(batch=3) == 7
    first = list(AuditEvent.objects.order_by("chain_seq").values_list("id", "chain_seq", "chain_hash"))

    assert audit_seal() == 0
    assert list(AuditEvent.objects.order_by("chain_seq").values_list("id", "chain_seq", "chain_hash")) == first
    assert [(i, s) for i, s, _h in first] == [(i, n) for n, i in enumerate(ids, start=1)]
    event = AuditEvent.objects.get(chain_seq=2)
    previous = AuditEvent.objects.get(chain_seq=1)
    assert digest(event.prev_hash) == digest(previous.chain_hash)
    assert digest(event.chain_hash) == chain_hash(2, digest(previous.chain_hash), digest(event.content_hash))
    assert audit_verify(by="tester").events_checked == 7


def test_verify_audit_passes_and_records_who_verified(capsys):
    write(4)
    call_command("verify_audit", "--by", "auditor-7")

    assert capsys.readouterr().out.startswith("Audit chain intact: 4 events, 0 checkpoints checked (verification #")
    v = AuditVerification.objects.get()
    assert (v.by, v.ok, v.events_checked, v.first_bad_event_id, v.problem) == ("auditor-7", True, 4, None, "")
    assert v.started_at <= v.finished_at


def test_verify_audit_names_an_event_edited_through_the_maintenance_procedure():
    ids = write(5)
    audit_seal()
    with audit_maintenance(), connection.cursor() as cur:
        cur.execute("UPDATE riskops_auditevent SET reason = 'nothing to see' WHERE id = %s", [ids[2]])

    message = verify_fails()

    assert message == (
        f"Audit chain broken after 2 good events: event #{ids[2]} (seq 3): its content does not match its content "
        "hash (edited)"
    )
    v = AuditVerification.objects.get()
    assert (v.ok, v.first_bad_event_id, v.first_bad_seq, v.events_checked, v.by) == (False, ids[2], 3, 2, "tester")


def test_verify_audit_names_the_event_after_a_deleted_one():
    ids = write(5)
    audit_seal()
    with audit_maintenance(), connection.cursor() as cur:
        cur.execute("DELETE FROM riskops_auditevent WHERE id = %s", [ids[1]])

    assert verify_fails() == (
        f"Audit chain broken after 1 good events: event #{ids[2]} (seq 3): its predecessor is missing "
        "(seq 2: deleted events)"
    )
    assert AuditVerification.objects.get().first_bad_event_id == ids[2]


def test_verify_audit_finds_the_last_events_deleted_after_a_checkpoint():
    ids = write(3)
    audit_checkpoint()
    checkpoint = AuditCheckpoint.objects.get()
    with audit_maintenance(), connection.cursor() as cur:
        cur.execute("DELETE FROM riskops_auditevent WHERE id = %s", [ids[2]])

    assert verify_fails() == (
        f"Audit chain broken after 2 good events: checkpoint #{checkpoint.pk} names seq 3, beyond the chain's last "
        "event (seq 2): events deleted"
    )


def test_a_forged_checkpoint_is_detected():
    write(3)
    audit_checkpoint()
    head = digest(AuditEvent.objects.get(chain_seq=3).chain_hash)
    forged = AuditCheckpoint.objects.create(
        at=timezone.now(), chain_seq=3, chain_hash=head, signature=checkpoint_signature(3, head)[::-1]
    )

    assert verify_fails() == (
        f"Audit chain broken after 0 good events: checkpoint #{forged.pk} (seq 3): its signature does not match"
    )


def test_a_chain_rewritten_with_its_hashes_recomputed_is_caught_by_the_signed_checkpoint():
    ids = write(4)
    audit_checkpoint()
    # An insider with the database but not the key edits event 2 and recomputes every hash after it.
    with audit_maintenance(), connection.cursor() as cur:
        cur.execute("UPDATE riskops_auditevent SET reason = 'rewritten' WHERE id = %s", [ids[1]])
        prev = digest(AuditEvent.objects.get(chain_seq=1).chain_hash)
        for seq in (2, 3, 4):
            cur.execute(
                "SELECT id, at, actor_kind, actor_user_id, actor_label, action, object_type, object_id, account_id,"
                " before::text, after::text, reason FROM riskops_auditevent WHERE chain_seq = %s",
                [seq],
            )
            content = content_hash(cur.fetchone())
            head = chain_hash(seq, prev, content)
            cur.execute(
                "UPDATE riskops_auditevent SET content_hash = %s, prev_hash = %s, chain_hash = %s WHERE chain_seq = %s",
                [content, prev, head, seq],
            )
            prev = head

    assert verify_fails() == (
        f"Audit chain broken after 3 good events: event #{ids[3]} (seq 4): the chain up to it differs from signed "
        f"checkpoint #{AuditCheckpoint.objects.get().pk} (rewritten)"
    )


def test_a_checkpoint_is_signed_once_per_head():
    write(2)
    first = audit_checkpoint()
    assert first is not None
    assert (first.chain_seq, first.signature) == (2, checkpoint_signature(2, digest(first.chain_hash)))
    assert audit_checkpoint() is None
    write(1)
    second = audit_checkpoint(now=timezone.now() + timedelta(minutes=5))
    assert second is not None and second.chain_seq == 3
    assert audit_verify(by="tester").checkpoints_checked == 2


def test_chain_state_gives_the_last_verification_checkpoint_and_unsealed_count():
    write(3)
    audit_checkpoint()
    verification = audit_verify(by="aud")
    write(2)

    with CaptureQueriesContext(connection) as queries:
        state = chain_state()

    assert len(queries) == 3
    assert state.last_verification == verification
    assert state.last_checkpoint == AuditCheckpoint.objects.get()
    assert state.unsealed == 2


def test_the_unsealed_count_stops_after_its_cap(monkeypatch):
    from riskops.core import audit_chain

    monkeypatch.setattr(audit_chain, "UNSEALED_COUNTED", 3)
    write(10)
    assert chain_state().unsealed == 4  # "more than 3"


def test_the_demo_reset_is_allowed_as_maintenance():
    from riskops.management.commands.seed_demo import reset_demo_data

    write(2)
    audit_checkpoint()
    with connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
    reset_demo_data()
    assert not AuditEvent.objects.exists()
    assert not AuditCheckpoint.objects.exists()
    assert refused("TRUNCATE riskops_auditevent") == "riskops_auditevent is append-only: TRUNCATE refused"


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_and_sealers_give_one_valid_chain():
    def writer(label: str) -> int:
        for _ in range(20):
            with transaction.atomic():
                write(3, label=label)
        return 60

    def sealer() -> int:
        return sum(audit_seal(batch=7) for _ in range(30))

    results = in_threads(lambda: writer("a"), lambda: writer("b"), lambda: writer("c"), sealer, sealer)

    assert results[:3] == [60, 60, 60]
    audit_seal()
    assert sum(results[3:]) <= 180
    seqs = list(AuditEvent.objects.order_by("chain_seq").values_list("chain_seq", flat=True))
    assert seqs == list(range(1, 181))
    verification = audit_verify(by="tester")
    assert (verification.ok, verification.events_checked) == (True, 180)


@pytest.mark.django_db(transaction=True)
def test_flush_empties_the_audit_trail_only_as_maintenance():
    write(2)
    audit_checkpoint()
    # What pytest-django does after every transactional test.
    call_command("flush", "--no-input", verbosity=0)
    assert not AuditEvent.objects.exists()
    with connection.cursor() as cur:
        cur.execute("SELECT current_setting('riskops.audit_maintenance', true)")
        assert cur.fetchone()[0] == ""


def test_deploy_check_warns_without_an_audit_checkpoint_key(settings):
    from riskops.checks import audit_checkpoint_key_check

    settings.AUDIT_CHECKPOINT_KEY_SET = False
    assert [w.id for w in audit_checkpoint_key_check(None)] == ["riskops.W001"]
    settings.AUDIT_CHECKPOINT_KEY_SET = True
    assert audit_checkpoint_key_check(None) == []


@pytest.mark.django_db(transaction=True)
def test_the_runtime_role_may_only_insert_and_select_the_audit_trail():
    import psycopg

    from tests.helpers import current_database_url

    role = f"riskops_app_{connection.settings_dict['NAME']}"[:63]
    call_command("setup_db_roles", "--role", role, stdout=__import__("io").StringIO())
    try:
        sealed = write(2)
        audit_seal()
        url = current_database_url().replace(f"//{connection.settings_dict['USER']}@", f"//{role}@", 1)
        with psycopg.connect(url, autocommit=True) as app:
            assert app.execute(
                "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone() == (
                role,
                False,
            )
            app.execute(
                "INSERT INTO riskops_auditevent (at, actor_kind, actor_label, action, object_type, object_id, reason)"
                " VALUES (now(), 'system', 'app', 'x.y', 'x', 1, '')"
            )
            assert app.execute("SELECT count(*) FROM riskops_auditevent").fetchone() == (3,)
            # Even the maintenance setting does nothing for a role that does not own the table.
            app.execute("SET riskops.audit_maintenance = 'on'")
            denied = []
            for statement in (
                "UPDATE riskops_auditevent SET reason = 'x'",
                "DELETE FROM riskops_auditevent",
                "TRUNCATE riskops_auditevent",
                "DELETE FROM riskops_auditcheckpoint",
                "UPDATE riskops_auditverification SET ok = true",
                "ALTER TABLE riskops_auditevent DISABLE TRIGGER USER",
                "CREATE TABLE riskops_shadow (id int)",
                "DROP TABLE riskops_auditevent",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege) as exc:
                    app.execute(statement)
                denied.append(str(exc.value).splitlines()[0])
            # The sealer's columns: granted, and the trigger still refuses all but their one-time fill.
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as exc:
                app.execute("UPDATE riskops_auditevent SET chain_seq = chain_seq + 10 WHERE id = %s", [sealed[0]])
            denied.append(str(exc.value).splitlines()[0])
        assert denied == [
            "permission denied for table riskops_auditevent",
            "permission denied for table riskops_auditevent",
            "permission denied for table riskops_auditevent",
            "permission denied for table riskops_auditcheckpoint",
            "permission denied for table riskops_auditverification",
            "must be owner of table riskops_auditevent",
            "permission denied for schema public",
            "must be owner of table riskops_auditevent",
            "riskops_auditevent is append-only: UPDATE refused",
        ]
        # The sealer and the verification run as the runtime role.
        with connection.cursor() as cur:
            cur.execute(f'SET ROLE "{role}"')
        try:
            assert audit_seal() == 1
            assert audit_checkpoint() is not None
            assert audit_verify(by="app").ok
        finally:
            with connection.cursor() as cur:
                cur.execute("RESET ROLE")
    finally:
        with connection.cursor() as cur:
            cur.execute(f'DROP OWNED BY "{role}"')
            cur.execute(f'DROP ROLE "{role}"')


def test_make_run_connects_the_console_as_the_runtime_role_on_the_same_server():
    from scripts.run import runtime_database_url

    embedded = "postgresql://postgres@/riskops?host=/srv/var/pg&port=5432"
    assert (
        runtime_database_url({"DATABASE_URL": embedded})
        == "postgresql://riskops_app@/riskops?host=/srv/var/pg&port=5432"
    )
    assert runtime_database_url(
        {
            "DATABASE_URL": "postgresql://owner:s3cret@db:5433/risk",
            "DATABASE_APP_ROLE": "app",
            "DATABASE_APP_PASSWORD": "p@ss",
        }
    ) == ("postgresql://app:p%40ss@db:5433/risk")
    # With the owner named apart, DATABASE_URL is the runtime URL as given.
    given = {"DATABASE_URL": "postgresql://app@db/risk", "DATABASE_OWNER_URL": "postgresql://owner@db/risk"}
    assert runtime_database_url(given) == "postgresql://app@db/risk"
