"""The audit trail's hash chain: sealing, signed checkpoints, verification, the maintenance procedure.

Writers only INSERT (`riskops.core.audit.audit_insert`) and pay nothing for the chain: the events of concurrent
transactions are ordered by a single sealer (`audit_seal`, from beat every few seconds and before a verification),
which takes the committed events it has not sealed yet in id order and fills, once, their content hash, sequence
number, predecessor's hash and chain hash. The database lets that one-time fill through and refuses every other
UPDATE, DELETE and TRUNCATE (migration riskops 0010) unless `audit_maintenance` is in effect. docs/AUDIT.md explains
the design, the maintenance procedure and what a DBA runs.

- content hash = SHA-256 of `canonical_content(event)` (each column as `<length>:<text>;`, NULL as `~;`, time as
  microseconds since the epoch, JSON as PostgreSQL's jsonb text);
- chain hash = SHA-256 of (sequence number as 8 bytes big-endian, the predecessor's chain hash, the content hash);
  the first event's predecessor hash is 32 zero bytes;
- checkpoint signature = HMAC-SHA256 over "riskops-audit-checkpoint:<seq>:<chain hash hex>" with
  settings.AUDIT_CHECKPOINT_KEY.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction
from django.utils import timezone
from psycopg import sql

from riskops.models import AuditCheckpoint, AuditEvent, AuditVerification

GENESIS = bytes(32)
# pg_advisory_lock key of the sealer ("audit" in ASCII): one sealer at a time, and none during maintenance.
SEALER_LOCK = 0x6175646974
SEAL_BATCH = 5000
VERIFY_CHUNK = 5000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

EVENTS = AuditEvent._meta.db_table
# The columns the content hash covers, in order; `before`/`after` are read as jsonb's text.
CONTENT_COLUMNS = (
    "id",
    "at",
    "actor_kind",
    "actor_user_id",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "account_id",
    "before",
    "after",
    "reason",
    # Added after the first events were sealed: in the content only when set, so those events' hashes still hold.
    "client_address",
)
OPTIONAL_COLUMNS = 1  # the last columns of CONTENT_COLUMNS, left out of the content when NULL
_SELECT_CONTENT = sql.SQL(", ").join(
    sql.SQL("{}::text").format(sql.Identifier(c)) if c in ("before", "after") else sql.Identifier(c)
    for c in CONTENT_COLUMNS
)


def _field(value: Any) -> str:
    if value is None:
        return "~;"
    if isinstance(value, datetime):
        value = (value - EPOCH) // MICROSECOND
    text = str(value)
    return f"{len(text)}:{text};"


def canonical_content(row: tuple[Any, ...]) -> str:
    """The canonical text of an event: its CONTENT_COLUMNS values in order, each length-prefixed (the optional last
    ones only when set)."""
    required = len(CONTENT_COLUMNS) - OPTIONAL_COLUMNS
    return "".join(_field(v) for v in row[:required]) + "".join(_field(v) for v in row[required:] if v is not None)


def content_hash(row: tuple[Any, ...]) -> bytes:
    return hashlib.sha256(canonical_content(row).encode()).digest()


def chain_hash(seq: int, prev: bytes, content: bytes) -> bytes:
    return hashlib.sha256(seq.to_bytes(8, "big") + prev + content).digest()


def checkpoint_signature(seq: int, head: bytes) -> str:
    message = f"riskops-audit-checkpoint:{seq}:{head.hex()}".encode()
    return hmac.new(settings.AUDIT_CHECKPOINT_KEY.encode(), message, hashlib.sha256).hexdigest()


@contextmanager
def audit_maintenance(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """The documented maintenance procedure (docs/AUDIT.md), for the table owner only: lifts the audit tables'
    append-only triggers on this connection and keeps the sealer away until it ends. For emptying a test or demo
    database (`flush`, `seed_demo --reset`) and a DBA's repairs; anything it changes in a sealed event is reported
    by `verify_audit`."""
    conn = connections[using]
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s), set_config('riskops.audit_maintenance', 'on', false)", [SEALER_LOCK])
    try:
        yield
    finally:
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT set_config('riskops.audit_maintenance', '', false), pg_advisory_unlock(%s)", [SEALER_LOCK]
                )
        except DatabaseError:
            # A failed transaction refuses commands until its rollback: ending the session ends both.
            conn.close()
            raise


def _head(cur: Any) -> tuple[int, bytes]:
    cur.execute(
        sql.SQL(
            "SELECT chain_seq, chain_hash FROM {} WHERE chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1"
        ).format(sql.Identifier(EVENTS))
    )
    row = cur.fetchone()
    return (row[0], bytes(row[1])) if row else (0, GENESIS)


def _seal_batch(limit: int, after_id: int) -> tuple[int, int] | None:
    """Seal up to `limit` events of ids above `after_id` in one transaction: how many and the last id; None when
    another sealer (or maintenance) holds the lock."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_xact_lock(%s)", [SEALER_LOCK])
        if not cur.fetchone()[0]:
            return None
        seq, prev = _head(cur)
        cur.execute(
            sql.SQL("SELECT {} FROM {} WHERE chain_seq IS NULL AND id > %s ORDER BY id LIMIT %s").format(
                _SELECT_CONTENT, sql.Identifier(EVENTS)
            ),
            [after_id, limit],
        )
        rows = cur.fetchall()
        if not rows:
            return 0, after_id
        ids, seqs, contents, prevs, heads = [], [], [], [], []
        for row in rows:
            seq += 1
            content = content_hash(row)
            head = chain_hash(seq, prev, content)
            ids.append(row[0])
            seqs.append(seq)
            contents.append(content)
            prevs.append(prev)
            heads.append(head)
            prev = head
        cur.execute(
            sql.SQL(
                "UPDATE {} e SET content_hash = s.content, chain_seq = s.seq, prev_hash = s.prev, chain_hash = s.head "
                "FROM unnest(%(ids)s::bigint[], %(seqs)s::bigint[], %(contents)s::bytea[], %(prevs)s::bytea[], "
                "%(heads)s::bytea[]) AS s(id, seq, content, prev, head) WHERE e.id = s.id"
            ).format(sql.Identifier(EVENTS)),
            {"ids": ids, "seqs": seqs, "contents": contents, "prevs": prevs, "heads": heads},
        )
        return len(rows), ids[-1]


