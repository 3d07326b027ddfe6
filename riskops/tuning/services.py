"""Asking for a simulation of a draft: a job over every account (the jobs page shows its progress) whose batches
record what the draft would change (`accounts.services.simulations`)."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from accounts.models import RuleSet, Simulation
from accounts.services.rulesets import require_may_tune
from riskops.core.audit import Actor
from riskops.core.errors import DomainError
from riskops.jobs.requests import job_request_simulation


def simulation_request(*, version: int, actor: Actor) -> Simulation:
    """Simulate version `version` (a draft, or any other) against the live version over every active and frozen
    account, as of now. Nothing but the simulation's report is written."""
    require_may_tune(actor)
    with transaction.atomic():
        ruleset = RuleSet.objects.filter(version=version).first()
        live = RuleSet.objects.filter(is_active=True).first()
        if ruleset is None or live is None:
            raise DomainError(_("No such version"))
        job = job_request_simulation(
            actor=actor,
            reason=_("simulate version %(v)s against the live version %(live)s")
            % {"v": ruleset.version, "live": live.version},
        )
        # The batches start after this commits: the simulation they record into exists by then.
        return Simulation.objects.create(
            ruleset=ruleset,
            live_version=live.version,
            job_id=job.pk,
            requested_by=actor.user,
            requested_at=job.requested_at,
        )
