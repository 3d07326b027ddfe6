"""Every change of a credit line's status or limits: freeze, cut the available amount, unfreeze, change the limit.

Each is set-based (a single account is a batch of one) and takes two statements:
1. `_lock` locks the lines in the state the change applies to and reads what the change needs;
2. `_write` writes the change with all it implies, in one statement of data-modifying CTEs: the lines, their
   history, their audit events, the borrowers' messages, and for an unfreeze the overturned signals with their
   suppressions and, for a job, the resolved cases.
What a line becomes and what its message says is decided in Python between the two, once for every caller: the
engine, a reviewer's decision, an appeal's, a job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.hooks import link_for_borrower, links_for_borrowers
from accounts.models import (
    Case,
    CaseStatus,
    CreditLine,
    Installment,
    LiftCause,
    LineChange,
    LineStatus,
    NotificationKind,
    Signal,
    SignalStatus,
)
from accounts.notifications import (
    REASON_ZH,
    TEMPLATES,
    Outgoing,
    money_text,
    notifications_queue,
    notifications_send_after_commit,
    outbox_insert,
    outbox_json,
)
from accounts.services import cases, signals
from riskops.core.audit import Actor, actor_params, audit_insert
from riskops.core.errors import DomainError
from riskops.core.sql import batch_params, id_range, in_batch, not_indexed, to_json

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
_LINE = CreditLine._meta.db_table
_HISTORY = LineChange._meta.db_table

# Why a job left a frozen line frozen (`lines_unfreeze(..., hold_for_review=True)`).
HELD_APPEAL = "appeal_open"
HELD_PROPOSAL = "proposal_pending"
HELD_FOUR_EYES = "four_eyes"


@dataclass(frozen=True)
class LineUpdate:
    """A line's change; amounts are Decimals to the cent (as the database gives them), written as their str()."""

    line_id: int
    status_before: str
    limit_before: Decimal
    available_before: Decimal
    status_after: str
    limit_after: Decimal
    available_after: Decimal
    reason: str = ""
    signal_id: int | None = None
    cause: str = ""  # LiftCause: "borrower" when the borrower's own action lifted it


def _lock(ids: Sequence[int], condition: str, *, columns: str = "", joins: str = "") -> list[tuple[Any, ...]]:
    """Lock the lines among `ids` that meet `condition`, in id order (the engine's order): rows of (id, status,
    limit, available, outstanding, *columns)."""
    with connection.cursor() as cur:
        cur.execute(
            f'SELECT l.id, l.status, l."limit", l.available, l.outstanding{columns} FROM {_LINE} l {joins}'  # noqa: S608 - table names from the models, values bound
            f" WHERE {in_batch('l.id', ids)} AND {condition} ORDER BY l.id FOR UPDATE OF l",
            batch_params(ids),
        )
        return cur.fetchall()


_LINES = f"""
    v AS MATERIALIZED (
        SELECT * FROM unnest(%(ids)s::bigint[], %(status_before)s::text[], %(limit_before)s::numeric[],
            %(available_before)s::numeric[], %(status_after)s::text[], %(limit_after)s::numeric[],
            %(available_after)s::numeric[], %(signal_ids)s::bigint[], %(causes)s::text[],
            ARRAY(SELECT t FROM json_array_elements_text(%(reasons)s::json) WITH ORDINALITY AS r(t, n) ORDER BY n),
            ARRAY(SELECT t FROM json_array_elements_text(%(fills)s::json) WITH ORDINALITY AS f(t, n) ORDER BY n),
            ARRAY(SELECT t FROM json_array_elements_text(%(links)s::json) WITH ORDINALITY AS k(t, n) ORDER BY n))
        AS v(line_id, status_before, limit_before, available_before, status_after, limit_after, available_after,
            signal_id, cause, reason, fill, link)
    ), l AS (
        UPDATE {_LINE} l SET status = v.status_after, "limit" = v.limit_after, available = v.available_after,
            frozen_since = CASE WHEN v.status_after = 'frozen' THEN COALESCE(l.frozen_since, %(at)s) END,
            updated_at = %(at)s
        FROM v WHERE l.id = v.line_id
        RETURNING l.id
    ), history AS (
        INSERT INTO {_HISTORY} (line_id, at, actor_kind, actor_user_id, kind, status_before, status_after,
            limit_before, limit_after, available_before, available_after, reason, signal_id, cause)
        SELECT v.line_id, %(at)s, %(actor_kind)s, %(actor_user)s::integer, %(kind)s, v.status_before, v.status_after,
            v.limit_before, v.limit_after, v.available_before, v.available_after, v.reason, v.signal_id, v.cause
        FROM v
    )"""  # noqa: S608 - table names from the models, values bound

