"""The risk engine: evaluates the active ruleset over a batch of accounts, set-based.

One batch costs a fixed number of SQL queries whatever its size: each rule is one aggregate
query over the batch's events in PostgreSQL (`accounts.rule_queries`), then the differences with the
current signals are applied through `accounts.services` (fire, clear, freeze, cut, remind, open cases).

How an event becomes a freeze:
events -> rule queries (`accounts.rule_queries`) -> findings -> minus suppressed -> diff with active signals
-> services.signals (fire / clear) -> policy: services.lines (freeze / cut) and reminders -> services.cases
-> audit (each service writes its own).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, reset_queries, transaction
from django.utils import timezone

from accounts.hooks import link_for_borrower
from accounts.models import (
    SEVERITY_RANK,
    LiftCause,
    NotificationKind,
    Rule,
    RuleAction,
    RuleCode,
    Severity,
    ShadowKind,
    ShadowRecord,
    Signal,
)
from accounts.notifications import Outgoing, notifications_queue
from accounts.rule_queries import FINDERS, Finding, active_rules, version_rules
from accounts.selectors.borrower import guidance_current
from accounts.services import cases, lines, signals
from riskops.core.audit import Actor
from riskops.core.sql import around_batch, batch_params, id_range, in_batch, not_indexed

Key = tuple[int, str, str]  # a signal or finding: (line, rule code, severity)
# Read with the suppressions: an exemption (`Exemption`, until it expires) keeps every finding of its rule quiet.
EXEMPT = "*"


@dataclass
class EvaluationResult:
    evaluated: int = 0
    fired: int = 0
    cleared: int = 0
    suppressed: int = 0
    frozen: int = 0
    cut: int = 0
    reminded: int = 0
    restored: int = 0
    cases_opened: int = 0
    fired_signal_ids: list[int] = field(default_factory=list)
    # Lines where a signal fired or cleared (and so any freeze, cut, reminder or case change happened).
    changed_line_ids: set[int] = field(default_factory=set)

    def add(self, other: EvaluationResult) -> None:
        for name in (
            "evaluated",
            "fired",
            "cleared",
            "suppressed",
            "frozen",
            "cut",
            "reminded",
            "restored",
            "cases_opened",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def evaluate_lines(
    line_ids: Iterable[int],
    *,
    now: datetime | None = None,
    actor: Actor | None = None,
    rules: dict[str, Rule] | None = None,
) -> EvaluationResult:
    """Evaluate the active rules for these lines and apply what changed (in one transaction).

    The rules are evaluated on what the batch holds now, without locks: most evaluations (the nightly one) change
    nothing, and then nothing is written or locked. The lines where something changes are locked (in id order, as
    decisions and jobs lock them), read again (an evaluation of the same account that we waited for may have
    changed them) and changed. Evaluating twice on the same data changes nothing the second time.
    """
    now = now or timezone.now()
    actor = actor or Actor.engine()
    result = EvaluationResult()
    # Read and evaluated outside a transaction: each statement sees what is committed, and whatever changes is
    # locked and read again below before it is applied.
    read = _read_and_diff(line_ids, rules, now)
    if read is None:
        return result
    batch, rules, found, diff = read
    as_read = diff  # what the shadow compares with (the diff may be narrowed under the lock below)
    result.evaluated = len(batch.open_lines)
    changed = diff.lines | batch.stale_exposure
    if changed:
        with transaction.atomic():
            locked = _lock_batch(sorted(changed), now)
            mine = set(locked)
            active, suppressed = _current(locked, now)
            # A signal active when the batch was read and not now (cleared or overturned meanwhile): its finding
            # was not kept, so those lines are evaluated again, under the lock.
            moved = {key[0] for key in found.keys if key[0] in mine and key not in active and key not in found.new}
            if moved:
                found = found.without(moved).merge(_find(rules, sorted(moved), now, active))
            unchanged = diff.suppressed - {key for key in diff.suppressed if key[0] in mine}
            diff = _diff(found.of(mine), active, suppressed)
            diff.suppressed |= unchanged
            _apply(diff, rules, actor, now, result)
    result.suppressed = len(diff.suppressed)
    _shadow(batch, as_read, now)
    return result


def _shadow(batch: _Batch, live: _Diff, now: datetime) -> None:
    """The draft in shadow, if one runs now, evaluated on the same batch: the freezing signals it would fire beside
    those the live version fired (`live`, as read before the lock), recorded and nothing else (no account, signal,
    case or message is touched)."""
    if batch.shadow is None:  # the batch's read says which draft runs in shadow: no query when none does
        return
    rules = version_rules(batch.shadow)
    drafted = _diff(_find(rules, batch.open_lines, now, batch.active), batch.active, batch.suppressed)
    fired = {"live": _freezing_codes(live.new), "shadow": _freezing_codes(drafted.new)}
    records = []
    for line_id in sorted(set(fired["live"]) | set(fired["shadow"])):
        in_live, in_shadow = line_id in fired["live"], line_id in fired["shadow"]
        kind = ShadowKind.BOTH if in_live and in_shadow else ShadowKind.LIVE_ONLY if in_live else ShadowKind.SHADOW_ONLY
        codes = fired["live"].get(line_id, set()) | fired["shadow"].get(line_id, set())
        records.append(
            ShadowRecord(ruleset_id=batch.shadow, line_id=line_id, at=now, kind=kind, codes=",".join(sorted(codes)))
        )
    ShadowRecord.objects.bulk_create(records)


def _freezing_codes(findings: list[Finding]) -> dict[int, set[str]]:
    codes: dict[int, set[str]] = {}
    for f in findings:
        if f.action == RuleAction.FREEZE:
            codes.setdefault(f.line_id, set()).add(f.code)
    return codes


@dataclass
class _Found:
    """What the rules found: every (line, code, severity) that holds, and the findings themselves only where no
    such signal was active (the others are dropped as they come: in the nightly re-evaluation that is nearly all
    of them, and keeping them cost a tenth of the engine's time in Python's garbage collector)."""

    keys: set[Key]
    new: dict[Key, Finding]

    def without(self, lines: set[int]) -> _Found:
        return _Found(
            {k for k in self.keys if k[0] not in lines}, {k: f for k, f in self.new.items() if k[0] not in lines}
        )

    def merge(self, other: _Found) -> _Found:
        return _Found(self.keys | other.keys, {**self.new, **other.new})

    def of(self, lines: set[int]) -> _Found:
        return _Found({k for k in self.keys if k[0] in lines}, {k: f for k, f in self.new.items() if k[0] in lines})


def _find(rules: dict[str, Rule], lines: list[int], now: datetime, active: dict[Key, int]) -> _Found:
    found = _Found(set(), {})
    for code, rule in rules.items():
        for f in FINDERS[RuleCode(code)](rule, lines, now):
            key = (f.line_id, f.code, f.severity)
            found.keys.add(key)
            if key not in active:
                found.new[key] = f
    return found


@dataclass
class _Batch:
    """What a batch holds before the evaluation: its open lines, their active signals by (line, code, severity),
    their suppressed event keys by (line, code), and the lines whose open case's exposure is behind."""

    open_lines: list[int]
    active: dict[Key, int]
    suppressed: dict[tuple[int, str], set[str]]
    stale_exposure: set[int]
    freezing: set[int] = field(default_factory=set)  # the active signals whose action is to freeze
    shadow: int | None = None  # the ruleset running in shadow now