def audit_seal(*, batch: int = SEAL_BATCH) -> int:
    """Chain every committed event not chained yet, in id order; return how many. Safe to run anywhere, any number
    of times at once: one sealer runs, the others return 0 at once."""
    # Within a run, each batch starts after the last one's ids: the index entries of the events just sealed are
    # dead until the next scan or vacuum clears them, and every batch from the start re-read them all (quadratic).
    # An event committed later with a lower id waits for the next run.
    sealed, after_id = 0, 0
    while True:
        result = _seal_batch(batch, after_id)
        if result is None:
            return sealed
        n, after_id = result
        sealed += n
        if n < batch:
            return sealed


def audit_checkpoint(*, now: datetime | None = None) -> AuditCheckpoint | None:
    """Seal, then sign the chain's head unless the last checkpoint already names it; the new checkpoint or None."""
    audit_seal()
    with connection.cursor() as cur:
        seq, head = _head(cur)
    if seq == 0:
        return None
    last = AuditCheckpoint.objects.order_by("-id").first()
    if last is not None and last.chain_seq == seq and bytes(last.chain_hash) == head:
        return None
    return AuditCheckpoint.objects.create(
        at=now or timezone.now(), chain_seq=seq, chain_hash=head, signature=checkpoint_signature(seq, head)
    )


@dataclass
class Verification:
    ok: bool = True
    events_checked: int = 0
    checkpoints_checked: int = 0
    first_bad_event_id: int | None = None
    first_bad_seq: int | None = None
    problem: str = ""

    def fail(self, problem: str, *, event_id: int | None = None, seq: int | None = None) -> None:
        self.ok, self.problem, self.first_bad_event_id, self.first_bad_seq = False, problem, event_id, seq


def _checkpoints(after_id: int, limit: int) -> list[AuditCheckpoint]:
    return list(AuditCheckpoint.objects.filter(id__gt=after_id).order_by("id")[:limit])


def _signatures_match(result: Verification) -> bool:
    """Check every checkpoint's signature, in keyset chunks."""
    last = 0
    while chunk := _checkpoints(last, VERIFY_CHUNK):
        for cp in chunk:
            if not hmac.compare_digest(cp.signature, checkpoint_signature(cp.chain_seq, bytes(cp.chain_hash))):
                result.fail(f"checkpoint #{cp.pk} (seq {cp.chain_seq}): its signature does not match")
                return False
        last = chunk[-1].pk
    return True