# A line's audit event shows its status, limit and available amount before and after.
_LINE_AUDIT = """
    SELECT %(action)s::text, 'credit_line'::text, v.line_id, v.line_id,
        jsonb_build_object('status', v.status_before, 'limit', v.limit_before::text,
                           'available', v.available_before::text),
        jsonb_build_object('status', v.status_after, 'limit', v.limit_after::text, 'available', v.available_after::text),
        v.reason
    FROM v"""

# Messages that fill one template's one placeholder per line (`Filled`): the text comes with the line (`v.fill`).
_FILLED_MESSAGES = """
    SELECT v.line_id, %(fill_kind)s::text, %(dedupe_head)s || v.line_id || %(dedupe_tail)s,
        %(body_head)s || v.fill || %(body_mid)s || v.link || %(body_tail)s
    FROM v"""


@dataclass(frozen=True)
class Filled:
    """Each line's message: the template of `kind`, its one placeholder filled with `texts[line_id]` and its `{link}`
    with the line's status page (`links_for_borrowers`); the dedupe key `<dedupe>:<line id>:<time>` (what `Outgoing`
    would carry, built in the statement for a batch of thousands)."""

    kind: str
    dedupe: str
    texts: Mapping[int, str]


def _array(values: Iterable[object]) -> str:
    """A PostgreSQL array literal of numbers, ids or plain words (None is NULL)."""
    return "{" + ",".join("NULL" if v is None else str(v) for v in values) + "}"


def _write(
    updates: list[LineUpdate],
    *,
    kind: str,
    action: str,
    actor: Actor,
    at: datetime,
    messages: list[Outgoing] | Filled,
    overturn: str = "",
    change_reason: str = "",
    resolve_cases: str = "",
    keep_proposals: bool = False,
) -> None:
    """Write line changes and what follows from them in one statement.

    `messages`: one per line, as `Outgoing` (a body each) or `Filled` (one template, a text per line).
    `overturn`: overturn and suppress the lines' active signals of this action ("freeze", "cut"), for `change_reason`.
    `resolve_cases`: the outcome with which the lines' unresolved cases are resolved (jobs), also `change_reason`.
    The columns go in as arrays, one per column: a batch of thousands of lines in a few kB of parameters each.
    """
    if not updates:
        return
    ctes = [_LINES]
    audit = [_LINE_AUDIT]
    params: dict[str, Any] = {
        **actor_params(actor, at),
        "kind": kind,
        "action": action,
        "change_reason": change_reason,
        "ids": _array(u.line_id for u in updates),
        "status_before": _array(u.status_before for u in updates),
        "limit_before": _array(u.limit_before for u in updates),
        "available_before": _array(u.available_before for u in updates),
        "status_after": _array(u.status_after for u in updates),
        "limit_after": _array(u.limit_after for u in updates),
        "available_after": _array(u.available_after for u in updates),
        "signal_ids": _array(u.signal_id for u in updates),
        "causes": _array(u.cause or '""' for u in updates),
        "reasons": to_json([u.reason for u in updates]),
    }
    if isinstance(messages, Filled):
        head, rest = TEMPLATES[NotificationKind(messages.kind)].split(f"{{{_placeholder(messages.kind)}}}")
        mid, tail = rest.split("{link}") if "{link}" in rest else (rest, "")
        links = links_for_borrowers([u.line_id for u in updates]) if "{link}" in rest else {}
        params |= {
            "fills": to_json([messages.texts[u.line_id] for u in updates]),
            "links": to_json([links.get(u.line_id, "") for u in updates]),
            "body_mid": mid,
            "fill_kind": messages.kind,
            "dedupe_head": f"{messages.dedupe}:",
            "dedupe_tail": f":{at.isoformat()}",
            "body_head": head,
            "body_tail": tail,
        }
        ctes.append(f"messages AS ({outbox_insert(source=_FILLED_MESSAGES)})")
    else:
        params |= {
            "fills": to_json([""] * len(updates)),
            "links": to_json([""] * len(updates)),
            "messages": outbox_json(messages),
        }
        ctes.append(f"messages AS ({outbox_insert()})")
    if overturn:
        # The lines just unfrozen or restored (`l`) drive the signals' update, as they drive the cases'.
        lines = [u.line_id for u in updates]
        assert overturn in ("freeze", "cut")
        ctes.append(
            signals.overturn_ctes(
                f"s.line_id = l.id AND {id_range('s.line_id', lines)} AND s.action = '{overturn}'", joined="l"
            )
        )
        audit.append(signals.OVERTURN_AUDIT)
    if resolve_cases:
        ctes.append(cases.resolve_ctes([u.line_id for u in updates], keep_proposals=keep_proposals))
        audit.append(cases.RESOLVE_AUDIT)
        params["outcome"] = resolve_cases
    ctes.append(f"audit AS ({audit_insert(' UNION ALL '.join(audit))})")
    with connection.cursor() as cur:
        cur.execute(f"WITH {', '.join(ctes)} SELECT count(*) FROM l", params)  # noqa: S608 - table names from the models, values bound
    notifications_send_after_commit()


