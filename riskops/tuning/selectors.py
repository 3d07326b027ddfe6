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
from django.db import models
from django.db.models import Case as Case_
from django.db.models import Count, Exists, OuterRef, Subquery, Sum, Value, When
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import (
    Backtest,
    BacktestLine,
    BacktestSide,
    Case,
    LineChange,
    LineChangeKind,
    LineStatus,
    Repayment,
    Rule,
    RuleSet,
    ShadowKind,
    ShadowRecord,
    Simulation,
    SimulationLine,
    SimulationOutcome,
)
from accounts.rule_params import PARAMS
from accounts.selectors.rules import Difference, active_signal_counts, rules_digest, rules_of, ruleset_diff
from appeals.models import Appeal, AppealStatus
from riskops.core.audit import Actor
from riskops.core.roles import TUNE_RULES, may
from riskops.dashboard.selectors import Rate, daily_counts, figure_link, overturn_rates
from riskops.models import ActorKind, AuditEvent, Job, JobStatus

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
    def impact(self) -> Impact:
        return Impact(self.counts["freeze"], self.counts["release"], sum(self.exposure.values(), Decimal("0")))

    @property
    def unchanged(self) -> int:
        return self.simulation.evaluated - sum(self.counts.values())


def simulation_report(simulation: Simulation) -> Report:
    lines = SimulationLine.objects.filter(simulation=simulation)
    counts, exposure = _outcome_totals(simulation)
    families: dict[tuple[str, str], int] = defaultdict(int)
    for outcome, codes, n in lines.values_list("outcome", "codes").annotate(n=Count("*")).order_by():
        for code in codes.split(","):
            families[(outcome, code)] += n
    samples: dict[str, list[dict[str, Any]]] = {}
    for outcome in SimulationOutcome.values:
        picked = list(lines.filter(outcome=outcome).select_related("line").order_by("-exposure", "line_id")[:SAMPLE])
        ids = [p.line_id for p in picked]
        cases = _latest_cases(ids)
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
    counts, exposure = _outcome_totals(simulation)
    return Impact(counts["freeze"], counts["release"], sum(exposure.values(), Decimal("0")))


def _outcome_totals(simulation: Simulation) -> tuple[dict[str, int], dict[str, Decimal]]:
    """Per outcome, the accounts a simulation names and their exposure."""
    counts = dict.fromkeys(SimulationOutcome.values, 0)
    exposure = {o: Decimal("0") for o in SimulationOutcome.values}
    rows = SimulationLine.objects.filter(simulation=simulation).values("outcome")
    for row in rows.annotate(n=Count("*"), exposure=Sum("exposure")).order_by():
        counts[row["outcome"]], exposure[row["outcome"]] = row["n"], row["exposure"] or Decimal("0")
    return counts, exposure


def authors_of(ruleset: RuleSet) -> set[int]:
    """Who made the version or changed one of its rules: none of them may approve it."""
    rule_ids = list(Rule.objects.filter(ruleset=ruleset).values_list("pk", flat=True))
    changed = AuditEvent.objects.filter(action="rule.change", object_type="rule", object_id__in=rule_ids)
    users = set(changed.exclude(actor_user=None).values_list("actor_user_id", flat=True))
    return users | ({ruleset.created_by_id} if ruleset.created_by_id else set())


def latest_simulation(ruleset: RuleSet) -> Simulation | None:
    return Simulation.objects.filter(ruleset=ruleset).order_by("-pk").first()


def latest_backtest(ruleset: RuleSet) -> Backtest | None:
    return Backtest.objects.filter(ruleset=ruleset).order_by("-pk").first()