def _walk_events(result: Verification) -> tuple[int, bytes]:
    """Walk the chain in sequence order, in keyset chunks; stop at the first event that does not match."""
    seq, prev = 0, GENESIS
    query = sql.SQL(
        "SELECT {}, chain_seq, content_hash, prev_hash, chain_hash FROM {} "
        "WHERE chain_seq > %s ORDER BY chain_seq LIMIT %s"
    ).format(_SELECT_CONTENT, sql.Identifier(EVENTS))
    while True:
        with connection.cursor() as cur:
            cur.execute(query, [seq, VERIFY_CHUNK])
            rows = cur.fetchall()
        if not rows:
            return seq, prev
        # The checkpoints that name a position in this stretch of the chain.
        marks: dict[int, list[AuditCheckpoint]] = {}
        for cp in AuditCheckpoint.objects.filter(chain_seq__gt=seq, chain_seq__lte=rows[-1][-4]):
            marks.setdefault(cp.chain_seq, []).append(cp)
        for row in rows:
            event_id, (row_seq, stored_content, stored_prev, stored_head) = row[0], row[-4:]
            if row_seq != seq + 1:
                missing = f"seq {seq + 1}" if row_seq == seq + 2 else f"seq {seq + 1} to {row_seq - 1}"
                result.fail(
                    f"event #{event_id} (seq {row_seq}): its predecessor is missing ({missing}: deleted events)",
                    event_id=event_id,
                    seq=row_seq,
                )
                return seq, prev
            content = content_hash(row[: len(CONTENT_COLUMNS)])
            if bytes(stored_content) != content:
                result.fail(
                    f"event #{event_id} (seq {row_seq}): its content does not match its content hash (edited)",
                    event_id=event_id,
                    seq=row_seq,
                )
                return seq, prev
            if bytes(stored_prev) != prev:
                result.fail(
                    f"event #{event_id} (seq {row_seq}): its previous hash does not match event seq {seq}'s chain hash",
                    event_id=event_id,
                    seq=row_seq,
                )
                return seq, prev
            head = chain_hash(row_seq, prev, content)
            if bytes(stored_head) != head:
                result.fail(
                    f"event #{event_id} (seq {row_seq}): its chain hash does not match its content and predecessor",
                    event_id=event_id,
                    seq=row_seq,
                )
                return seq, prev
            for cp in marks.get(row_seq, ()):
                result.checkpoints_checked += 1
                if bytes(cp.chain_hash) != head:
                    result.fail(
                        f"event #{event_id} (seq {row_seq}): the chain up to it differs from signed checkpoint "
                        f"#{cp.pk} (rewritten)",
                        event_id=event_id,
                        seq=row_seq,
                    )
                    return seq, prev
            seq, prev = row_seq, head
            result.events_checked += 1


def audit_verify(*, by: str, seal: bool = True) -> AuditVerification:
    """Check every checkpoint's signature, then walk the chain: every content hash, link and checkpoint. Records
    the verification (append-only) and returns it."""
    started = timezone.now()
    if seal:
        audit_seal()
    result = Verification()
    if _signatures_match(result):
        seq, _head_hash = _walk_events(result)
        if result.ok:
            beyond = AuditCheckpoint.objects.filter(chain_seq__gt=seq).order_by("chain_seq").first()
            if beyond is not None:
                result.fail(
                    f"checkpoint #{beyond.pk} names seq {beyond.chain_seq}, beyond the chain's last event "
                    f"(seq {seq}): events deleted",
                    seq=seq + 1,
                )
    return AuditVerification.objects.create(
        started_at=started,
        finished_at=timezone.now(),
        by=by[:150],
        ok=result.ok,
        events_checked=result.events_checked,
        checkpoints_checked=result.checkpoints_checked,
        first_bad_event_id=result.first_bad_event_id,
        first_bad_seq=result.first_bad_seq,
        problem=result.problem,
    )


def os_user() -> str:
    try:
        return os.getlogin()
    except OSError:
        import getpass

        return getpass.getuser()


@dataclass(frozen=True)
class ChainState:
    last_verification: AuditVerification | None
    last_checkpoint: AuditCheckpoint | None
    unsealed: int  # at most UNSEALED_COUNTED + 1: "more than UNSEALED_COUNTED"


# The count of events waiting for the sealer stops here: with beat down for a day, millions could wait, and counting
# 2M entries of the partial index took 35 ms of every audit page (bench/audit_page.py, whose events are not sealed).
UNSEALED_COUNTED = 10_000


def chain_state() -> ChainState:
    """For the audit page: the last verification, the last checkpoint and how many events wait for the sealer
    (3 queries; the count reads the small partial index of unsealed events, up to UNSEALED_COUNTED + 1)."""
    return ChainState(
        last_verification=AuditVerification.objects.order_by("-id").first(),
        last_checkpoint=AuditCheckpoint.objects.order_by("-id").first(),
        unsealed=AuditEvent.objects.filter(chain_seq__isnull=True)[: UNSEALED_COUNTED + 1].count(),
    )