def _placeholder(kind: str) -> str:
    """The one placeholder of a template that `Filled` fills (besides the link)."""
    [name] = {part.split("}", 1)[0] for part in TEMPLATES[NotificationKind(kind)].split("{")[1:]} - {"link"}
    return name


def _reason_text(codes: str | Sequence[str]) -> str:
    """Every reason, in the borrower's words: "近期多头借贷、还款逾期"."""
    names = [REASON_ZH.get(c, "风险核查") for c in ([codes] if isinstance(codes, str) else codes)]
    return "、".join(dict.fromkeys(names)) or "风险核查"


def _transition(
    ids: Sequence[int],
    condition: str,
    become: Callable[[int, str, Decimal, Decimal, Decimal], tuple[str, Decimal, Decimal]],
    message: Callable[[LineUpdate], Outgoing] | None,
    *,
    kind: str,
    actor: Actor,
    at: datetime,
    reasons: Mapping[int, str],
    signal_by_line: Mapping[int, int] | None = None,
) -> list[int]:
    """Lock the lines among `ids` that meet `condition`; each becomes `become(id, status, limit, available,
    outstanding)` (its new status, limit and available amount) and gets `message`. Returns the ids changed."""
    signal_by_line = signal_by_line or {}
    with transaction.atomic(savepoint=False):
        updates = [
            LineUpdate(
                i,
                status,
                limit,
                available,
                *become(i, status, limit, available, outstanding),
                reasons.get(i, ""),
                signal_by_line.get(i),
            )
            for i, status, limit, available, outstanding in _lock(ids, condition)
        ]
        _write(
            updates,
            kind=kind,
            action=f"line.{kind}",
            actor=actor,
            at=at,
            messages=[message(u) for u in updates] if message else [],
        )
    return [u.line_id for u in updates]


def lines_freeze(
    *,
    line_ids: Iterable[int],
    actor: Actor,
    reasons: Mapping[int, str],
    codes: Mapping[int, str | Sequence[str]] | None = None,
    signal_by_line: Mapping[int, int] | None = None,
    at: datetime | None = None,
) -> list[int]:
    """Freeze the active lines among `line_ids`; lines already frozen or closed are left alone.

    Returns the ids actually frozen. Each gets a history row, an audit event and one freeze message, which names
    every reason (`codes`: the rule codes per line) and carries the link where the borrower can appeal.
    """
    ids = sorted(set(line_ids))
    if not ids:
        return []
    at = at or timezone.now()
    at_iso, codes = at.isoformat(), codes or {}
    return _transition(
        ids,
        f"{not_indexed('l.status')} = 'active'",
        lambda _i, _status, limit, available, _outstanding: (LineStatus.FROZEN, limit, available),
        lambda u: Outgoing(
            u.line_id,
            NotificationKind.FREEZE,
            f"freeze:{u.line_id}:{at_iso}",
            {"reason": _reason_text(codes.get(u.line_id, "")), "link": link_for_borrower(u.line_id)},
        ),
        kind="freeze",
        actor=actor,
        at=at,
        reasons=reasons,
        signal_by_line=signal_by_line,
    )