def _read(requested: list[int], now: datetime) -> _Batch:
    """One query for all of `_Batch` (no lock). It reads the batch's range when the batch fills it
    (`around_batch`) and keeps the requested lines here."""
    with connection.cursor() as cur:
        cur.execute(
            f"""
            SELECT CASE WHEN c.id IS NOT NULL AND c.exposure IS DISTINCT FROM l.outstanding THEN 'stale' ELSE 'line' END,
                l.id, NULL, NULL, NULL
            FROM accounts_creditline l
            LEFT JOIN accounts_case c ON c.line_id = l.id AND c.status <> 'resolved' AND {id_range("c.line_id", requested)}
            WHERE {around_batch("l.id", requested)} AND l.status <> 'closed'
            UNION ALL SELECT CASE WHEN action = 'freeze' THEN 'freezing' ELSE 'signal' END, line_id, id, code, severity
            FROM accounts_signal
            WHERE {around_batch("line_id", requested)} AND status = 'active'
            UNION ALL SELECT 'suppression', line_id, NULL, code, event_ids::text FROM accounts_suppression
            WHERE {around_batch("line_id", requested)}
            UNION ALL SELECT 'suppression', line_id, NULL, code, '["{EXEMPT}"]' FROM accounts_exemption
            WHERE {around_batch("line_id", requested)} AND until > %(now)s
            UNION ALL SELECT 'shadow', NULL, id, NULL, NULL FROM accounts_ruleset
            WHERE shadow_from <= %(now)s AND shadow_until > %(now)s
            """,  # noqa: S608 - table names from the models, values bound
            {**batch_params(requested), "now": now},
        )
        rows = cur.fetchall()
    wanted = set(requested)
    batch = _Batch([], {}, defaultdict(set), set())
    for kind, line_id, signal_id, code, value in rows:
        if kind == "shadow":
            batch.shadow = signal_id  # the draft in shadow now (its id), if any
            continue
        if line_id not in wanted:
            continue
        if kind in ("signal", "freezing"):
            batch.active[(line_id, code, value)] = signal_id
            if kind == "freezing":
                batch.freezing.add(signal_id)
        elif kind == "suppression":
            batch.suppressed[(line_id, code)].update(json.loads(value))
        else:
            batch.open_lines.append(line_id)
            if kind == "stale":  # the line's open case's exposure is behind its outstanding principal
                batch.stale_exposure.add(line_id)
    batch.open_lines.sort()
    is_open = set(batch.open_lines)
    batch.active = {key: sid for key, sid in batch.active.items() if key[0] in is_open}
    return batch


