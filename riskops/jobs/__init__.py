"""Jobs over many accounts: re-evaluate, unfreeze in bulk, remind. Above the apps: they use accounts and appeals.

- `requests`: asking for a job, approving and cancelling it; starting freezes its selection into batches.
- `runner`: sending batches to the broker (the batch rows are the outbox) and running one batch.
- `selectors`, `views`, `api`, `forms`, `urls`: reading and driving jobs from pages and the API.
The Celery tasks are `riskops.tasks`.
"""

from riskops.jobs.dispatch import jobs_dispatch
from riskops.jobs.requests import (
    MAX_EXPLICIT_IDS,
    UNFREEZING_KINDS,
    job_approve,
    job_cancel,
    job_reevaluate_all,
    job_request,
    job_request_for_cases,
)
from riskops.jobs.runner import job_batch_failed, job_run_batch

__all__ = [
    "MAX_EXPLICIT_IDS",
    "UNFREEZING_KINDS",
    "job_approve",
    "job_batch_failed",
    "job_cancel",
    "job_reevaluate_all",
    "job_request",
    "job_request_for_cases",
    "job_run_batch",
    "jobs_dispatch",
]