def lines_cut_available(
    *,
    cuts: Mapping[int, Decimal],
    actor: Actor,
    reasons: Mapping[int, str],
    codes: Mapping[int, str] | None = None,
    signal_by_line: Mapping[int, int] | None = None,
    at: datetime | None = None,
) -> list[int]:
    """Cut the available amount of each line by its ratio (0.5 = by half); closed or exhausted lines are skipped.

    Returns the ids whose available amount was cut.
    """
    if not cuts:
        return []
    keep = {i: Decimal(1) - Decimal(ratio) for i, ratio in cuts.items()}
    if any(k < 0 or k > 1 for k in keep.values()):
        raise DomainError("a cut ratio must be between 0 and 1")
    at = at or timezone.now()
    at_iso, codes = at.isoformat(), codes or {}
    return _transition(
        sorted(cuts),
        f"{not_indexed('l.status')} <> 'closed' AND l.available > 0",
        lambda i, status, limit, available, _outstanding: (
            status,
            limit,
            (available * keep[i]).quantize(CENT, ROUND_HALF_UP),
        ),
        lambda u: Outgoing(
            u.line_id,
            NotificationKind.LIMIT_CUT,
            f"cut:{u.line_id}:{at_iso}",
            {
                "available": money_text(u.available_after),
                "reason": _reason_text(codes.get(u.line_id, "")),
                "link": link_for_borrower(u.line_id),
            },
        ),
        kind="cut_available",
        actor=actor,
        at=at,
        reasons=reasons,
        signal_by_line=signal_by_line,
    )


def lines_restore_available(
    *,
    line_ids: Iterable[int],
    actor: Actor,
    reason: str,
    at: datetime | None = None,
    resolve_cases: bool = False,
    after_clear: bool = False,
    causes: Mapping[int, str] | None = None,
) -> list[int]:
    """Give back what a cut took: each open line among `line_ids` whose available amount a signal cut (it has an
    active "cut" signal) gets its full available amount again (limit less outstanding).

    The cut's mirror of `lines_unfreeze`: the cutting signals are overturned and suppressed, so the same evidence
    does not cut again; a history row, audit events and one message with the restored amount. Returns the ids.

    `after_clear` (the engine, for a rule that restores on clear): the cutting signal has stopped holding, so there
    is nothing to overturn; the lines that have no active cut left and are still short of limit less outstanding
    get it back, with the message that says so. `causes`: each line's LiftCause ("borrower").
    """
    ids = sorted(set(line_ids))
    if not ids:
        return []
    at = at or timezone.now()
    causes = causes or {}
    cut = f"""EXISTS (SELECT 1 FROM {Signal._meta.db_table} cs WHERE cs.line_id = l.id
        AND cs.status = '{SignalStatus.ACTIVE.value}' AND cs.action = 'cut')"""  # noqa: S608 - names from the models
    condition = f'NOT {cut} AND l.available < l."limit" - l.outstanding' if after_clear else cut
    with transaction.atomic(savepoint=False):
        updates = [
            LineUpdate(
                line_id,
                status,
                limit,
                available,
                status,
                limit,
                max(available, limit - outstanding, ZERO),
                reason,
                cause=causes.get(line_id, ""),
            )
            for line_id, status, limit, available, outstanding in _lock(
                ids, f"{not_indexed('l.status')} = 'active' AND {condition}"
            )
        ]
        kind = NotificationKind.LIMIT_RESTORED_AUTO if after_clear else NotificationKind.LIMIT_RESTORED
        _write(
            updates,
            kind="restore_available",
            action="line.restore_available",
            actor=actor,
            at=at,
            messages=Filled(kind, "restore", {u.line_id: money_text(u.available_after) for u in updates}),
            overturn="" if after_clear else "cut",
            change_reason=reason,
            resolve_cases="available_restored" if resolve_cases else "",
            keep_proposals=after_clear,
        )
    return [u.line_id for u in updates]


def _available_within(available: Decimal, new_limit: Decimal, outstanding: Decimal) -> Decimal:
    """What is already drawn counts against a lower limit too."""
    return max(ZERO, min(available, new_limit - outstanding))


@dataclass
class Unfrozen:
    line_ids: list[int] = field(default_factory=list)
    # The frozen lines left frozen: why (HELD_*) and their limit; only with hold_for_review or a four_eyes_limit.
    held: dict[int, tuple[str, Decimal]] = field(default_factory=dict)


_UNFREEZE_COLUMNS = ", c.status, c.appeal_state"
# A reviewer's unfreeze is the borrower's own doing (LiftCause.BORROWER) when no reason to freeze holds any more and
# one stopped holding through the borrower's action since the freeze (a repayment, a profile update: clear_cause).
_BORROWER_CAUSED = f""", (NOT EXISTS (SELECT 1 FROM {Signal._meta.db_table} fs WHERE fs.line_id = l.id
        AND fs.status = '{SignalStatus.ACTIVE.value}' AND fs.action = 'freeze')
    AND EXISTS (SELECT 1 FROM {Signal._meta.db_table} fs WHERE fs.line_id = l.id
        AND fs.status = '{SignalStatus.CLEARED.value}' AND fs.action = 'freeze' AND fs.clear_cause <> ''
        AND fs.cleared_at >= l.frozen_since))"""  # noqa: S608 - names from the models