@dataclass
class _Diff:
    new: list[Finding]
    to_clear: dict[Key, int]  # the active signals whose condition no longer holds
    suppressed: set[Key]  # findings a person's overturn keeps quiet

    @property
    def lines(self) -> set[int]:
        return {f.line_id for f in self.new} | {key[0] for key in self.to_clear}


def _diff(found: _Found, active: dict[Key, int], suppressed_keys: dict[tuple[int, str], set[str]]) -> _Diff:
    diff = _Diff([], {key: sid for key, sid in active.items() if key not in found.keys}, set())
    for key, f in found.new.items():
        if key in active:
            continue
        quiet = suppressed_keys.get((f.line_id, f.code))
        if quiet is not None and (EXEMPT in quiet or f.event_keys <= quiet):
            diff.suppressed.add(key)
            continue
        diff.new.append(f)
    return diff


def _apply(diff: _Diff, rules: dict[str, Rule], actor: Actor, now: datetime, result: EvaluationResult) -> None:
    """Clear, fire and apply the policy on the locked lines."""
    result.cleared = len(
        signals.signals_clear(
            signal_ids=diff.to_clear.values(), actor=actor, at=now, reason="condition no longer holds"
        )
    )
    created = signals.signals_fire(
        signals=[
            signals.NewSignal(f.line_id, f.rule.pk, f.code, f.severity, f.action, f.rule.ruleset.version, f.evidence)
            for f in diff.new
        ],
        actor=actor,
        at=now,
    )
    result.fired = len(created)
    result.fired_signal_ids = [s.pk for s in created]
    result.changed_line_ids = {s.line_id for s in created} | {key[0] for key in diff.to_clear}
    _apply_policy(created, rules, actor, now, result)
    _restore_on_clear(diff.to_clear, rules, actor, now, result)


