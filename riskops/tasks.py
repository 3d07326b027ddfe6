"""Celery tasks for jobs: thin, take ids, call riskops.jobs; safe to receive twice."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from riskops.core import audit_chain
from riskops.dashboard import services as dashboard
from riskops.jobs import dispatch, requests, runner


@shared_task(
    name=dispatch.RUN_BATCH_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    # Transient database trouble (a deadlock, a lost connection): the whole batch again, later.
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=8,
    time_limit=settings.JOB_BATCH_TIME_LIMIT + 30,
    soft_time_limit=settings.JOB_BATCH_TIME_LIMIT,
)
def job_run_batch(self, batch_id: int) -> str:  # type: ignore[no-untyped-def]
    try:
        return runner.job_run_batch(batch_id)
    except (OperationalError, InterfaceError) as exc:
        if self.request.retries >= self.max_retries:
            runner.job_batch_failed(batch_id=batch_id, message=str(exc))
            return "failed"
        raise


@shared_task(name="riskops.tasks.jobs_dispatch", acks_late=True)
def jobs_dispatch() -> int:
    """Beat: send pending batches (new, or lost with their worker) to the broker."""
    return dispatch.jobs_dispatch()


@shared_task(name="riskops.tasks.job_reevaluate_all", acks_late=True)
def job_reevaluate_all() -> int:
    """Beat, nightly: re-evaluate every active and frozen line as one job."""
    return requests.job_reevaluate_all().pk


@shared_task(name="riskops.tasks.audit_seal", acks_late=True, ignore_result=True)
def audit_seal() -> int:
    """Beat, every few seconds: chain the audit events committed since the last run."""
    return audit_chain.audit_seal()


@shared_task(name="riskops.tasks.audit_checkpoint", acks_late=True, ignore_result=True)
def audit_checkpoint() -> int | None:
    """Beat, every few minutes: seal, then sign the chain's head (when it moved)."""
    checkpoint = audit_chain.audit_checkpoint()
    return checkpoint.pk if checkpoint else None


@shared_task(name="riskops.tasks.dashboard_refresh", acks_late=True, ignore_result=True)
def dashboard_refresh() -> int:
    """Beat, every few minutes: count the dashboard's closed days not counted yet (idempotent)."""
    return dashboard.dashboard_refresh()