_UNFREEZE_JOINS = f"LEFT JOIN {Case._meta.db_table} c ON c.line_id = l.id AND c.status <> '{CaseStatus.RESOLVED.value}'"


def lines_unfreeze(
    *,
    line_ids: Iterable[int],
    actor: Actor,
    reason: str,
    at: datetime | None = None,
    limits: Mapping[int, Decimal] | None = None,
    hold_for_review: bool = False,
    four_eyes_limit: Decimal | None = None,
    resolve_cases: bool = False,
    attribute_cause: bool = False,
) -> Unfrozen:
    """Unfreeze the frozen lines among `line_ids`, at their limit or at the lower one `limits` gives.

    The one unfreeze, for a reviewer's decision (a batch of one: the caller has checked the case under its lock)
    and for jobs. Each line's active freezing signals are overturned and suppressed, so the same evidence does not
    freeze it again; it gets a history row, audit events (line, signals) and one message with its limit.
    For jobs: `hold_for_review` leaves frozen the lines whose case has an open appeal or a proposal waiting for a
    second reviewer (they decide those); `four_eyes_limit` leaves frozen those whose limit would be that or more;
    `resolve_cases` resolves each line's unresolved case ("unfrozen").
    `attribute_cause` (a reviewer's decision): record the unfreeze as the borrower's own doing where it was
    (`_BORROWER_CAUSED`); a job's is its requester's judgement, and its bulk path pays nothing for the check.
    """
    ids = sorted(set(line_ids))
    result = Unfrozen()
    if not ids:
        return result
    at = at or timezone.now()
    limits = {i: Decimal(limit).quantize(CENT) for i, limit in (limits or {}).items()}
    with transaction.atomic(savepoint=False):
        columns = _UNFREEZE_COLUMNS + (_BORROWER_CAUSED if attribute_cause else ", false")
        rows = _lock(ids, f"{not_indexed('l.status')} = 'frozen'", columns=columns, joins=_UNFREEZE_JOINS)
        updates, texts = [], {}
        for line_id, _status, limit, available, outstanding, case_status, appeal_state, by_borrower in rows:
            new_limit = limits.get(line_id, limit)
            held = _held(case_status, appeal_state, new_limit, hold_for_review, four_eyes_limit)
            if held:
                result.held[line_id] = (held, limit)
                continue
            new_available = available if new_limit >= limit else _available_within(available, new_limit, outstanding)
            updates.append(
                LineUpdate(
                    line_id,
                    LineStatus.FROZEN,
                    limit,
                    available,
                    LineStatus.ACTIVE,
                    new_limit,
                    new_available,
                    reason,
                    cause=LiftCause.BORROWER if by_borrower else "",
                )
            )
            texts[line_id] = money_text(new_limit)
        _write(
            updates,
            kind="unfreeze",
            action="line.unfreeze",
            actor=actor,
            at=at,
            messages=Filled(NotificationKind.UNFREEZE, "unfreeze", texts),
            overturn="freeze",
            change_reason=reason,
            resolve_cases="unfrozen" if resolve_cases else "",
        )
    result.line_ids = [u.line_id for u in updates]
    return result


def _held(
    case_status: str | None,
    appeal_state: str | None,
    new_limit: Decimal,
    hold_for_review: bool,
    four_eyes_limit: Decimal | None,
) -> str:
    if hold_for_review and appeal_state:
        return HELD_APPEAL
    if hold_for_review and case_status == CaseStatus.AWAITING_APPROVAL:
        return HELD_PROPOSAL
    if four_eyes_limit is not None and new_limit >= four_eyes_limit:
        return HELD_FOUR_EYES
    return ""