def _restore_on_clear(
    cleared: dict[Key, int], rules: dict[str, Rule], actor: Actor, now: datetime, result: EvaluationResult
) -> None:
    """Give back a cut whose rule says so (`Rule.restores_on_clear`: PROFILE_STALE by default) once it stopped
    holding, unless another cut holds; recorded as the borrower's own action when theirs cleared it. Freezes are
    never lifted here: a person or a job decides those."""
    restoring = {
        key: sid
        for key, sid in cleared.items()
        if key[1] in rules and rules[key[1]].action == RuleAction.CUT and rules[key[1]].restores_on_clear
    }
    if not restoring:
        return
    by_borrower = set(
        Signal.objects.filter(pk__in=restoring.values()).exclude(clear_cause="").values_list("line_id", flat=True)
    )
    codes = sorted({key[1] for key in restoring})
    restored = lines.lines_restore_available(
        line_ids={key[0] for key in restoring},
        actor=actor,
        at=now,
        reason=f"{', '.join(codes)} no longer holds (its rule restores the cut on clear)",
        after_clear=True,
        causes=dict.fromkeys(by_borrower, LiftCause.BORROWER),
        resolve_cases=True,  # nothing is left to review: the line is active and nothing cuts it (appeals are for freezes)
    )
    result.restored = len(restored)


def _lock_batch(lines: list[int], now: datetime) -> list[int]:
    """Lock these open lines (concurrent evaluations of the same account serialise here), and bring the exposure
    of their open cases in step with the lines' outstanding principal in the same statement."""
    with connection.cursor() as cur:
        cur.execute(
            f"""
            WITH locked AS (
                SELECT id, outstanding FROM accounts_creditline
                WHERE {in_batch("id", lines)} AND status <> 'closed' ORDER BY id FOR UPDATE
            ), exposure AS ({cases.refresh_exposure_cte("locked", lines)})
            SELECT id FROM locked
            """,  # noqa: S608 - table names from the models, values bound
            {**batch_params(lines), "at": now},
        )
        return [r[0] for r in cur.fetchall()]


def _current(ids: list[int], now: datetime) -> tuple[dict[Key, int], dict[tuple[int, str], set[str]]]:
    """The batch's active signals by (line, code, severity), and the event keys suppressed per (line, code), in one
    query (after the lines are locked: a statement of its own, so it sees what an evaluation it waited for wrote)."""
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT id, line_id, code, severity, NULL FROM accounts_signal"  # noqa: S608 - table names from the models, values bound
            f" WHERE {in_batch('line_id', ids)} AND status = 'active'"
            f" UNION ALL SELECT NULL, line_id, code, NULL, event_ids::text FROM accounts_suppression"
            f" WHERE {in_batch('line_id', ids)}"
            f" UNION ALL SELECT NULL, line_id, code, NULL, '[\"{EXEMPT}\"]' FROM accounts_exemption"
            f" WHERE {in_batch('line_id', ids)} AND until > %(now)s",
            {**batch_params(ids), "now": now},
        )
        rows = cur.fetchall()
    active = {(line_id, code, severity): sid for sid, line_id, code, severity, _keys in rows if sid is not None}
    suppressed_keys: dict[tuple[int, str], set[str]] = defaultdict(set)
    for sid, line_id, code, _severity, keys in rows:
        if sid is None:
            suppressed_keys[(line_id, code)].update(json.loads(keys))
    return active, suppressed_keys


