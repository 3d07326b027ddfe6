"""Rule tuning's changes that span apps: simulating a draft (a job over every account, whose batches record what
the draft would change, `accounts.services.simulations`) and activating it with a second risk manager's approval.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import Backtest, RuleSet, Simulation, SimulationLine
from accounts.selectors.rules import rules_digest
from accounts.services.rulesets import RULESET_LOCK, require_may_tune
from riskops.core.audit import Actor, Change, audit_write
from riskops.core.errors import ConflictError, DomainError, NotAllowed
from riskops.jobs.requests import job_request, job_request_over_book
from riskops.models import Job, JobKind, JobSelection
from riskops.tuning.selectors import (
    Impact,
    authors_of,
    evidence_problems,
    impact_of,
    latest_backtest,
    latest_simulation,
)

MIN_REASON = 10  # characters of the reason typed above the blast radius


def simulation_request(*, version: int, actor: Actor) -> Simulation:
    """Simulate version `version` (a draft, or any other) against the live version over every active and frozen
    account, as of now. Nothing but the simulation's report is written."""
    require_may_tune(actor)
    with transaction.atomic():
        ruleset = RuleSet.objects.filter(version=version).first()
        live = RuleSet.objects.filter(is_active=True).first()
        if ruleset is None or live is None:
            raise DomainError(_("No such version"))
        job = job_request_over_book(
            kind=JobKind.SIMULATE,
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
            rules_digest=rules_digest(ruleset),
        )


BACKTEST_DAYS = 90  # the default window
MAX_BACKTEST_DAYS = 400


def backtest_request(
    *, version: int, actor: Actor, days: int = BACKTEST_DAYS, last_day: date | None = None
) -> Backtest:
    """Replay version `version` and the live version over the `days` days ending yesterday (or `last_day`), day by
    day on the events known on each day, as a job over every account. Nothing but the backtest's report is written."""
    require_may_tune(actor)
    today = timezone.localdate()
    last_day = last_day or today - timedelta(days=1)
    if not 1 <= days <= MAX_BACKTEST_DAYS:
        raise DomainError(_("A backtest covers 1 to %(max)s days, not %(n)s") % {"max": MAX_BACKTEST_DAYS, "n": days})
    if last_day >= today:
        raise DomainError(_("A backtest ends yesterday at the latest: today is not over"))
    with transaction.atomic():
        ruleset = RuleSet.objects.filter(version=version).first()
        live = RuleSet.objects.filter(is_active=True).first()
        if ruleset is None or live is None:
            raise DomainError(_("No such version"))
        first_day = last_day - timedelta(days=days - 1)
        job = job_request_over_book(
            kind=JobKind.BACKTEST,
            actor=actor,
            reason=_("backtest version %(v)s against the live version %(live)s, %(first)s to %(last)s")
            % {"v": ruleset.version, "live": live.version, "first": first_day, "last": last_day},
        )
        return Backtest.objects.create(
            ruleset=ruleset,
            live_version=live.version,
            job_id=job.pk,
            requested_by=actor.user,
            requested_at=job.requested_at,
            first_day=first_day,
            last_day=last_day,
            rules_digest=rules_digest(ruleset),
        )


# --- Activation: a second risk manager's approval, on fresh evidence, within the blast radius or with a reason


@dataclass
class Activated:
    ruleset: RuleSet
    previous: int  # the version that was live
    impact: Impact
    job: Job | None  # the re-evaluation of the affected accounts, when asked for


_NEWER = {
    "simulation": gettext_lazy("Simulation #%(id)s is newer than the one you reviewed: review it first"),
    "backtest": gettext_lazy("Backtest #%(id)s is newer than the one you reviewed: review it first"),
}