def lines_change_limit(
    *, limits: Mapping[int, Decimal], actor: Actor, reason: str, at: datetime | None = None, notify: bool = True
) -> list[int]:
    """Set the limit of open lines (a reviewer's cut, or upstream's own change: `notify=False`, the lending app
    tells its borrower itself); the available amount follows. Returns the ids changed."""
    if not limits:
        return []
    at = at or timezone.now()
    at_iso = at.isoformat()
    limits = {i: Decimal(limit).quantize(CENT) for i, limit in limits.items()}
    return _transition(
        sorted(limits),
        f"{not_indexed('l.status')} <> 'closed'",
        lambda i, status, _limit, available, outstanding: (
            status,
            limits[i],
            _available_within(available, limits[i], outstanding),
        ),
        (
            lambda u: Outgoing(
                u.line_id,
                NotificationKind.LIMIT_CHANGE,
                f"limit:{u.line_id}:{at_iso}",
                {"limit": money_text(u.limit_after), "link": link_for_borrower(u.line_id)},
            )
        )
        if notify
        else None,
        kind="limit_change",
        actor=actor,
        at=at,
        reasons=dict.fromkeys(limits, reason),
    )


def lines_remind(*, line_ids: Iterable[int], dedupe_prefix: str, at: datetime | None = None) -> list[int]:
    """Queue an overdue reminder for each of these lines with an active OVERDUE signal (its amount and days).

    `dedupe_prefix` names the sender (a job): the same sender never reminds the same line twice.
    """
    ids = sorted(set(line_ids))
    at = at or timezone.now()
    overdue: dict[int, Signal] = {}
    for signal in Signal.objects.filter(line_id__in=ids, code="OVERDUE", status=SignalStatus.ACTIVE).order_by(
        "fired_at"
    ):
        overdue[signal.line_id] = signal
    notifications_queue(
        [
            Outgoing(
                line_id, NotificationKind.OVERDUE_REMINDER, f"{dedupe_prefix}:remind:{line_id}", overdue_params(signal)
            )
            for line_id, signal in sorted(overdue.items())
        ],
        at=at,
    )
    return sorted(overdue)


def lines_remind_due(*, today: date, days_before: int, chunk: int = 5000) -> int:
    """Remind each borrower who was overdue before (an OVERDUE signal, or an installment paid after its due date in
    the platform's time zone) of an installment falling due within `days_before` days: one message per installment
    ever (its dedupe key; a day the scheduler missed is caught up), on active lines only. Returns how many were
    queued now (those already in the outbox are not queued again)."""
    if days_before <= 0:
        return 0
    due = today + timedelta(days=days_before)
    installments = Installment._meta.db_table
    signal_table = Signal._meta.db_table
    with connection.cursor() as cur:
        cur.execute(
            f"""
            SELECT i.id, i.line_id, i.amount - i.paid_amount, i.due_date
            FROM {installments} i JOIN {_LINE} l ON l.id = i.line_id
            WHERE i.paid_at IS NULL AND i.due_date > %(today)s AND i.due_date <= %(due)s AND l.status = 'active'
              AND (EXISTS (SELECT 1 FROM {signal_table} s WHERE s.line_id = i.line_id AND s.code = 'OVERDUE')
                   OR EXISTS (SELECT 1 FROM {installments} p WHERE p.line_id = i.line_id AND p.due_date < %(today)s
                              AND (p.paid_at IS NULL OR (p.paid_at AT TIME ZONE %(tz)s)::date > p.due_date)))
            ORDER BY i.id
            """,  # noqa: S608 - table names from the models, values bound
            {"due": due, "today": today, "tz": settings.TIME_ZONE},
        )
        rows = cur.fetchall()
    queued = 0
    for start in range(0, len(rows), chunk):
        items = [
            Outgoing(
                line_id,
                NotificationKind.DUE_REMINDER,
                f"due_reminder:{installment_id}",
                {"amount": money_text(owed), "due": f"{day.month}月{day.day}日", "link": link_for_borrower(line_id)},
            )
            for installment_id, line_id, owed, day in rows[start : start + chunk]
        ]
        with transaction.atomic():
            queued += notifications_queue(items, at=timezone.now())
    return queued


def overdue_params(signal: Signal) -> dict[str, object]:
    """An overdue reminder's numbers, from an OVERDUE signal's evidence (¥1,000.00, 31 days)."""
    values = signal.evidence.get("values", {})
    return {
        "amount": money_text(Decimal(values["overdue_amount"])),
        "days": values["max_days_past_due"],
        "link": link_for_borrower(signal.line_id),
    }


def account_freeze(*, line_id: int, actor: Actor, reason: str) -> bool:
    """Freeze one line by hand; returns False when it was not active."""
    if not reason.strip():
        raise DomainError("a reason is required to freeze a line")
    return bool(lines_freeze(line_ids=[line_id], actor=actor, reasons={line_id: reason}))