def _apply_policy(created: list, rules: dict[str, Rule], actor: Actor, now: datetime, result: EvaluationResult) -> None:
    freeze: dict[int, Any] = {}
    freeze_codes: dict[int, list[str]] = defaultdict(list)  # every freezing reason, for the borrower's message
    cut: dict[int, Any] = {}
    remind: list[Any] = []
    severity_by_line: dict[int, int] = {}
    signals_by_line: dict[int, list[int]] = defaultdict(list)
    for s in created:
        if s.action == RuleAction.FREEZE:
            freeze.setdefault(s.line_id, s)
            freeze_codes[s.line_id].append(s.code)
        elif s.action == RuleAction.CUT:
            cut.setdefault(s.line_id, s)
        elif s.action == RuleAction.REMIND:
            remind.append(s)
        rank = SEVERITY_RANK[Severity(s.severity)]
        if rank >= SEVERITY_RANK[Severity.MEDIUM]:
            severity_by_line[s.line_id] = max(rank, severity_by_line.get(s.line_id, 0))
            signals_by_line[s.line_id].append(s.pk)

    def reason(s: Any) -> str:
        return f"{s.code} signal #{s.pk} (ruleset v{s.ruleset_version})"

    result.frozen = len(
        lines.lines_freeze(
            line_ids=freeze,
            actor=actor,
            at=now,
            reasons={i: reason(s) for i, s in freeze.items()},
            codes=freeze_codes,
            signal_by_line={i: s.pk for i, s in freeze.items()},
        )
    )
    if cut:
        result.cut = len(
            lines.lines_cut_available(
                cuts={i: Decimal(rules[s.code].params.get("cut_ratio", "0.5")) for i, s in cut.items()},
                actor=actor,
                at=now,
                reasons={i: reason(s) for i, s in cut.items()},
                codes={i: s.code for i, s in cut.items()},
                signal_by_line={i: s.pk for i, s in cut.items()},
            )
        )
    outgoing = [
        Outgoing(
            s.line_id,
            NotificationKind.PROFILE_UPDATE_REQUEST,
            f"profile_update:{s.pk}",
            {"link": link_for_borrower(s.line_id)},
        )
        for s in cut.values()
    ] + [
        Outgoing(s.line_id, NotificationKind.OVERDUE_REMINDER, f"overdue_reminder:{s.pk}", lines.overdue_params(s))
        for s in remind
    ]
    if remind:
        # After a reminder-tier overdue, what to do about it (the guidance risk managers keep), once per signal.
        advice = guidance_current([RuleCode.OVERDUE]).get(RuleCode.OVERDUE)
        if advice is not None:
            outgoing += [
                Outgoing(
                    s.line_id,
                    NotificationKind.OVERDUE_ADVICE,
                    f"overdue_advice:{s.pk}",
                    {"advice": advice.text_zh, "link": link_for_borrower(s.line_id)},
                )
                for s in remind
            ]
    notifications_queue(outgoing, at=now)
    result.reminded = len(remind)
    opened = cases.cases_open_or_raise(
        severity_by_line=severity_by_line,
        signal_ids_by_line=signals_by_line,
        actor=actor,
        at=now,
        reason="risk signals fired",
    )
    result.cases_opened = len(opened["opened"])


def _read_and_diff(
    line_ids: Iterable[int], rules: dict[str, Rule] | None, now: datetime
) -> tuple[_Batch, dict[str, Rule], _Found, _Diff] | None:
    """The batch's open lines read, the rules' findings on them, and how those differ from the signals they hold;
    None when the batch holds no open line (then not even the rules are read)."""
    requested = sorted(set(line_ids))
    batch = _read(requested, now) if requested else None
    if batch is None or not batch.open_lines:
        return None
    rules = rules if rules is not None else active_rules()
    found = _find(rules, batch.open_lines, now, batch.active)
    return batch, rules, found, _diff(found, batch.active, batch.suppressed)


@dataclass
class Projection:
    """What evaluating a batch with some rules would do, against what the live rules would do on the same data,
    without changing anything (`project_lines`). Per line, the rule codes behind each: freezing findings that would
    fire (`would_freeze`, `live_would_freeze`) and active freezing signals that would stay (`kept`, `live_kept`)."""

    evaluated: int = 0
    would_freeze: dict[int, set[str]] = field(default_factory=dict)
    kept: dict[int, set[str]] = field(default_factory=dict)
    live_would_freeze: dict[int, set[str]] = field(default_factory=dict)
    live_kept: dict[int, set[str]] = field(default_factory=dict)
    cleared: dict[int, set[str]] = field(default_factory=dict)  # freezing signals the rules would clear


