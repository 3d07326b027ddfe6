"""Rulesets and their rules (thresholds are data), the signals they fire, and suppressions."""

from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from accounts.models.lines import CreditLine


class Severity(models.TextChoices):
    LOW = "low", _("low")
    MEDIUM = "medium", _("medium")
    HIGH = "high", _("high")


SEVERITY_RANK = {Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3}


class RuleCode(models.TextChoices):
    MULTI_HEAD = "MULTI_HEAD", _("multi-head borrowing")
    OVERDUE = "OVERDUE", _("overdue repayment")
    ABNORMAL_USE = "ABNORMAL_USE", _("abnormal use of loan money")
    PROFILE_STALE = "PROFILE_STALE", _("stale profile")


# A family's name in a badge (the code is for rules and filters, not for readers).
RULE_SHORT_LABELS = {
    RuleCode.MULTI_HEAD: _("multi-head"),
    RuleCode.OVERDUE: _("overdue"),
    RuleCode.ABNORMAL_USE: _("abnormal use"),
    RuleCode.PROFILE_STALE: _("stale profile"),
}


class RuleAction(models.TextChoices):
    FREEZE = "freeze", _("freeze")
    CUT = "cut", _("cut available limit")
    REMIND = "remind", _("remind")


class RuleSet(models.Model):
    """A versioned set of rule parameters; exactly one is active.

    A risk manager copies a version into a draft and edits its rules (`accounts.services.rulesets`); a draft goes
    live by activation, never by an edit. A version that was ever active is immutable: the database refuses any
    change to it or its rules (a trigger, migration 0025) but the active flag, which the next activation clears.
    """

    version = models.PositiveIntegerField(unique=True)
    is_active = models.BooleanField(default=False)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    based_on = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    activated_at = models.DateTimeField(null=True, blank=True)
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    # A draft in shadow: every live evaluation until then also evaluates it and records what it would have done
    # (`ShadowRecord`), changing nothing else. One at a time (`accounts.services.rulesets.ruleset_shadow`).
    shadow_from = models.DateTimeField(null=True, blank=True)
    shadow_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("ruleset")
        verbose_name_plural = _("rulesets")
        permissions = [("tune_rules", "Can draft rule changes and approve their activation")]
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="one_active_ruleset"),
            models.CheckConstraint(
                condition=Q(is_active=False) | Q(activated_at__isnull=False), name="active_ruleset_was_activated"
            ),
        ]

    def __str__(self) -> str:
        return f"v{self.version}"

    @property
    def is_draft(self) -> bool:
        return self.activated_at is None


class Rule(models.Model):
    ruleset = models.ForeignKey(RuleSet, on_delete=models.PROTECT, related_name="rules")
    code = models.CharField(max_length=20, choices=RuleCode.choices)
    params = models.JSONField()
    severity = models.CharField(max_length=10, choices=Severity.choices)
    action = models.CharField(max_length=10, choices=RuleAction.choices)
    enabled = models.BooleanField(default=True)
    # For a rule that cuts: whether the cut is given back by itself when the rule stops holding (a freeze always
    # needs a person or a job). None is the default for the rule's family (`restores_on_clear`).
    restore_on_clear = models.BooleanField(_("restore on clear"), null=True, blank=True)

    class Meta:
        verbose_name = _("rule")
        verbose_name_plural = _("rules")
        constraints = [models.UniqueConstraint(fields=["ruleset", "code"], name="rule_code_per_ruleset")]

    def __str__(self) -> str:
        return f"{self.code} ({self.ruleset})"

    @property
    def restores_on_clear(self) -> bool:
        """On by default for PROFILE_STALE only: a borrower who updates the profile gets the cut amount back."""
        if self.restore_on_clear is not None:
            return self.restore_on_clear
        return self.code == RuleCode.PROFILE_STALE


class ClearCause(models.TextChoices):
    """Why a signal stopped holding, where the borrower's own action did it (else blank: time, or other data)."""

    REPAYMENT = "repayment", _("the borrower repaid")
    PROFILE_UPDATE = "profile_update", _("the borrower updated the profile")


class SignalStatus(models.TextChoices):
    ACTIVE = "active", _("active")
    CLEARED = "cleared", _("cleared")
    OVERTURNED = "overturned", _("overturned")


