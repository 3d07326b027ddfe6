"""Backtesting a version of the rules: on each day of a past window, which accounts its freezing rules would have
fired for, given only the events known on that day (as of the end of the day, not today's data).

Set-based over the event history: each family's rule turns its events into the days on which it holds, as
intervals of days per account (window functions: running sums of inquiries and of distinct institutions over their
30-day windows, the running sum of risky transfers after a drawdown, the first profile update after an income
record), never one evaluation per account per day. Day d is evaluated as the engine would at the last instant of d:

- MULTI_HEAD: inquiries of the `window_days` days ending with d; an inquiry of day x counts on x .. x+window-1.
- OVERDUE (its freezing tier): an installment due on day u and not fully paid by the end of d, once d >= u +
  `min_days_past_due` (and the installment is known: d on or after the day it was recorded).
- ABNORMAL_USE: a drawdown of day a, from the day its risky transfers (within `window_days` of it) reach
  `min_share` of its amount until a + `lookback_days` - 1.
- PROFILE_STALE: an income record of day r that differs from what the borrower declared, from r + `grace_days`
  until r + `lookback_days` - 1 or the day before the first profile update after it. The declared figures are
  today's (the borrower's row keeps no history).

Evidence suppressions (a signal a person overturned stays quiet on the same events) are not replayed: the backtest
says what a version's rules would fire on, which is what a threshold change moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.utils import timezone

from accounts.models import CounterpartyCategory, Rule, RuleAction, RuleCode
from riskops.core.sql import batch_params, in_batch

DAY = "((%s) AT TIME ZONE %%(tz)s)::date"  # the local day of a timestamp column


def _day(column: str) -> str:
    return DAY % column


def _midnight(day: date) -> datetime:
    """The first instant of a local day."""
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


@dataclass(frozen=True)
class Window:
    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def freezing_rules(rules: dict[str, Rule]) -> dict[str, Rule]:
    """The rules of a version that freeze (a cut or a reminder is not what the backtest counts)."""
    return {code: r for code, r in rules.items() if r.enabled and r.action == RuleAction.FREEZE}


def intervals_sql(rules: dict[str, Rule], ids: list[int], window: Window, prefix: str) -> tuple[str, dict[str, Any]]:
    """SQL of (line_id, code, lo, hi): the days lo .. hi-1 on which each freezing rule holds for each account of
    the batch, clipped to nothing (the caller clips to the window); parameters named after `prefix`."""
    parts: list[str] = []
    params: dict[str, Any] = {}
    end = _midnight(window.last + timedelta(days=1))
    for code, rule in sorted(freezing_rules(rules).items()):
        p = rule.params
        key = f"{prefix}_{code.lower()}"
        if code == RuleCode.MULTI_HEAD:
            w = int(p["window_days"])
            params.update(
                {
                    f"{key}_from": _midnight(window.first - timedelta(days=w - 1)),
                    f"{key}_to": end,
                    f"{key}_w": w,
                    f"{key}_n": int(p["min_inquiries"]),
                    f"{key}_k": int(p["min_institutions"]),
                }
            )
            parts.append(
                f"""
                (WITH inq AS (
                    SELECT line_id, institution, {_day("occurred_at")} AS d FROM accounts_creditinquiry
                    WHERE {in_batch("line_id", ids)}
                      AND occurred_at >= %({key}_from)s AND occurred_at < %({key}_to)s
                ), runs AS (  -- each institution's days merged into runs: it counts once on every day of a run
                    SELECT line_id, institution, d,
                           sum(brk) OVER (PARTITION BY line_id, institution ORDER BY d ROWS UNBOUNDED PRECEDING) AS g
                    FROM (SELECT line_id, institution, d,
                                 CASE WHEN d < lag(d) OVER w + %({key}_w)s THEN 0 ELSE 1 END AS brk
                          FROM inq WINDOW w AS (PARTITION BY line_id, institution ORDER BY d)) b
                ), steps AS (
                    SELECT line_id, d AS day, 1 AS dn, 0 AS dk FROM inq
                    UNION ALL SELECT line_id, d + %({key}_w)s, -1, 0 FROM inq
                    UNION ALL SELECT line_id, min(d), 0, 1 FROM runs GROUP BY line_id, institution, g
                    UNION ALL SELECT line_id, max(d) + %({key}_w)s, 0, -1 FROM runs GROUP BY line_id, institution, g
                ), counts AS (
                    SELECT line_id, day, lead(day) OVER (PARTITION BY line_id ORDER BY day) AS next,
                           sum(dn) OVER (PARTITION BY line_id ORDER BY day) AS n,
                           sum(dk) OVER (PARTITION BY line_id ORDER BY day) AS k
                    FROM (SELECT line_id, day, sum(dn) AS dn, sum(dk) AS dk FROM steps GROUP BY line_id, day) s
                )
                SELECT line_id, '{code}'::text AS code, day AS lo, next AS hi FROM counts
                WHERE n >= %({key}_n)s AND k >= %({key}_k)s AND next IS NOT NULL)
                """  # noqa: S608 - codes and categories from the choices, values bound
            )
        elif code == RuleCode.OVERDUE:
            params.update({f"{key}_high": int(p["min_days_past_due"]), f"{key}_from": _midnight(window.first)})
            parts.append(
                f"""
                (SELECT line_id, '{code}'::text, greatest(due_date + %({key}_high)s, {_day("occurred_at")}),
                        coalesce({_day("paid_at")}, %(last)s::date + 1)
                 FROM accounts_installment
                 WHERE {in_batch("line_id", ids)} AND due_date + %({key}_high)s <= %(last)s::date
                   AND (paid_at IS NULL OR paid_at >= %({key}_from)s))
                """  # noqa: S608 - codes and categories from the choices, values bound
            )
        elif code == RuleCode.ABNORMAL_USE:
            unknown = set(p["categories"]) - set(CounterpartyCategory.values)
            if unknown:
                raise ValueError(f"ABNORMAL_USE has unknown categories {sorted(unknown)}")
            categories = ", ".join(f"'{c}'" for c in sorted(p["categories"]))  # checked against the choices above
            lookback = int(p["lookback_days"])
            params.update(
                {
                    f"{key}_from": _midnight(window.first - timedelta(days=lookback - 1)),
                    f"{key}_to": end,
                    f"{key}_w": int(p["window_days"]),
                    f"{key}_l": lookback,
                    f"{key}_share": Decimal(p["min_share"]),
                }
            )
            parts.append(
                f"""
                (SELECT line_id, '{code}'::text, min(t_day), min(d_day) + %({key}_l)s
                 FROM (SELECT d.line_id, d.id, d.amount, {_day("d.occurred_at")} AS d_day,
                              {_day("t.occurred_at")} AS t_day,
                              sum(t.amount) OVER (PARTITION BY d.id ORDER BY t.occurred_at, t.id) AS risky
                       FROM accounts_drawdown d
                       JOIN accounts_transfer t
                         ON t.line_id = d.line_id AND t.occurred_at >= d.occurred_at
                        AND t.occurred_at <= d.occurred_at + make_interval(days => %({key}_w)s)
                        AND t.counterparty_category IN ({categories})
                       WHERE {in_batch("d.line_id", ids)}
                         AND d.occurred_at >= %({key}_from)s AND d.occurred_at < %({key}_to)s) r
                 WHERE risky >= amount * %({key}_share)s
                 GROUP BY line_id, id)
                """  # noqa: S608 - codes and categories from the choices, values bound
            )
        elif code == RuleCode.PROFILE_STALE:
            grace, lookback = int(p["grace_days"]), int(p["lookback_days"])
            params.update(
                {
                    f"{key}_from": _midnight(window.first - timedelta(days=lookback - 1)),
                    f"{key}_to": _midnight(window.last - timedelta(days=grace - 1)),
                    f"{key}_g": grace,
                    f"{key}_l": lookback,
                    f"{key}_drop": Decimal(p["min_income_drop"]),
                }
            )
            parts.append(
                f"""
                (SELECT r.line_id, '{code}'::text, {_day("r.occurred_at")} + %({key}_g)s,
                        least({_day("r.occurred_at")} + %({key}_l)s,
                              coalesce((SELECT {_day("min(u.occurred_at)")} FROM accounts_profileupdate u
                                        WHERE u.line_id = r.line_id AND u.occurred_at >= r.occurred_at),
                                       %(last)s::date + 1))
                 FROM accounts_externalincomerecord r
                 JOIN accounts_creditline l ON l.id = r.line_id
                 JOIN accounts_borrower b ON b.id = l.borrower_id
                 WHERE {in_batch("r.line_id", ids)}
                   AND r.occurred_at >= %({key}_from)s AND r.occurred_at < %({key}_to)s
                   AND ((b.employer <> '' AND r.employer <> b.employer)
                        OR r.monthly_income <= b.declared_monthly_income * (1 - %({key}_drop)s)))
                """  # noqa: S608 - codes and categories from the choices, values bound
            )
    if not parts:
        return "SELECT NULL::bigint, NULL::text, NULL::date, NULL::date WHERE false", params
    return " UNION ALL ".join(parts), params


def freezing_days_sql(
    live: dict[str, Rule], draft: dict[str, Rule], ids: list[int], window: Window
) -> tuple[str, dict[str, Any]]:
    """SQL of (side, line_id, code, day): each day of the window on which each version's freezing rule holds."""
    live_sql, live_params = intervals_sql(live, ids, window, "live")
    draft_sql, draft_params = intervals_sql(draft, ids, window, "draft")
    sql = f"""
        SELECT DISTINCT side, line_id, code, g::date AS day
        FROM (SELECT 'live' AS side, i.* FROM ({live_sql}) i(line_id, code, lo, hi)
              UNION ALL SELECT 'draft', i.* FROM ({draft_sql}) i(line_id, code, lo, hi)) iv,
             generate_series(greatest(lo, %(first)s::date)::timestamp, (least(hi, %(last)s::date + 1) - 1)::timestamp,
                             interval '1 day') g
        WHERE greatest(lo, %(first)s::date) < least(hi, %(last)s::date + 1)
    """  # noqa: S608 - table names from the models, values bound
    params = {
        **live_params,
        **draft_params,
        **batch_params(ids),
        "first": window.first,
        "last": window.last,
        "tz": str(timezone.get_current_timezone()),
    }
    return sql, params