def ruleset_activate(
    *,
    version: int,
    actor: Actor,
    simulation_id: int,
    backtest_id: int,
    reason: str = "",
    reevaluate: bool = False,
) -> Activated:
    """Make draft `version` the live version, approved by a risk manager who neither made nor changed it, on the
    evidence of its latest simulation and backtest (`simulation_id`, `backtest_id`: those the approver saw), fresh and
    of the version as it is.
    Above the blast radius (accounts or exposure) the approver must type a reason. Audited as `ruleset.activate`;
    with `reevaluate`, a re-evaluate-and-unfreeze job over the accounts the simulation names follows."""
    require_may_tune(actor)
    reason = reason.strip()
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute(
                "SELECT pg_advisory_xact_lock(%s)", [RULESET_LOCK]
            )  # one activation (and new version) at a time
        ruleset = RuleSet.objects.select_for_update().filter(version=version).first()
        live = RuleSet.objects.select_for_update().filter(is_active=True).first()
        if ruleset is None or live is None:
            raise DomainError(_("No such version"))
        if not ruleset.is_draft:
            raise DomainError(_("Version %(v)s has been live: only a draft can be activated") % {"v": ruleset.version})
        if actor.user_id in authors_of(ruleset):
            raise NotAllowed(
                _("You made or changed version %(v)s: another risk manager must approve its activation")
                % {"v": ruleset.version}
            )
        simulation, backtest = latest_simulation(ruleset), latest_backtest(ruleset)
        for kind, evidence, reviewed in (
            ("simulation", simulation, simulation_id),
            ("backtest", backtest, backtest_id),
        ):
            if evidence is not None and evidence.pk != reviewed:
                raise ConflictError(_NEWER[kind] % {"id": evidence.pk})
        now = timezone.now()
        problems = evidence_problems(ruleset, live, now, simulation, backtest)
        if problems or simulation is None or backtest is None:  # none of them is a problem too
            raise DomainError(" ".join(problems))
        impact = impact_of(simulation)
        if impact.over_radius and len(reason) < MIN_REASON:
            raise DomainError(
                _(
                    "Activating version %(v)s changes %(n)s accounts (¥%(exposure)s), above the blast radius of "
                    "%(max_n)s accounts or ¥%(max_e)s: type why, in at least %(min)s characters"
                )
                % {
                    "v": ruleset.version,
                    "n": impact.accounts,
                    "exposure": f"{impact.exposure:,.2f}",
                    "max_n": settings.RULES_BLAST_RADIUS_ACCOUNTS,
                    "max_e": f"{settings.RULES_BLAST_RADIUS_YUAN:,}",
                    "min": MIN_REASON,
                }
            )
        RuleSet.objects.filter(pk=live.pk).update(is_active=False)
        shadow_until = min(ruleset.shadow_until, now) if ruleset.shadow_until else None  # live now: no shadow
        RuleSet.objects.filter(pk=ruleset.pk).update(
            is_active=True, activated_at=now, activated_by=actor.user, shadow_until=shadow_until
        )
        ruleset.refresh_from_db()
        audit_write(
            actor=actor,
            at=now,
            changes=[
                Change(
                    "ruleset.activate",
                    "ruleset",
                    ruleset.pk,
                    None,
                    {"live": live.version},
                    {
                        "live": ruleset.version,
                        "simulation": simulation.pk,
                        "backtest": backtest.pk,
                        "newly_frozen": impact.freeze,
                        "newly_released": impact.release,
                        "exposure": f"{impact.exposure:.2f}",
                        "over_blast_radius": impact.over_radius,
                        "reason": reason,
                    },
                )
            ],
        )
        job = None
        line_ids = sorted(SimulationLine.objects.filter(simulation=simulation).values_list("line_id", flat=True))
        if reevaluate and line_ids:
            job = job_request(
                kind=JobKind.REEVALUATE_UNFREEZE,
                selection_kind=JobSelection.IDS,
                selection={"line_ids": line_ids},
                actor=actor,
                reason=_("version %(v)s activated: the accounts simulation #%(id)s named")
                % {"v": ruleset.version, "id": simulation.pk},
            )
    return Activated(ruleset=ruleset, previous=live.version, impact=impact, job=job)
