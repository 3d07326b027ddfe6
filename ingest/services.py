"""Storing what upstream sends: borrowers and lines, events, repayments and limit changes, as one batch.

`events_ingest` is the one way in, for the API, `import_events` and the upload page. A batch is stored in kind
order (`parsing.ORDER`: an account before its events, a drawdown before its installments, an installment before
its repayments), each kind set-based: one statement inserts all its rows with ON CONFLICT DO NOTHING on the
upstream id, and the rows it did not insert are compared with what is stored, so a re-sent event is a duplicate
(nothing happens) and the same upstream id with another body is a conflict (an error for that row). What an event
implies for what the engine reads follows in the same transaction, for the rows inserted only: a drawdown adds
to the line's outstanding amount, a repayment to its installment's paid amount (paid in full: `paid_at`) and back
to the line's available amount, a profile update changes the borrower's declared data, a limit change goes
through `lines_change_limit`. The lines touched are marked for the engine (`accounts.services.touched`) unless
the batch is a backfill. The batch's record (`IngestBatch`) and one audit event say what came in.

All or nothing (the default): any error rolls the whole batch back. Partial: the rows without errors stay.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection, models, transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from accounts.models import (
    Borrower,
    CreditInquiry,
    CreditLine,
    Drawdown,
    ExternalIncomeRecord,
    Installment,
    LimitChange,
    ProfileUpdate,
    Repayment,
    Transfer,
)
from accounts.services.lines import lines_change_limit
from accounts.services.touched import lines_touch
from ingest.models import BatchMode, BatchStatus, IngestBatch
from ingest.parsing import KINDS, ORDER, Item, RowError, parse_item
from riskops.core.audit import Actor, Change, audit_write
from riskops.core.roles import INGEST_EVENTS, require
from riskops.core.sql import to_json

MAX_ITEMS = 10_000
ACCOUNT_LOCKS = 7001  # the advisory-lock namespace of account creation

EVENT_MODELS: dict[str, type[models.Model]] = {
    "profile_update": ProfileUpdate,
    "credit_inquiry": CreditInquiry,
    "drawdown": Drawdown,
    "installment": Installment,
    "transfer": Transfer,
    "income_record": ExternalIncomeRecord,
    "repayment": Repayment,
    "limit_change": LimitChange,
}
# A model's field -> the item's, where they differ (`drawdown` and `installment`, references by upstream id, are
# resolved to ids before the insert: `_resolve`).
_ITEM_KEY = {"line": "account"}


@dataclass
class Outcome:
    """What became of a batch: counts by kind, the errors, the lines touched."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)
    touched: set[int] = field(default_factory=set)
    # Money drawn (positive) or repaid (negative) per line, applied once for the batch (`_lines_move`).
    moved: defaultdict[int, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    def count(self, kind: str, what: str, n: int = 1) -> None:
        kind_counts = self.counts.setdefault(kind, {"received": 0, "stored": 0, "duplicate": 0, "failed": 0})
        kind_counts[what] += n

    def fail(self, item: Item, name: str, template: str, **params: Any) -> None:
        self.errors.append(RowError(item.index, name, template, params))
        self.count(item.kind.name, "failed")


def events_ingest(
    *,
    items: list[Any],
    actor: Actor,
    mode: str = BatchMode.ALL,
    backfill: bool = False,
    source: str,
    file_name: str = "",
    first_index: int = 0,
    job_id: int | None = None,
) -> IngestBatch:
    """Validate and store a batch of items (at most MAX_ITEMS); return its record, saved whatever the outcome.

    `first_index` numbers the items in errors (0 for an API batch; a file's line number for a chunk of a file).
    In `dry_run` mode everything is checked, against the database too, and nothing is kept."""
    if actor.user is not None:  # an operator or a token; a job's batches and commands act as themselves
        require(actor, INGEST_EVENTS, "This account may not send events")
    started, at = time.monotonic(), timezone.now()
    if len(items) > MAX_ITEMS:
        raise ValueError(f"at most {MAX_ITEMS} items per batch")
    outcome = Outcome()
    parsed: list[Item] = []
    for offset, raw in enumerate(items):
        item, errors = parse_item(first_index + offset, raw)
        kind = item.kind.name if item else (raw.get("kind") if isinstance(raw, dict) else None)
        if item is not None:
            parsed.append(item)
            outcome.count(item.kind.name, "received")
        else:
            outcome.errors.extend(errors)
            if isinstance(kind, str) and kind in KINDS:
                outcome.count(kind, "received")
                outcome.count(kind, "failed")
    # One transaction, one commit: the rows and the batch's record (a rejected or checked batch's rows are rolled
    # back to the savepoint, its record stays).
    with transaction.atomic():
        keep = _store_checked(parsed, outcome, mode=mode, backfill=backfill, actor=actor, at=at)
        return _record(items, outcome, keep, mode=mode, backfill=backfill, source=source, file_name=file_name,
                       first_index=first_index, job_id=job_id, actor=actor, at=at, started=started)  # fmt: skip


def _store_checked(
    parsed: list[Item], outcome: Outcome, *, mode: str, backfill: bool, actor: Actor, at: datetime
) -> bool:
    """Store what passed the checks, in a savepoint; return whether it is kept (all or nothing: no error)."""
    keep = mode == BatchMode.PARTIAL or (mode == BatchMode.ALL and not outcome.errors)
    if mode == BatchMode.DRY_RUN or keep:
        with transaction.atomic():
            _store(parsed, outcome, actor=actor, at=at)
            keep = mode == BatchMode.PARTIAL or (mode == BatchMode.ALL and not outcome.errors)
            if not keep:
                transaction.set_rollback(True)
            elif outcome.touched and not backfill:
                lines_touch(outcome.touched, at=at)
    if not keep:
        for kind_counts in outcome.counts.values():
            kind_counts["stored"] = 0
    return keep


def _record(
    items: list[Any],
    outcome: Outcome,
    keep: bool,
    *,
    mode: str,
    backfill: bool,
    source: str,
    file_name: str,
    first_index: int,
    job_id: int | None,
    actor: Actor,
    at: datetime,
    started: float,
) -> IngestBatch:
    stored = sum(c["stored"] for c in outcome.counts.values())
    status = (
        BatchStatus.CHECKED
        if mode == BatchMode.DRY_RUN
        else BatchStatus.REJECTED
        if not keep or (stored == 0 and outcome.errors)
        else BatchStatus.PARTIAL
        if outcome.errors
        else BatchStatus.STORED
    )
    outcome.errors.sort(key=lambda e: (e.index, e.field))
    batch = IngestBatch.objects.create(
        source=source,
        mode=mode,
        backfill=backfill,
        status=status,
        actor_user=actor.user,
        actor_label=actor.label[:100],
        file_name=file_name[:200],
        first_row=first_index,
        received_at=at,
        items=len(items),
        counts=outcome.counts,
        errors=[e.as_record() for e in outcome.errors],
        duration_ms=round((time.monotonic() - started) * 1000),
        job_id=job_id,
    )
    if status in (BatchStatus.STORED, BatchStatus.PARTIAL):
        audit_write(
            actor=actor,
            at=at,
            changes=[
                Change(
                    "ingest.batch",
                    "ingest_batch",
                    batch.pk,
                    None,
                    after={"counts": outcome.counts, "backfill": backfill, "source": source},
                    reason=file_name[:200],
                )
            ],
        )
    return batch


def _store(items: list[Item], outcome: Outcome, *, actor: Actor, at: datetime) -> None:
    by_kind: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_kind[item.kind.name].append(item)
    accounts = _accounts_upsert(by_kind.pop("account", []), outcome, at=at)
    refs = {i.values["account"] for kind in by_kind.values() for i in kind} - accounts.keys()
    accounts |= dict(_by_keys(CreditLine, "account_no", ["id"], refs))
    for kind in ORDER[1:]:
        if kind == "limit_change":  # a new limit counts what is drawn: the batch's drawdowns and repayments first
            _lines_move(outcome.moved, at=at)
            outcome.moved.clear()
        rows = []
        for item in by_kind.get(kind, []):
            line_id = accounts.get(item.values["account"])
            if line_id is None:
                outcome.fail(item, "account", gettext_noop("unknown account '%(ref)s'"), ref=item.values["account"])
            else:
                item.values["account"] = line_id
                rows.append(item)
        if rows:
            inserted = _events_insert(kind, rows, outcome)
            apply = _APPLY.get(kind)
            if apply is not None:
                apply(inserted, outcome, actor=actor, at=at)
            outcome.touched.update(i.values["account"] for i in inserted)
    _lines_move(outcome.moved, at=at)


# --- accounts


def _accounts_upsert(items: list[Item], outcome: Outcome, *, at: datetime) -> dict[str, int]:
    """Create the lines (and borrowers) not known yet, update the borrowers of those known; return their ids by
    reference. Several items for one account apply in order."""
    merged: dict[str, Item] = {}
    for item in items:
        if item.values["account"] in merged:
            merged[item.values["account"]].values.update(item.values)
            outcome.count("account", "duplicate")
        else:
            merged[item.values["account"]] = Item(item.index, item.kind, dict(item.values))
    if not merged:
        return {}
    refs = sorted(merged)
    with connection.cursor() as cur:
        # Two batches creating the same account wait for each other here, in a fixed order (no deadlock). By 64
        # buckets of references, not one lock per account: a lock each for 10,000 new accounts overflows the
        # server's lock table ("out of shared memory"); batches creating accounts in the same bucket take turns.
        cur.execute(
            "SELECT pg_advisory_xact_lock(%s, b) FROM"
            " (SELECT DISTINCT abs(hashtext(r)) %% 64 AS b FROM unnest(%s::text[]) AS r ORDER BY 1) AS buckets",
            [ACCOUNT_LOCKS, refs],
        )
    known = {
        line.account_no: line
        for line in CreditLine.objects.select_for_update(of=("self",))
        .select_related("borrower")
        .filter(account_no__in=refs)
    }
    new = [merged[r] for r in refs if r not in known]
    ids = {r: line.pk for r, line in known.items()}
    for item in new:
        if "limit" not in item.values:
            outcome.fail(item, "limit", gettext_noop("this field is required for a new account"))
    new = [i for i in new if "limit" in i.values]
    borrowers = Borrower.objects.bulk_create([_borrower(Borrower(), i.values, at=i.values["occurred_at"]) for i in new])
    lines = CreditLine.objects.bulk_create(
        [
            CreditLine(
                account_no=i.values["account"],
                borrower=b,
                limit=i.values["limit"],
                available=i.values["limit"],
                opened_at=i.values["occurred_at"],
                updated_at=at,
            )
            for i, b in zip(new, borrowers, strict=True)
        ]
    )
    for item, line in zip(new, lines, strict=True):
        ids[item.values["account"]] = line.pk
        outcome.count("account", "stored")
    changed: list[Borrower] = []
    for ref, line in known.items():
        item = merged[ref]
        if "limit" in item.values and item.values["limit"] != line.limit:
            outcome.fail(item, "limit", gettext_noop("an existing account's limit changes by a limit_change event"))
            del ids[ref]
            continue
        before = [getattr(line.borrower, f) for f in _PERSONAL]
        _borrower(line.borrower, item.values, at=None)
        if [getattr(line.borrower, f) for f in _PERSONAL] != before:
            changed.append(line.borrower)
            outcome.touched.add(line.pk)
            outcome.count("account", "stored")
        else:
            outcome.count("account", "duplicate")
    if changed:
        Borrower.objects.bulk_update(changed, _PERSONAL)
    return ids


_PERSONAL = [
    "name",
    "phone",
    "national_id",
    "city",
    "occupation",
    "employer",
    "declared_monthly_income",
    "time_zone",
]


def _borrower(borrower: Borrower, values: dict[str, Any], *, at: datetime | None) -> Borrower:
    for name in _PERSONAL:
        key = "monthly_income" if name == "declared_monthly_income" else name
        if key in values:
            setattr(borrower, name, values[key])
    if at is not None:
        borrower.profile_updated_at = borrower.created_at = at
    return borrower


# --- events


def _rows(kind: str, items: list[Item]) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """The event table's columns (all but the id, from the model), those of them the upstream sends (what a
    re-sent event is compared on: an installment's paid state is ours, not the upstream's), and the items as rows
    by column; what an item does not hold is the field's default (an installment's paid amount, 0)."""
    fields = [f for f in EVENT_MODELS[kind]._meta.concrete_fields if not f.primary_key]
    spec = [(str(f.column), _ITEM_KEY.get(f.name, f.name), None if f.null else f.get_default()) for f in fields]
    sent = [c for c, k, _d in spec if k in KINDS[kind].parsers]
    return [c for c, _k, _d in spec], sent, [{c: i.values.get(k, d) for c, k, d in spec} for i in items]


def _events_insert(kind: str, items: list[Item], outcome: Outcome) -> list[Item]:
    """Insert the items new by upstream id; count the others as duplicates or report them as conflicts. Returns
    the items inserted, with their ids (`values["id"]`)."""
    first: dict[str, Item] = {}
    for item in items:
        seen = first.get(item.values["upstream_id"])
        if seen is None:
            first[item.values["upstream_id"]] = item
        elif seen.values == item.values:
            outcome.count(kind, "duplicate")
        else:
            outcome.fail(item, "upstream_id", IN_BATCH, **_conflict(seen.values, item.values))
    items = list(first.values())
    _resolve(kind, items, outcome)
    items = [i for i in items if "_failed" not in i.values]
    if not items:
        return []
    table = EVENT_MODELS[kind]._meta.db_table
    columns, sent, rows = _rows(kind, items)
    names = ", ".join(map(connection.ops.quote_name, columns))
    with connection.cursor() as cur:
        # The rows as one JSON text, read by PostgreSQL into the table's own row type: far cheaper to send than
        # arrays of each column, which psycopg adapts value by value.
        cur.execute(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM json_populate_recordset(NULL::{table}, %s::json)"  # noqa: S608 - names from the models, values bound
            " ON CONFLICT (upstream_id) DO NOTHING RETURNING upstream_id, id",
            [to_json(rows)],
        )
        new = dict(cur.fetchall())
        rest = [i for i in items if i.values["upstream_id"] not in new]
        if rest:
            cur.execute(
                f"SELECT {', '.join(map(connection.ops.quote_name, sent))} FROM {table}"  # noqa: S608 - as above
                " WHERE upstream_id = ANY(%s)",
                [[i.values["upstream_id"] for i in rest]],
            )
            stored = {r[sent.index("upstream_id")]: dict(zip(sent, r, strict=True)) for r in cur.fetchall()}
    inserted = []
    for row, item in enumerate(items):
        if item.values["upstream_id"] in new:
            item.values["id"] = new[item.values["upstream_id"]]
            inserted.append(item)
            outcome.count(kind, "stored")
            continue
        theirs, mine = stored[item.values["upstream_id"]], {c: rows[row][c] for c in sent}
        if theirs == mine:
            outcome.count(kind, "duplicate")
        else:
            outcome.fail(item, "upstream_id", RECEIVED, **_conflict(theirs, mine))
    return inserted


IN_BATCH = gettext_noop("upstream id '%(id)s' is already in this batch with a different body (%(fields)s)")
RECEIVED = gettext_noop("upstream id '%(id)s' was received before with a different body (%(fields)s)")


def _conflict(theirs: dict[str, Any], mine: dict[str, Any]) -> dict[str, str]:
    differ = sorted(k.removesuffix("_id") if k != "upstream_id" else k for k in mine if theirs.get(k) != mine[k])
    return {"id": str(mine["upstream_id"]), "fields": ", ".join(differ)}


_UNKNOWN = {
    "drawdown": gettext_noop("unknown drawdown '%(ref)s'"),
    "installment": gettext_noop("unknown installment '%(ref)s'"),
}
_ELSEWHERE = {
    "drawdown": gettext_noop("drawdown '%(ref)s' belongs to another account"),
    "installment": gettext_noop("installment '%(ref)s' belongs to another account"),
}


def _resolve(kind: str, items: list[Item], outcome: Outcome) -> None:
    """Turn references by upstream id (an installment's drawdown, a repayment's installment) into ids; a reference
    to something unknown or of another account fails the item. A repayment may not pay more than is still due."""
    if kind not in ("installment", "repayment"):
        return
    name, model = ("drawdown", Drawdown) if kind == "installment" else ("installment", Installment)
    refs = {i.values[name] for i in items if name in i.values}
    if not refs:
        return
    again: set[str] = set()
    if kind == "repayment":
        # What is still due, locked: two batches paying the same installment do not both see it unpaid. A
        # repayment received before is a duplicate (or a conflict), whatever is due now.
        rows = _by_keys(model, "upstream_id", ["id", "line_id", "amount", "paid_amount"], refs, lock=True)
        again = {r[0] for r in _by_keys(Repayment, "upstream_id", [], [i.values["upstream_id"] for i in items])}
    else:
        rows = _by_keys(model, "upstream_id", ["id", "line_id"], refs)
    found = {r[0]: r[1:] for r in rows}
    due: dict[int, Decimal] = {}
    for item in items:
        ref = item.values.get(name)
        if ref is None:
            continue
        target = found.get(ref)
        if target is None:
            problem: tuple[str, str, dict[str, Any]] = (name, _UNKNOWN[name], {"ref": ref})
        elif target[1] != item.values["account"]:
            problem = (name, _ELSEWHERE[name], {"ref": ref})
        elif (
            kind == "repayment"
            and item.values["upstream_id"] not in again
            and item.values["amount"] > due.setdefault(target[0], target[2] - target[3])
        ):
            problem = ("amount", gettext_noop("is more than the %(due)s still due on installment '%(ref)s'"),
                       {"due": str(due[target[0]]), "ref": ref})  # fmt: skip
        else:
            item.values[name] = target[0]
            if kind == "repayment" and item.values["upstream_id"] not in again:
                due[target[0]] -= item.values["amount"]
            continue
        outcome.fail(item, problem[0], problem[1], **problem[2])
        item.values["_failed"] = True


def _by_keys(
    model: type[models.Model], key: str, columns: list[str], keys: Iterable[str], *, lock: bool = False
) -> list[tuple[Any, ...]]:
    """(key, *columns) of the rows whose `key` is among `keys`: one array parameter (an `__in` of thousands of
    values costs Django a resolve per value and PostgreSQL a longer plan)."""
    wanted = sorted(set(keys))
    if not wanted:
        return []
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT {', '.join([key, *columns])} FROM {model._meta.db_table} WHERE {key} = ANY(%s)"  # noqa: S608 - names from the models, values bound
            + (" FOR UPDATE" if lock else ""),
            [wanted],
        )
        return cur.fetchall()