# --- The naive way, for the tests and the benchmark: one evaluation per account per day, as of the end of the day.


def freezing_on(rules: dict[str, Rule], line_id: int, day: date) -> set[str]:
    """The freezing rules that hold for one account at the last instant of `day`, on the events known then."""
    now = _midnight(day + timedelta(days=1)) - timedelta(microseconds=1)
    fired: set[str] = set()
    with connection.cursor() as cur:
        for code, rule in freezing_rules(rules).items():
            p = rule.params
            if code == RuleCode.MULTI_HEAD:
                cur.execute(
                    "SELECT count(*) >= %s AND count(DISTINCT institution) >= %s FROM accounts_creditinquiry"
                    " WHERE line_id = %s AND occurred_at <= %s AND occurred_at >= %s - make_interval(days => %s)",
                    [p["min_inquiries"], p["min_institutions"], line_id, now, now, p["window_days"]],
                )
            elif code == RuleCode.OVERDUE:
                cur.execute(
                    "SELECT EXISTS (SELECT 1 FROM accounts_installment WHERE line_id = %s AND occurred_at <= %s"
                    " AND (paid_at IS NULL OR paid_at > %s) AND due_date <= %s::date - %s)",
                    [line_id, now, now, day, p["min_days_past_due"]],
                )
            elif code == RuleCode.ABNORMAL_USE:
                cur.execute(
                    "SELECT EXISTS (SELECT 1 FROM accounts_drawdown d WHERE d.line_id = %s AND d.occurred_at <= %s"
                    " AND d.occurred_at > %s - make_interval(days => %s)"
                    " AND (SELECT coalesce(sum(t.amount), 0) FROM accounts_transfer t WHERE t.line_id = d.line_id"
                    "      AND t.occurred_at >= d.occurred_at AND t.occurred_at <= %s"
                    "      AND t.occurred_at <= d.occurred_at + make_interval(days => %s)"
                    "      AND t.counterparty_category = ANY(%s)) >= d.amount * %s)",
                    [
                        line_id,
                        now,
                        now,
                        p["lookback_days"],
                        now,
                        p["window_days"],
                        list(p["categories"]),
                        Decimal(p["min_share"]),
                    ],
                )
            elif code == RuleCode.PROFILE_STALE:
                cur.execute(
                    "SELECT EXISTS (SELECT 1 FROM accounts_externalincomerecord r"
                    " JOIN accounts_creditline l ON l.id = r.line_id JOIN accounts_borrower b ON b.id = l.borrower_id"
                    " WHERE r.line_id = %s AND r.occurred_at <= %s - make_interval(days => %s)"
                    " AND r.occurred_at > %s - make_interval(days => %s)"
                    " AND ((b.employer <> '' AND r.employer <> b.employer)"
                    "      OR r.monthly_income <= b.declared_monthly_income * (1 - %s))"
                    " AND NOT EXISTS (SELECT 1 FROM accounts_profileupdate u WHERE u.line_id = r.line_id"
                    "                 AND u.occurred_at >= r.occurred_at AND u.occurred_at <= %s))",
                    [line_id, now, p["grace_days"], now, p["lookback_days"], Decimal(p["min_income_drop"]), now],
                )
            else:
                continue
            if cur.fetchone()[0]:
                fired.add(code)
    return fired
