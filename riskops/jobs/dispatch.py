"""Sending job batches to the broker. The batch rows are the outbox: what is pending is sent, after the job's
commit and again from beat, so a broker outage only delays a job and a lost worker only costs a resend."""

from __future__ import annotations

from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from riskops.models import Job, JobBatch

RUN_BATCH_TASK = "riskops.tasks.job_run_batch"


def jobs_dispatch(*, limit: int = 1000) -> int:
    """Send pending batches to the broker: new ones, and ones sent long ago and still not done (a lost worker).

    Claimed with one conditional UPDATE (SKIP LOCKED: a batch that is running holds its row), so two dispatchers
    never send the same batch at once. A batch that could not be sent is released for the next round.
    """
    # By name from Celery's registry: the task module calls the runner, not the other way.
    run_batch = current_app.tasks[RUN_BATCH_TASK]
    now = timezone.now()
    stale = now - timedelta(seconds=settings.JOB_REDISPATCH_SECONDS)
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            f"""
            UPDATE {JobBatch._meta.db_table} SET dispatched_at = %(now)s, dispatch_count = dispatch_count + 1
            WHERE id IN (
                SELECT b.id FROM {JobBatch._meta.db_table} b JOIN {Job._meta.db_table} j ON j.id = b.job_id
                WHERE b.status = 'pending' AND j.status IN ('queued', 'running')
                  AND (b.dispatched_at IS NULL OR b.dispatched_at < %(stale)s)
                ORDER BY b.id LIMIT %(limit)s FOR UPDATE OF b SKIP LOCKED
            )
            RETURNING id
            """,  # noqa: S608 - table names from the models, values bound
            {"now": now, "stale": stale, "limit": limit},
        )
        claimed = sorted(r[0] for r in cur.fetchall())
    sent = 0
    try:
        for batch_id in claimed:
            run_batch.delay(batch_id)
            sent += 1
    finally:
        unsent = claimed[sent:]
        if unsent:
            JobBatch.objects.filter(pk__in=unsent, dispatched_at=now).update(
                dispatched_at=None, dispatch_count=F("dispatch_count") - 1
            )
    return sent