class Signal(models.Model):
    """A rule that fired for an account, with what it saw.

    `evidence` holds the event ids per kind, the computed values and the thresholds, so a reader
    can see exactly why. At most one active signal per (line, code, severity).
    """

    # db_index=False: the composite index below starts with the line, and serves the same lookups.
    line = models.ForeignKey(CreditLine, on_delete=models.PROTECT, related_name="signals", db_index=False)
    rule = models.ForeignKey(Rule, on_delete=models.PROTECT, related_name="+", db_index=False)  # read via the line
    code = models.CharField(max_length=20, choices=RuleCode.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    action = models.CharField(max_length=10, choices=RuleAction.choices)
    ruleset_version = models.PositiveIntegerField()
    status = models.CharField(max_length=12, choices=SignalStatus.choices, default=SignalStatus.ACTIVE)
    fired_at = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)
    clear_cause = models.CharField(max_length=20, choices=ClearCause.choices, blank=True, db_default="")
    evidence = models.JSONField()
    case = models.ForeignKey("Case", null=True, blank=True, on_delete=models.PROTECT, related_name="signals")

    class Meta:
        verbose_name = _("signal")
        verbose_name_plural = _("signals")
        constraints = [
            models.UniqueConstraint(
                fields=["line", "code", "severity"], condition=Q(status="active"), name="one_active_signal"
            )
        ]
        indexes = [
            models.Index(fields=["line", "status"], name="signal_line_status"),
            # The dashboard (accounts.figures): today's signals by time, the few overturned ones by the day they
            # fired (the overturn rate), and the lines a signal cuts now.
            BrinIndex(fields=["fired_at"], name="signal_fired_at_brin", autosummarize=True, pages_per_range=32),
            models.Index(fields=["fired_at"], name="signal_overturned", condition=Q(status="overturned")),
            models.Index(fields=["line"], name="signal_active_cut", condition=Q(status="active", action="cut")),
        ]

    def __str__(self) -> str:
        return f"{self.code}/{self.severity} on line {self.line_id}"


class Suppression(models.Model):
    """After a person overturns a signal, the same evidence must not fire it again.

    The signal is suppressed while every event it would cite is in `event_ids`; a new qualifying
    event (an id not listed) lets it fire.
    """

    # db_index=False: the composite index below starts with the line, and serves the same lookups.
    line = models.ForeignKey(CreditLine, on_delete=models.PROTECT, related_name="suppressions", db_index=False)
    code = models.CharField(max_length=20, choices=RuleCode.choices)
    event_ids = models.JSONField()
    # No index on the signal and the person: suppressions are read by line and code (the index below).
    signal = models.ForeignKey(Signal, on_delete=models.PROTECT, related_name="+", db_index=False)
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    reason = models.TextField()

    class Meta:
        verbose_name = _("suppression")
        verbose_name_plural = _("suppressions")
        indexes = [models.Index(fields=["line", "code"], name="suppression_line_code")]


class SimulationOutcome(models.TextChoices):
    FREEZE = "freeze", _("newly frozen")
    RELEASE = "release", _("newly released")


class Simulation(models.Model):
    """A draft evaluated over every account's current data, changing none (`accounts.engine.project_lines`), by a
    job's batches: what activating it would freeze and release, compared with the live version."""

    ruleset = models.ForeignKey(RuleSet, on_delete=models.CASCADE, related_name="simulations")
    live_version = models.PositiveIntegerField()  # what it is compared with: the version live when it was asked
    job_id = models.BigIntegerField(unique=True)  # the job running it (riskops.Job; accounts never imports riskops)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    requested_at = models.DateTimeField()  # the instant every batch evaluates the rules at ("now")
    rules_digest = models.CharField(max_length=64)  # what the version held (accounts.selectors.rules.rules_digest)
    evaluated = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("simulation")
        verbose_name_plural = _("simulations")

    def __str__(self) -> str:
        return f"simulation #{self.pk} of v{self.ruleset.version}"


class SimulationLine(models.Model):
    """An account whose state activating the draft would change: newly frozen or newly released."""

    simulation = models.ForeignKey(Simulation, on_delete=models.CASCADE, related_name="lines")
    line = models.ForeignKey(CreditLine, on_delete=models.PROTECT, related_name="+", db_index=False)
    outcome = models.CharField(max_length=10, choices=SimulationOutcome.choices)
    codes = models.CharField(max_length=100)  # the rule families behind it, comma-separated
    exposure = models.DecimalField(max_digits=14, decimal_places=2)  # outstanding principal when simulated

    class Meta:
        verbose_name = _("simulated account")
        verbose_name_plural = _("simulated accounts")
        constraints = [models.UniqueConstraint(fields=["simulation", "outcome", "line"], name="simulation_line_once")]


