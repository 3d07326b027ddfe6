"""The engine's reaction to new upstream data: lines marked touched, evaluated in coalesced batches.

Ingestion marks the lines it stored something for (`lines_touch`, in the ingesting transaction, so a mark is
visible exactly when its events are). `touched_evaluate` claims up to a batch of marks with SKIP LOCKED, deletes
them and evaluates their lines through the engine, all in one transaction: any number of workers share the marks
without waiting for one another, a line touched by a thousand events is evaluated once, and a worker that dies
mid-batch rolls back and leaves its marks for the next. A mark that arrives while its line is being evaluated is a
new row, claimed by the next round.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from celery import current_app
from django.conf import settings
from django.db import connection, transaction

from accounts import engine
from accounts.models import TouchedLine
from riskops.core.audit import Actor

logger = logging.getLogger(__name__)
REACT_TASK = "accounts.tasks.engine_react"
_TABLE = TouchedLine._meta.db_table


def lines_touch(line_ids: Iterable[int], *, at: datetime) -> int:
    """Mark lines for the engine (one row each, one INSERT) and ask a worker to react once this commits."""
    ids = sorted(set(line_ids))
    if not ids:
        return 0
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {_TABLE} (line_id, touched_at) SELECT unnest(%(ids)s::bigint[]), %(at)s",
            {"ids": ids, "at": at},
        )
    transaction.on_commit(_react_soon)
    return len(ids)


def _react_soon() -> None:
    # By name: tasks call services, not the other way. A lost publish costs the wait for the beat's sweep.
    task = current_app.tasks[REACT_TASK]
    if current_app.conf.task_always_eager:
        task()
    else:
        try:
            task.delay()
        except Exception:  # noqa: BLE001 - the beat's sweep evaluates the marks; nothing is lost
            logger.warning("could not ask a worker to react to ingested data; the periodic sweep will")


def touched_evaluate(*, limit: int | None = None) -> int:
    """Claim up to `limit` (ENGINE_BATCH_SIZE) touched marks, evaluate their lines; return how many marks."""
    limit = limit or settings.ENGINE_BATCH_SIZE
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute(
                f"""
                DELETE FROM {_TABLE} WHERE id IN (
                    SELECT id FROM {_TABLE} ORDER BY touched_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
                ) RETURNING line_id
                """,  # noqa: S608 - table from the model
                {"limit": limit},
            )
            marks = [r[0] for r in cur.fetchall()]
        if marks:
            engine.evaluate_lines(sorted(set(marks)), actor=Actor.engine())
    return len(marks)


def touched_evaluate_all(*, rounds: int = 1000) -> int:
    """Evaluate touched lines batch after batch until none is left (or `rounds` batches); return the marks."""
    total = 0
    for _ in range(rounds):
        done = touched_evaluate()
        total += done
        if done == 0:
            break
    return total