# --- what stored events imply


def _latest_by_line(items: list[Item]) -> dict[int, Item]:
    """The latest of the items for each line (by when they happened): what a profile or a limit becomes."""
    return {i.values["account"]: i for i in sorted(items, key=lambda i: i.values["occurred_at"])}


def _drawdowns_apply(items: list[Item], outcome: Outcome, *, actor: Actor, at: datetime) -> None:
    for i in items:
        outcome.moved[i.values["account"]] += i.values["amount"]


def _repayments_apply(items: list[Item], outcome: Outcome, *, actor: Actor, at: datetime) -> None:
    paid = _sums((i.values["installment"], i.values["amount"]) for i in items)
    last: dict[int, datetime] = {}
    for i in items:
        last[i.values["installment"]] = max(
            i.values["occurred_at"], last.get(i.values["installment"], i.values["occurred_at"])
        )
    with connection.cursor() as cur:
        cur.execute(
            f"""
            UPDATE {Installment._meta.db_table} AS i
            SET paid_amount = i.paid_amount + p.amount,
                paid_at = CASE WHEN i.paid_at IS NULL AND i.paid_amount + p.amount >= i.amount THEN p.at
                               ELSE i.paid_at END
            FROM unnest(%(ids)s::bigint[], %(amounts)s::numeric[], %(ats)s::timestamptz[]) AS p(id, amount, at)
            WHERE i.id = p.id
            """,  # noqa: S608 - table from the model, values bound
            {"ids": list(paid), "amounts": list(paid.values()), "ats": [last[k] for k in paid]},
        )
    for i in items:
        outcome.moved[i.values["account"]] -= i.values["amount"]