class Backtest(models.Model):
    """A draft and the live version replayed over a past window, day by day, on the events known on each day
    (`accounts.backtest`), by a job's batches: which accounts each would have frozen, and those that flip."""

    ruleset = models.ForeignKey(RuleSet, on_delete=models.CASCADE, related_name="backtests")
    live_version = models.PositiveIntegerField()
    job_id = models.BigIntegerField(unique=True)  # the job running it (riskops.Job; accounts never imports riskops)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    requested_at = models.DateTimeField()
    first_day = models.DateField()
    last_day = models.DateField()
    rules_digest = models.CharField(max_length=64)  # what the version held (accounts.selectors.rules.rules_digest)
    evaluated = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("backtest")
        verbose_name_plural = _("backtests")

    def __str__(self) -> str:
        return f"backtest #{self.pk} of v{self.ruleset.version}"

    @property
    def length(self) -> int:
        """The days it covers."""
        return (self.last_day - self.first_day).days + 1


class BacktestSide(models.TextChoices):
    LIVE = "live", _("the live version would freeze")
    DRAFT = "draft", _("the draft would freeze")
    SPARED = "spared", _("frozen by the live version only")
    CAUGHT = "caught", _("frozen by the draft only")


class BacktestDay(models.Model):
    """A day's count of one side (and rule family; "" for any family) of a backtest, summed over its batches."""

    backtest = models.ForeignKey(Backtest, on_delete=models.CASCADE, related_name="days")
    day = models.DateField()
    code = models.CharField(max_length=20, blank=True)
    side = models.CharField(max_length=10, choices=BacktestSide.choices)
    n = models.PositiveIntegerField()

    class Meta:
        verbose_name = _("backtest day")
        verbose_name_plural = _("backtest days")
        constraints = [models.UniqueConstraint(fields=["backtest", "day", "code", "side"], name="backtest_day_once")]


class BacktestLine(models.Model):
    """An account the draft treats differently from the live version on at least one day of the window."""

    backtest = models.ForeignKey(Backtest, on_delete=models.CASCADE, related_name="lines")
    line = models.ForeignKey(CreditLine, on_delete=models.PROTECT, related_name="+", db_index=False)
    spared_days = models.PositiveIntegerField()  # days the live version freezes it and the draft does not
    caught_days = models.PositiveIntegerField()  # days the draft freezes it and the live version does not
    first_day = models.DateField()  # the first day it flips
    codes = models.CharField(max_length=100)  # the rule families behind the flips, comma-separated

    class Meta:
        verbose_name = _("backtested account")
        verbose_name_plural = _("backtested accounts")
        constraints = [models.UniqueConstraint(fields=["backtest", "line"], name="backtest_line_once")]


class ShadowKind(models.TextChoices):
    BOTH = "both", _("both would freeze")
    LIVE_ONLY = "live_only", _("only the live version froze")
    SHADOW_ONLY = "shadow_only", _("only the shadow would freeze")


class ShadowRecord(models.Model):
    """What a live evaluation and the draft in shadow found for one account: a freezing signal fired by either."""

    ruleset = models.ForeignKey(RuleSet, on_delete=models.CASCADE, related_name="shadow_records")
    line = models.ForeignKey(CreditLine, on_delete=models.PROTECT, related_name="+", db_index=False)
    at = models.DateTimeField()
    kind = models.CharField(max_length=12, choices=ShadowKind.choices)
    codes = models.CharField(max_length=100)  # the rule families behind it, comma-separated

    class Meta:
        verbose_name = _("shadow record")
        verbose_name_plural = _("shadow records")
        indexes = [models.Index(fields=["ruleset", "at"], name="shadow_ruleset_at")]


class Exemption(models.Model):
    """A risk manager exempts one account from one rule until a time: the engine fires no new signal of that rule
    for it meanwhile (`accounts.engine`), and after it the rule holds again by itself. Signals already active stay."""

    line = models.ForeignKey(CreditLine, on_delete=models.PROTECT, related_name="exemptions", db_index=False)
    code = models.CharField(max_length=20, choices=RuleCode.choices)
    until = models.DateTimeField()
    reason = models.TextField()
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )

    class Meta:
        verbose_name = _("exemption")
        verbose_name_plural = _("exemptions")
        indexes = [models.Index(fields=["line", "code", "until"], name="exemption_line_code_until")]
