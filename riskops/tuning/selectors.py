"""Rule tuning's reads: each rule of a version with what it fires on now, what it froze over the last days and how
often a person overturned it (the dashboard's kept figures and overturn rates); a simulation's report; what an
approver of a draft reviews (its diff, its evidence and whether that is fresh, its blast radius)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, OuterRef, Subquery, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Case, Rule, RuleSet, Simulation, SimulationLine, SimulationOutcome
from accounts.rule_params import PARAMS
from accounts.selectors.rules import Difference, active_signal_counts, rules_digest, rules_of, ruleset_diff
from appeals.models import Appeal, AppealStatus
from riskops.core.audit import Actor
from riskops.core.roles import TUNE_RULES, may
from riskops.dashboard.selectors import Rate, daily_counts, figure_link, overturn_rates
from riskops.models import AuditEvent, Job, JobStatus

DAYS = 90  # the days the rules page's figures are over


@dataclass
class RuleRow:
    rule: Rule
    params: list[tuple[str, Any]]  # (label, value), in the family's order
    holding: int  # signals of this rule's family holding now
    froze: int  # cases it froze or cut over the last DAYS days, this version
    froze_link: str
    rate: Rate | None  # this version's overturn rate over those days
    form: Any = None  # a draft's rule form, for who may change it


def rule_rows(ruleset: RuleSet, *, today: date | None = None) -> tuple[date, list[RuleRow]]:
    today = today or timezone.localdate()
    start = today - timedelta(days=DAYS - 1)
    counts = daily_counts(start, today)
    adverse: dict[date, dict[str, int]] = {}
    for (figure, day, key), n in counts.items():
        if figure == "adverse":
            adverse.setdefault(day, {})[key] = n
    rates = {(r.code, r.version): r for r in overturn_rates(start, today, adverse)}
    holding = active_signal_counts()
    rows = []
    for rule in rules_of(ruleset):
        key = f"{rule.code}:{ruleset.version}"
        specs = PARAMS.get(rule.code, [])
        rows.append(
            RuleRow(
                rule=rule,
                params=[(str(p.label), rule.params.get(p.key)) for p in specs],
                holding=holding.get(rule.code, 0) if ruleset.is_active else 0,
                froze=sum(keys.get(key, 0) for keys in adverse.values()),
                froze_link=figure_link("adverse", start, today, key),
                rate=rates.get((rule.code, str(ruleset.version))),
            )
        )
    return start, rows


SAMPLE = 20  # sample accounts shown per outcome


@dataclass
class Report:
    simulation: Simulation
    job: Job | None
    counts: dict[str, int]  # outcome -> accounts
    exposure: dict[str, Decimal]  # outcome -> outstanding principal
    by_family: list[tuple[str, str, int]]  # (outcome, code, accounts)
    samples: dict[str, list[dict[str, Any]]]  # outcome -> rows (account, codes, exposure, case, its appeals' states)

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.status in (JobStatus.QUEUED, JobStatus.RUNNING)

    @property
    def unchanged(self) -> int:
        return self.simulation.evaluated - sum(self.counts.values())


def simulation_report(simulation: Simulation) -> Report:
    lines = SimulationLine.objects.filter(simulation=simulation)
    counts = dict.fromkeys(SimulationOutcome.values, 0)
    exposure = {o: Decimal("0") for o in SimulationOutcome.values}
    for row in lines.values("outcome").annotate(n=Count("*"), exposure=Sum("exposure")).order_by():
        counts[row["outcome"]], exposure[row["outcome"]] = row["n"], row["exposure"] or Decimal("0")
    families: dict[tuple[str, str], int] = defaultdict(int)
    for outcome, codes, n in lines.values_list("outcome", "codes").annotate(n=Count("*")).order_by():
        for code in codes.split(","):
            families[(outcome, code)] += n
    samples: dict[str, list[dict[str, Any]]] = {}
    for outcome in SimulationOutcome.values:
        picked = list(lines.filter(outcome=outcome).select_related("line").order_by("-exposure", "line_id")[:SAMPLE])
        ids = [p.line_id for p in picked]
        cases = dict(
            Case.objects.filter(line_id__in=ids)
            .order_by("line_id", "-id")
            .distinct("line_id")
            .values_list("line_id", "id")
        )
        appeals: dict[int, list[str]] = defaultdict(list)
        for line_id, status in (
            Appeal.objects.filter(line_id__in=ids).order_by("line_id", "-id").values_list("line_id", "status")
        ):
            appeals[line_id].append(str(AppealStatus(status).label))
        samples[outcome] = [
            {
                "account_no": p.line.account_no,
                "codes": p.codes.split(","),
                "exposure": p.exposure,
                "case_id": cases.get(p.line_id),
                "appeals": appeals.get(p.line_id, []),
            }
            for p in picked
        ]
    return Report(
        simulation=simulation,
        job=Job.objects.filter(pk=simulation.job_id).first(),
        counts=counts,
        exposure=exposure,
        by_family=sorted((o, c, n) for (o, c), n in families.items()),
        samples=samples,
    )


def simulation_rows(simulation: Simulation, outcome: str) -> Iterator[tuple[str, str, Decimal, int | None]]:
    """Every account of one outcome, for the CSV: account, families, exposure, latest case."""
    latest = Case.objects.filter(line_id=OuterRef("line_id")).order_by("-id").values("id")[:1]
    rows = (
        SimulationLine.objects.filter(simulation=simulation, outcome=outcome)
        .annotate(case_id=Subquery(latest))
        .order_by("line_id")
        .values_list("line__account_no", "codes", "exposure", "case_id")
    )
    yield from rows.iterator(chunk_size=5000)


@dataclass
class Impact:
    """What the simulation says activating the version does."""

    freeze: int
    release: int
    exposure: Decimal  # outstanding principal of the accounts newly frozen or released

    @property
    def accounts(self) -> int:
        return self.freeze + self.release

    @property
    def over_radius(self) -> bool:
        return self.accounts > settings.RULES_BLAST_RADIUS_ACCOUNTS or self.exposure > settings.RULES_BLAST_RADIUS_YUAN


def impact_of(simulation: Simulation) -> Impact:
    counts = dict.fromkeys(("freeze", "release"), 0)
    exposure = Decimal("0")
    for row in (
        SimulationLine.objects.filter(simulation=simulation)
        .values("outcome")
        .annotate(n=Count("*"), e=Sum("exposure"))
        .order_by()
    ):
        counts[row["outcome"]] = row["n"]
        exposure += row["e"] or 0
    return Impact(counts["freeze"], counts["release"], exposure)


def authors_of(ruleset: RuleSet) -> set[int]:
    """Who made the version or changed one of its rules: none of them may approve it."""
    rule_ids = list(Rule.objects.filter(ruleset=ruleset).values_list("pk", flat=True))
    changed = AuditEvent.objects.filter(action="rule.change", object_type="rule", object_id__in=rule_ids)
    users = set(changed.exclude(actor_user=None).values_list("actor_user_id", flat=True))
    return users | ({ruleset.created_by_id} if ruleset.created_by_id else set())


def latest_simulation(ruleset: RuleSet) -> Simulation | None:
    return Simulation.objects.filter(ruleset=ruleset).order_by("-pk").first()


def evidence_problems(ruleset: RuleSet, simulation: Simulation | None, live: RuleSet, now: datetime) -> list[str]:
    """Why the simulation cannot back the activation of `ruleset` now (none: it can)."""
    if simulation is None:
        return [_("Version %(v)s has not been simulated: simulate it first.") % {"v": ruleset.version}]
    problems = []
    job = Job.objects.filter(pk=simulation.job_id).values_list("status", flat=True).first()
    if job != JobStatus.SUCCEEDED:
        problems.append(_("Simulation #%(id)s has not finished.") % {"id": simulation.pk})
    if simulation.rules_digest != rules_digest(ruleset):
        problems.append(
            _("Version %(v)s changed after simulation #%(id)s: simulate it again.")
            % {"v": ruleset.version, "id": simulation.pk}
        )
    if simulation.live_version != live.version:
        problems.append(
            _("Simulation #%(id)s compared with version %(was)s; version %(now)s is live now: simulate again.")
            % {"id": simulation.pk, "was": simulation.live_version, "now": live.version}
        )
    age = now - simulation.requested_at
    if age > timedelta(minutes=settings.RULES_EVIDENCE_MAX_AGE_MINUTES):
        problems.append(
            _(
                "Simulation #%(id)s ran on the data of %(minutes)s minutes ago, more than the %(max)s allowed: "
                "simulate again."
            )
            % {
                "id": simulation.pk,
                "minutes": int(age.total_seconds() // 60),
                "max": settings.RULES_EVIDENCE_MAX_AGE_MINUTES,
            }
        )
    return problems


@dataclass
class ActivationReview:
    ruleset: RuleSet
    live: RuleSet
    diff: list[Difference]
    simulation: Simulation | None
    report: Report | None
    impact: Impact | None
    problems: list[str]  # why its evidence cannot back an activation now
    authored: bool  # the viewer made or changed it: another risk manager approves
    may_approve: bool

    @property
    def radius(self) -> tuple[int, int]:
        return settings.RULES_BLAST_RADIUS_ACCOUNTS, settings.RULES_BLAST_RADIUS_YUAN


def activation_review(ruleset: RuleSet, actor: Actor) -> ActivationReview:
    live = RuleSet.objects.get(is_active=True)
    simulation = latest_simulation(ruleset)
    problems = evidence_problems(ruleset, simulation, live, timezone.now()) if ruleset.is_draft else []
    authored = actor.user_id in authors_of(ruleset)
    return ActivationReview(
        ruleset=ruleset,
        live=live,
        diff=ruleset_diff(live, ruleset),
        simulation=simulation,
        report=simulation_report(simulation) if simulation else None,
        impact=impact_of(simulation) if simulation else None,
        problems=problems,
        authored=authored,
        may_approve=ruleset.is_draft and not authored and not problems and may(actor, TUNE_RULES),
    )