def _sums(pairs: Iterable[tuple[int, Decimal]]) -> dict[int, Decimal]:
    sums: dict[int, Decimal] = defaultdict(Decimal)
    for key, value in pairs:
        sums[key] += value
    return dict(sums)


def _lines_move(drawn: Mapping[int, Decimal], *, at: datetime) -> None:
    """Money drawn (positive) or repaid (negative) per line: the outstanding amount moves by it, the available
    amount the other way, within the limit and never below zero (a frozen line keeps its amounts; its status is
    what stops it being used)."""
    if not drawn:
        return
    with connection.cursor() as cur:
        cur.execute(
            f"""
            UPDATE {CreditLine._meta.db_table} AS l
            SET outstanding = greatest(0, l.outstanding + d.amount),
                available = greatest(0, least(l."limit" - greatest(0, l.outstanding + d.amount), l.available - d.amount)),
                updated_at = %(at)s
            FROM unnest(%(ids)s::bigint[], %(amounts)s::numeric[]) AS d(id, amount)
            WHERE l.id = d.id
            """,  # noqa: S608 - table from the model, values bound
            {"ids": list(drawn), "amounts": list(drawn.values()), "at": at},
        )


def _profile_updates_apply(items: list[Item], outcome: Outcome, *, actor: Actor, at: datetime) -> None:
    latest = _latest_by_line(items)
    with connection.cursor() as cur:
        cur.execute(
            f"""
            UPDATE {Borrower._meta.db_table} AS b
            SET employer = COALESCE(u.employer, b.employer),
                declared_monthly_income = COALESCE(u.income, b.declared_monthly_income),
                profile_updated_at = u.at
            FROM unnest(%(lines)s::bigint[], %(employers)s::text[], %(incomes)s::numeric[], %(ats)s::timestamptz[])
                 AS u(line_id, employer, income, at)
            JOIN {CreditLine._meta.db_table} l ON l.id = u.line_id
            WHERE b.id = l.borrower_id AND u.at >= b.profile_updated_at
            """,  # noqa: S608 - tables from the models, values bound
            {
                "lines": list(latest),
                "employers": [i.values.get("employer") for i in latest.values()],
                "incomes": [i.values.get("monthly_income") for i in latest.values()],
                "ats": [i.values["occurred_at"] for i in latest.values()],
            },
        )


def _limit_changes_apply(items: list[Item], outcome: Outcome, *, actor: Actor, at: datetime) -> None:
    latest = _latest_by_line(items)
    for reason in {i.values.get("reason", "") for i in latest.values()}:
        lines_change_limit(
            limits={k: i.values["limit"] for k, i in latest.items() if i.values.get("reason", "") == reason},
            actor=actor,
            reason=f"upstream: {reason}" if reason else "upstream",
            at=at,
            notify=False,
        )


_APPLY = {
    "drawdown": _drawdowns_apply,
    "repayment": _repayments_apply,
    "profile_update": _profile_updates_apply,
    "limit_change": _limit_changes_apply,
}
