"""Jobs started from other apps' pages (registered in `riskops.apps`)."""

from __future__ import annotations

from django.utils.translation import gettext as _

from riskops.core.audit import Actor
from riskops.jobs.requests import job_request_for_cases
from riskops.models import JobKind


def reevaluate_cases(case_ids: list[int], actor: Actor) -> str:
    """The queue's "re-evaluate now": a re-evaluation job over the selected cases' accounts."""
    job = job_request_for_cases(kind=JobKind.REEVALUATE, case_ids=case_ids, actor=actor)
    return _("Re-evaluation of %(n)d accounts started as job #%(id)s.") % {
        "n": len(job.selection.get("line_ids", [])),
        "id": job.pk,
    }