def _messages() -> dict[str, dict[str, str]]:
    """Each problem's message, for a simulation and for a backtest (whole sentences: they translate so)."""
    return {
        "simulation": {
            "missing": _("Version %(v)s has not been simulated: simulate it first."),
            "running": _("Simulation #%(id)s has not finished."),
            "changed": _("Version %(v)s changed after simulation #%(id)s: simulate it again."),
            "live": _("Simulation #%(id)s compared with version %(was)s; version %(now)s is live now: simulate again."),
            "old": _(
                "Simulation #%(id)s ran on the data of %(minutes)s minutes ago, more than the %(max)s allowed: "
                "simulate again."
            ),
        },
        "backtest": {
            "missing": _("Version %(v)s has not been backtested: backtest it first."),
            "running": _("Backtest #%(id)s has not finished."),
            "changed": _("Version %(v)s changed after backtest #%(id)s: backtest it again."),
            "live": _("Backtest #%(id)s compared with version %(was)s; version %(now)s is live now: backtest again."),
            "old": _(
                "Backtest #%(id)s ran on the data of %(minutes)s minutes ago, more than the %(max)s allowed: "
                "backtest again."
            ),
        },
    }


def evidence_problems(
    ruleset: RuleSet, live: RuleSet, now: datetime, simulation: Simulation | None, backtest: Backtest | None
) -> list[str]:
    """Why the latest simulation and backtest cannot back the activation of `ruleset` now (none: they can): each
    must be finished, of the version as it is now, against the version live now, and recent enough."""
    problems = []
    messages = _messages()
    limits = {
        "simulation": settings.RULES_EVIDENCE_MAX_AGE_MINUTES,
        "backtest": settings.RULES_BACKTEST_MAX_AGE_MINUTES,
    }
    for kind, evidence in (("simulation", simulation), ("backtest", backtest)):
        say = messages[kind]
        if evidence is None:
            problems.append(say["missing"] % {"v": ruleset.version})
            continue
        job = Job.objects.filter(pk=evidence.job_id).values_list("status", flat=True).first()
        if job != JobStatus.SUCCEEDED:
            problems.append(say["running"] % {"id": evidence.pk})
        if evidence.rules_digest != rules_digest(ruleset):
            problems.append(say["changed"] % {"v": ruleset.version, "id": evidence.pk})
        if evidence.live_version != live.version:
            problems.append(say["live"] % {"id": evidence.pk, "was": evidence.live_version, "now": live.version})
        age = now - evidence.requested_at
        if age > timedelta(minutes=limits[kind]):
            minutes = int(age.total_seconds() // 60)
            problems.append(say["old"] % {"id": evidence.pk, "minutes": minutes, "max": limits[kind]})
    return problems


@dataclass
class ActivationReview:
    ruleset: RuleSet
    live: RuleSet
    diff: list[Difference]
    simulation: Simulation | None
    report: Report | None
    backtest: BacktestReport | None
    impact: Impact | None
    problems: list[str]  # why its evidence cannot back an activation now
    authored: bool  # the viewer made or changed it: another risk manager approves
    may_approve: bool

    @property
    def radius(self) -> tuple[int, int]:
        return settings.RULES_BLAST_RADIUS_ACCOUNTS, settings.RULES_BLAST_RADIUS_YUAN


def activation_review(ruleset: RuleSet, actor: Actor) -> ActivationReview:
    live = RuleSet.objects.get(is_active=True)
    simulation, backtest = latest_simulation(ruleset), latest_backtest(ruleset)
    report = simulation_report(simulation) if simulation else None
    problems = evidence_problems(ruleset, live, timezone.now(), simulation, backtest) if ruleset.is_draft else []
    authored = actor.user_id in authors_of(ruleset)
    return ActivationReview(
        ruleset=ruleset,
        live=live,
        diff=ruleset_diff(live, ruleset),
        simulation=simulation,
        report=report,
        backtest=backtest_report(backtest) if backtest else None,
        impact=report.impact if report else None,
        problems=problems,
        authored=authored,
        may_approve=ruleset.is_draft and not authored and not problems and may(actor, TUNE_RULES),
    )


# --- A backtest's report


class Ending(models.TextChoices):
    """How an account the two versions treat differently actually ended (the labels: a person's overturn says the
    freeze was wrong)."""

    APPEAL_APPROVED = "appeal_approved", gettext_lazy("appeal approved")
    REVIEWER_UNFROZE = "reviewer_unfroze", gettext_lazy("unfrozen by a reviewer")
    REPAID = "repaid", gettext_lazy("repaid since")
    STILL_FROZEN = "still_frozen", gettext_lazy("still frozen")
    NONE = "none", gettext_lazy("none of these")


OVERTURNED = (Ending.APPEAL_APPROVED, Ending.REVIEWER_UNFROZE)
SIDES = [("spared", gettext_lazy("only the live version freezes")), ("caught", gettext_lazy("only the draft freezes"))]
NOT_OVERTURNED = (Ending.STILL_FROZEN, Ending.REPAID)


def _ending(first_day: str = "first_day") -> Case_:
    """The ending of each BacktestLine row, the first that applies in the order of `Ending`."""
    approved = Appeal.objects.filter(
        line_id=OuterRef("line_id"), status__in=[AppealStatus.APPROVED, AppealStatus.APPROVED_IN_PART]
    )
    unfroze = LineChange.objects.filter(
        line_id=OuterRef("line_id"), kind=LineChangeKind.UNFREEZE, actor_kind=ActorKind.OPERATOR
    )
    repaid = Repayment.objects.filter(line_id=OuterRef("line_id"), occurred_at__date__gte=OuterRef(first_day))
    return Case_(
        When(Exists(approved), then=Value(Ending.APPEAL_APPROVED)),
        When(Exists(unfroze), then=Value(Ending.REVIEWER_UNFROZE)),
        When(Exists(repaid), then=Value(Ending.REPAID)),
        When(line__status=LineStatus.FROZEN, then=Value(Ending.STILL_FROZEN)),
        default=Value(Ending.NONE),
    )


@dataclass
class BacktestReport:
    backtest: Backtest
    job: Job | None
    days: list[dict[str, Any]]  # per day: live, draft, spared, caught (accounts)
    families: list[dict[str, Any]]  # per family: mean per day under each version, flipped accounts
    endings: dict[str, dict[str, int]]  # "spared" / "caught" -> ending -> accounts
    samples: dict[str, list[dict[str, Any]]]  # "spared" / "caught" -> the accounts flipped the most days

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.status in (JobStatus.QUEUED, JobStatus.RUNNING)

    def flipped(self, side: str) -> int:
        return sum(self.endings[side].values())

    @property
    def flipped_spared(self) -> int:
        return self.flipped("spared")

    @property
    def flipped_caught(self) -> int:
        return self.flipped("caught")

    @property
    def chart(self) -> dict[str, Any]:
        """The per-day chart's data (its table is the day-by-day one)."""
        return {
            "labels": [d["day"].isoformat() for d in self.days],
            "series": [
                {"label": str(BacktestSide(side).label), "y": [d[side] for d in self.days]}
                for side in BacktestSide.values
            ],
        }

    @property
    def normal_spared(self) -> int:
        """Accounts the draft would not freeze that a person found fine (their freeze overturned)."""
        return sum(self.endings["spared"][e] for e in OVERTURNED)

    @property
    def risky_let_through(self) -> int:
        """Accounts the draft would not freeze whose freeze stood (still frozen, or repaid since)."""
        return sum(self.endings["spared"][e] for e in NOT_OVERTURNED)


def backtest_report(backtest: Backtest) -> BacktestReport:
    counts: dict[tuple[object, str, str], int] = {
        (day, code, side): n for day, code, side, n in backtest.days.values_list("day", "code", "side", "n")
    }
    window = [backtest.first_day + timedelta(days=k) for k in range((backtest.last_day - backtest.first_day).days + 1)]
    days = [{"day": d, **{side: counts.get((d, "", side), 0) for side in BacktestSide.values}} for d in window]
    lines = BacktestLine.objects.filter(backtest=backtest)
    flipped: dict[str, int] = defaultdict(int)
    for codes, n in lines.values_list("codes").annotate(n=Count("*")).order_by():
        for code in codes.split(","):
            flipped[code] += n
    families = [
        {
            "code": code,
            "live": sum(counts.get((d, code, BacktestSide.LIVE), 0) for d in window) / len(window),
            "draft": sum(counts.get((d, code, BacktestSide.DRAFT), 0) for d in window) / len(window),
            "flipped": flipped.get(code, 0),
        }
        for code in sorted({c for (_d, c, _s) in counts if c})
    ]
    endings = {side: dict.fromkeys(Ending.values, 0) for side in ("spared", "caught")}
    samples: dict[str, list[dict[str, Any]]] = {}
    for side, days_field in (("spared", "spared_days"), ("caught", "caught_days")):
        of_side = lines.filter(**{f"{days_field}__gt": 0}).annotate(ending=_ending())
        for ending, n in of_side.values_list("ending").annotate(n=Count("*")).order_by():
            endings[side][ending] = n
        picked = of_side.select_related("line").order_by(f"-{days_field}", "line_id")[:SAMPLE]
        cases = _latest_cases([p.line_id for p in picked])
        samples[side] = [
            {
                "account_no": p.line.account_no,
                "days": getattr(p, days_field),
                "first_day": p.first_day,
                "codes": p.codes.split(","),
                "ending": Ending(p.ending).label,
                "case_id": cases.get(p.line_id),
            }
            for p in picked
        ]
    return BacktestReport(
        backtest=backtest,
        job=Job.objects.filter(pk=backtest.job_id).first(),
        days=days,
        families=families,
        endings=endings,
        samples=samples,
    )


def _latest_cases(line_ids: list[int]) -> dict[int, int]:
    return dict(
        Case.objects.filter(line_id__in=line_ids)
        .order_by("line_id", "-id")
        .distinct("line_id")
        .values_list("line_id", "id")
    )


def backtest_rows(backtest: Backtest) -> Iterator[tuple[Any, ...]]:
    """Every account the versions treat differently, for the CSV: account, days spared, days caught, first day,
    families, how it ended."""
    rows = (
        BacktestLine.objects.filter(backtest=backtest)
        .annotate(ending=_ending())
        .order_by("line_id")
        .values_list("line__account_no", "spared_days", "caught_days", "first_day", "codes", "ending")
    )
    yield from rows.iterator(chunk_size=5000)


# --- A draft in shadow: what it would have done beside what the live version did


@dataclass
class ShadowSummary:
    ruleset: RuleSet
    running: bool
    accounts: dict[str, int]  # kind -> accounts
    samples: dict[str, list[dict[str, Any]]]  # kind -> the latest accounts

    @property
    def live_froze(self) -> int:
        return self.accounts[ShadowKind.BOTH] + self.accounts[ShadowKind.LIVE_ONLY]

    @property
    def shadow_would(self) -> int:
        return self.accounts[ShadowKind.BOTH] + self.accounts[ShadowKind.SHADOW_ONLY]


def shadow_summary(ruleset: RuleSet, *, sample: int = 10) -> ShadowSummary | None:
    """What the live evaluations recorded of a draft in shadow (None: it never ran in shadow): the accounts a
    freezing signal fired for under both, only the live version, only the draft."""
    if ruleset.shadow_from is None:
        return None
    records = ShadowRecord.objects.filter(ruleset=ruleset)
    accounts = dict.fromkeys(ShadowKind.values, 0)
    for kind, n in records.values_list("kind").annotate(n=Count("line_id", distinct=True)).order_by():
        accounts[kind] = n
    samples: dict[str, list[dict[str, Any]]] = {
        str(kind): [
            {"account_no": r.line.account_no, "codes": r.codes.split(","), "at": r.at}
            for r in records.filter(kind=kind).select_related("line").order_by("-at", "-id")[:sample]
        ]
        for kind in (ShadowKind.LIVE_ONLY, ShadowKind.SHADOW_ONLY)
    }
    running = ruleset.shadow_until is not None and ruleset.shadow_until > timezone.now()
    return ShadowSummary(ruleset=ruleset, running=running, accounts=accounts, samples=samples)


def shadow_running() -> ShadowSummary | None:
    """The draft running in shadow now, if any, and what it recorded."""
    now = timezone.now()
    running = RuleSet.objects.filter(shadow_from__lte=now, shadow_until__gt=now).first()
    return shadow_summary(running) if running else None
