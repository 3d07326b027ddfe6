"""Backtesting a draft against the live version: each batch of accounts replayed over the window, day by day, on
the events known on each day (`accounts.backtest`), its figures added to the backtest's (`BacktestDay`: per day,
side and rule family) and the accounts the two versions treat differently recorded (`BacktestLine`). Changes no
account. A batch runs exactly once with its job batch's transaction, so the sums are exact.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import F

from accounts.backtest import Window, freezing_days_sql
from accounts.models import Backtest, RuleSet
from accounts.rule_queries import version_rules


def backtest_run_batch(*, job_id: int, line_ids: list[int]) -> None:
    backtest = Backtest.objects.select_related("ruleset").get(job_id=job_id)
    if not line_ids:
        return
    live = version_rules(RuleSet.objects.get(version=backtest.live_version).pk)
    draft = version_rules(backtest.ruleset_id)
    sql, params = freezing_days_sql(live, draft, line_ids, Window(backtest.first_day, backtest.last_day))
    with connection.cursor() as cur:
        cur.execute(f"CREATE TEMP TABLE backtest_days ON COMMIT DROP AS {sql}", params)
        cur.execute(
            """
            CREATE TEMP TABLE backtest_flips ON COMMIT DROP AS
            SELECT line_id, day, CASE WHEN live THEN 'spared' ELSE 'caught' END AS side
            FROM (SELECT line_id, day, bool_or(side = 'live') AS live, bool_or(side = 'draft') AS draft
                  FROM backtest_days GROUP BY line_id, day) a
            WHERE live <> draft
            """
        )
        # Added to what the other batches counted; in one order, so that two batches never wait on each other.
        cur.execute(
            """
            INSERT INTO accounts_backtestday (backtest_id, day, code, side, n)
            SELECT %(backtest)s, day, code, side, n FROM (
                SELECT day, code, side, count(*) AS n FROM backtest_days GROUP BY day, code, side
                UNION ALL
                SELECT day, '', side, count(DISTINCT line_id) FROM backtest_days GROUP BY day, side
                UNION ALL
                SELECT day, '', side, count(*) FROM backtest_flips GROUP BY day, side
                UNION ALL
                SELECT f.day, b.code, f.side, count(*)
                FROM backtest_flips f
                JOIN backtest_days b ON b.line_id = f.line_id AND b.day = f.day
                 AND b.side = CASE WHEN f.side = 'spared' THEN 'live' ELSE 'draft' END
                GROUP BY f.day, b.code, f.side
            ) counts
            ORDER BY day, code, side
            ON CONFLICT (backtest_id, day, code, side) DO UPDATE SET n = accounts_backtestday.n + EXCLUDED.n
            """,
            {"backtest": backtest.pk},
        )
        cur.execute(
            """
            INSERT INTO accounts_backtestline (backtest_id, line_id, spared_days, caught_days, first_day, codes)
            SELECT %(backtest)s, f.line_id, count(*) FILTER (WHERE f.side = 'spared'),
                   count(*) FILTER (WHERE f.side = 'caught'), min(f.day),
                   (SELECT string_agg(DISTINCT b.code, ',' ORDER BY b.code) FROM backtest_days b
                    JOIN backtest_flips g ON g.line_id = b.line_id AND g.day = b.day
                     AND b.side = CASE WHEN g.side = 'spared' THEN 'live' ELSE 'draft' END
                    WHERE b.line_id = f.line_id)
            FROM backtest_flips f
            GROUP BY f.line_id
            """,
            {"backtest": backtest.pk},
        )
        # Dropped now, not only at commit: a batch that failed as a whole runs again account by account.
        cur.execute("DROP TABLE backtest_days, backtest_flips")
    Backtest.objects.filter(pk=backtest.pk).update(evaluated=F("evaluated") + len(line_ids))