def project_lines(
    line_ids: Iterable[int], *, rules: dict[str, Rule], live: dict[str, Rule], now: datetime | None = None
) -> Projection:
    """The same read, rule queries and diff as `evaluate_lines` (so the same accounts, findings, suppressions and
    exemptions) with `rules`, and with `live` for the families whose rule differs (the others find the same),
    applying nothing: no lock, no write. A single account is a batch of one."""
    now = now or timezone.now()
    projection = Projection()
    read = _read_and_diff(line_ids, rules, now)
    if read is None:
        return projection
    batch, _rules, _found, diff = read
    projection.evaluated = len(batch.open_lines)
    differs = {code for code in set(rules) | set(live) if _rule_fields(rules.get(code)) != _rule_fields(live.get(code))}
    baseline = {code: rule for code, rule in live.items() if code in differs}
    live_diff = _Diff([], {}, set())
    if baseline:
        of_changed = {key: sid for key, sid in batch.active.items() if key[1] in differs}
        live_diff = _diff(_find(baseline, batch.open_lines, now, batch.active), of_changed, batch.suppressed)
    for f in diff.new:
        if f.action == RuleAction.FREEZE:
            projection.would_freeze.setdefault(f.line_id, set()).add(f.code)
            if f.code not in differs:
                projection.live_would_freeze.setdefault(f.line_id, set()).add(f.code)
    for f in live_diff.new:
        if f.action == RuleAction.FREEZE:
            projection.live_would_freeze.setdefault(f.line_id, set()).add(f.code)
    for key, sid in batch.active.items():
        if sid not in batch.freezing:
            continue
        line_id, code = key[0], key[1]
        if key in diff.to_clear:
            projection.cleared.setdefault(line_id, set()).add(code)
        else:
            projection.kept.setdefault(line_id, set()).add(code)
        if key not in (live_diff.to_clear if code in differs else diff.to_clear):
            projection.live_kept.setdefault(line_id, set()).add(code)
    return projection


def _rule_fields(rule: Rule | None) -> tuple[Any, ...] | None:
    """What decides a rule's findings (two rules with the same find the same)."""
    if rule is None or not rule.enabled:
        return None
    return (rule.params, rule.severity, rule.action)


def frozen_by_signal(line_ids: list[int], *, lifted: bool = False) -> set[int]:
    """Frozen lines whose last freeze came from a signal: those re-evaluation may lift (a freeze a person made, no
    signal behind it, is a person's to lift). `lifted`: only those with no active freezing signal left, which a
    re-evaluate-and-unfreeze job lifts (people's holds aside)."""
    if not line_ids:
        return set()
    left = (
        " AND NOT EXISTS (SELECT 1 FROM accounts_signal s"
        " WHERE s.line_id = l.id AND s.status = 'active' AND s.action = 'freeze')"
        if lifted
        else ""
    )
    with connection.cursor() as cur:
        cur.execute(
            f"""
            SELECT l.id FROM accounts_creditline l
            WHERE {in_batch("l.id", line_ids)} AND {not_indexed("l.status")} = 'frozen'
              AND (SELECT c.signal_id FROM accounts_linechange c WHERE c.line_id = l.id AND c.kind = 'freeze'
                   ORDER BY c.at DESC, c.id DESC LIMIT 1) IS NOT NULL {left}
            """,  # noqa: S608 - table names from the models, values bound
            batch_params(line_ids),
        )
        return {r[0] for r in cur.fetchall()}


def evaluate_all(
    *, now: datetime | None = None, batch_size: int | None = None, actor: Actor | None = None
) -> EvaluationResult:
    """Evaluate every active or frozen line, batch by batch in id order (keyset, no OFFSET)."""
    batch_size = batch_size or settings.ENGINE_BATCH_SIZE
    now = now or timezone.now()
    total = EvaluationResult()
    rules = active_rules()
    for ids in line_id_batches(batch_size):
        total.add(evaluate_lines(ids, now=now, actor=actor, rules=rules))
        reset_queries()  # with DEBUG on, Django would keep every batch's SQL in memory
    return total


def line_id_batches(batch_size: int) -> Iterator[list[int]]:
    last = 0
    while True:
        with connection.cursor() as cur:
            cur.execute(
                "SELECT id FROM accounts_creditline WHERE id > %s AND status <> 'closed' ORDER BY id LIMIT %s",
                [last, batch_size],
            )
            ids = [r[0] for r in cur.fetchall()]
        if not ids:
            return
        yield ids
        last = ids[-1]
