from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Cast, Least, Right
from django.utils.translation import gettext_lazy as _

from accounts.masking import mask_name, mask_national_id, mask_phone


class Borrower(models.Model):
    """The person behind a credit line. Personal fields are stored whole and shown masked."""

    name = models.CharField(_("name"), max_length=50)
    phone = models.CharField(_("phone"), max_length=20)
    national_id = models.CharField(_("national id"), max_length=18)
    city = models.CharField(_("city"), max_length=30)
    occupation = models.CharField(_("occupation"), max_length=40)
    employer = models.CharField(_("employer"), max_length=80)
    declared_monthly_income = models.DecimalField(_("declared monthly income"), max_digits=14, decimal_places=2)
    profile_updated_at = models.DateTimeField(_("profile last updated"))
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        verbose_name = _("borrower")
        verbose_name_plural = _("borrowers")
        # The queue's search by the last 4 digits of a phone number.
        indexes = [models.Index(Right("phone", 4), name="borrower_phone_last4")]

    def __str__(self) -> str:
        return f"{self.masked_name} ({self.masked_phone})"

    @property
    def masked_name(self) -> str:
        return mask_name(self.name)

    @property
    def masked_phone(self) -> str:
        return mask_phone(self.phone)

    @property
    def masked_national_id(self) -> str:
        return mask_national_id(self.national_id)


class LineStatus(models.TextChoices):
    ACTIVE = "active", _("active")
    FROZEN = "frozen", _("frozen")
    CLOSED = "closed", _("closed")


class CreditLine(models.Model):
    """A borrower's revolving credit line (the "account" of the glossary)."""

    # Unique by a constraint in Meta: unique=True would add a pattern-matching index that no query uses.
    account_no = models.CharField(_("account number"), max_length=20)
    borrower = models.OneToOneField(Borrower, on_delete=models.PROTECT, related_name="credit_line")
    limit = models.DecimalField(_("limit"), max_digits=14, decimal_places=2)
    available = models.DecimalField(_("available"), max_digits=14, decimal_places=2)
    outstanding = models.DecimalField(_("outstanding principal"), max_digits=14, decimal_places=2, default=Decimal("0"))
    status = models.CharField(_("status"), max_length=10, choices=LineStatus.choices, default=LineStatus.ACTIVE)
    frozen_since = models.DateTimeField(_("frozen since"), null=True, blank=True)
    opened_at = models.DateTimeField(_("opened at"))
    updated_at = models.DateTimeField(_("updated at"))

    class Meta:
        verbose_name = _("credit line")
        verbose_name_plural = _("credit lines")
        constraints = [
            models.UniqueConstraint(fields=["account_no"], name="creditline_account_no"),
            models.CheckConstraint(condition=Q(available__gte=0), name="line_available_not_negative"),
            models.CheckConstraint(condition=Q(available__lte=models.F("limit")), name="line_available_within_limit"),
            models.CheckConstraint(
                condition=Q(status="frozen", frozen_since__isnull=False) | ~Q(status="frozen"),
                name="line_frozen_has_since",
            ),
        ]
        indexes = [models.Index(fields=["status"], name="line_status")]

    def __str__(self) -> str:
        return self.account_no


class LineChange(models.Model):
    """History of every status and limit change of a line: who or what, when, why."""

    # db_index=False: the composite index below starts with the line, and serves the same lookups.
    line = models.ForeignKey(CreditLine, on_delete=models.PROTECT, related_name="changes", db_index=False)
    at = models.DateTimeField()
    actor_kind = models.CharField(max_length=16)
    # No index on who and which signal: nothing looks history up by them, and bulk jobs write a row per account.
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    kind = models.CharField(max_length=20)  # freeze, unfreeze, cut_available, limit_change
    status_before = models.CharField(max_length=10)
    status_after = models.CharField(max_length=10)
    limit_before = models.DecimalField(max_digits=14, decimal_places=2)
    limit_after = models.DecimalField(max_digits=14, decimal_places=2)
    available_before = models.DecimalField(max_digits=14, decimal_places=2)
    available_after = models.DecimalField(max_digits=14, decimal_places=2)
    reason = models.TextField(blank=True)
    signal = models.ForeignKey(
        "Signal", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )

    class Meta:
        indexes = [models.Index(fields=["line", "at"], name="linechange_line_at")]


# --- Events from upstream. Each has an occurrence time and a unique upstream id, so re-ingesting
# the same feed is harmless (INSERT ... ON CONFLICT DO NOTHING).


class Event(models.Model):
    line = models.ForeignKey(CreditLine, on_delete=models.PROTECT, related_name="+", db_index=False)
    upstream_id = models.CharField(max_length=64, unique=True)
    occurred_at = models.DateTimeField()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{type(self).__name__} {self.upstream_id}"


class CreditInquiry(Event):
    institution = models.CharField(_("institution"), max_length=80)

    class Meta:
        verbose_name = _("credit inquiry")
        verbose_name_plural = _("credit inquiries")
        indexes = [models.Index(fields=["line", "occurred_at"], name="inquiry_line_at")]


class Drawdown(Event):
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2)
    term_months = models.PositiveSmallIntegerField(_("term (months)"))

    class Meta:
        verbose_name = _("drawdown")
        verbose_name_plural = _("drawdowns")
        indexes = [models.Index(fields=["line", "occurred_at"], name="drawdown_line_at")]


class Installment(Event):
    """An installment of a drawdown; occurred_at is when it was scheduled."""

    drawdown = models.ForeignKey(Drawdown, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    due_date = models.DateField(_("due date"))
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    paid_amount = models.DecimalField(_("paid amount"), max_digits=14, decimal_places=2, default=Decimal("0"))

    class Meta:
        verbose_name = _("installment")
        verbose_name_plural = _("installments")
        indexes = [
            models.Index(fields=["line", "due_date"], name="installment_line_due"),
            # The overdue rule only ever reads unpaid installments.
            models.Index(fields=["line", "due_date"], name="installment_unpaid", condition=Q(paid_at__isnull=True)),
        ]


class CounterpartyCategory(models.TextChoices):
    CONSUMPTION = "consumption", _("consumption")
    SECURITIES = "securities", _("securities")
    FUTURES = "futures", _("futures")
    CRYPTO = "crypto", _("crypto")
    GAMBLING = "gambling", _("gambling")
    REAL_ESTATE = "real_estate", _("real estate")
    OTHER = "other", _("other")


class Transfer(Event):
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2)
    counterparty = models.CharField(_("counterparty"), max_length=80)
    counterparty_category = models.CharField(
        _("counterparty category"), max_length=20, choices=CounterpartyCategory.choices
    )

    class Meta:
        verbose_name = _("transfer")
        verbose_name_plural = _("transfers")
        indexes = [
            models.Index(fields=["line", "occurred_at"], name="transfer_line_at"),
            # ABNORMAL_USE reads only the risky categories (about 4% of transfers). The default ruleset's
            # categories; a ruleset with others still works, through transfer_line_at.
            models.Index(
                fields=["line", "occurred_at"],
                name="transfer_risky_line_at",
                condition=Q(counterparty_category__in=["securities", "futures", "crypto", "gambling"]),
            ),
        ]


class ExternalIncomeRecord(Event):
    source = models.CharField(_("source"), max_length=40)
    employer = models.CharField(_("employer"), max_length=80)
    monthly_income = models.DecimalField(_("monthly income"), max_digits=14, decimal_places=2)

    class Meta:
        verbose_name = _("external income record")
        verbose_name_plural = _("external income records")
        indexes = [models.Index(fields=["line", "occurred_at"], name="income_line_at")]


class ProfileUpdate(Event):
    employer = models.CharField(_("employer"), max_length=80, blank=True)
    monthly_income = models.DecimalField(_("monthly income"), max_digits=14, decimal_places=2, null=True, blank=True)

    class Meta:
        verbose_name = _("profile update")
        verbose_name_plural = _("profile updates")
        indexes = [models.Index(fields=["line", "occurred_at"], name="profileupdate_line_at")]


# --- Rules and signals


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


class RuleAction(models.TextChoices):
    FREEZE = "freeze", _("freeze")
    CUT = "cut", _("cut available limit")
    REMIND = "remind", _("remind")


class RuleSet(models.Model):
    """A versioned set of rule parameters; exactly one is active."""

    version = models.PositiveIntegerField(unique=True)
    is_active = models.BooleanField(default=False)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = _("ruleset")
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="one_active_ruleset")
        ]

    def __str__(self) -> str:
        return f"v{self.version}"


class Rule(models.Model):
    ruleset = models.ForeignKey(RuleSet, on_delete=models.PROTECT, related_name="rules")
    code = models.CharField(max_length=20, choices=RuleCode.choices)
    params = models.JSONField()
    severity = models.CharField(max_length=10, choices=Severity.choices)
    action = models.CharField(max_length=10, choices=RuleAction.choices)
    enabled = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["ruleset", "code"], name="rule_code_per_ruleset")]

    def __str__(self) -> str:
        return f"{self.code} ({self.ruleset})"


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
    evidence = models.JSONField()
    case = models.ForeignKey("Case", null=True, blank=True, on_delete=models.PROTECT, related_name="signals")

    class Meta:
        verbose_name = _("signal")
        constraints = [
            models.UniqueConstraint(
                fields=["line", "code", "severity"], condition=Q(status="active"), name="one_active_signal"
            )
        ]
        indexes = [models.Index(fields=["line", "status"], name="signal_line_status")]

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
        indexes = [models.Index(fields=["line", "code"], name="suppression_line_code")]


class CaseStatus(models.TextChoices):
    OPEN = "open", _("open")
    AWAITING_APPROVAL = "awaiting_approval", _("awaiting approval")
    ESCALATED = "escalated", _("escalated")
    RESOLVED = "resolved", _("resolved")


UNRESOLVED = ~Q(status="resolved")

# Queue order: severity first, then exposure (in cents, capped), then age (older id first). Stored
# negated so that one ascending index on (queue_key, id) serves keyset pages in either direction.
QUEUE_KEY = -(
    F("severity_rank") * Value(10**12)
    + Least(Cast(F("exposure") * Value(100), models.BigIntegerField()), Value(10**12 - 1))
)
# T1: high severity and an exposure of ¥50,000 or more; T2: high; T3: medium; T4: the rest.
RISK_TIER = models.Case(
    models.When(severity_rank__gte=3, exposure__gte=Value(50000), then=Value(1)),
    models.When(severity_rank__gte=3, then=Value(2)),
    models.When(severity_rank=2, then=Value(3)),
    default=Value(4),
)


class Case(models.Model):
    """One review unit per flagged account; at most one unresolved per account."""

    line = models.ForeignKey(CreditLine, on_delete=models.PROTECT, related_name="cases")
    status = models.CharField(max_length=20, choices=CaseStatus.choices, default=CaseStatus.OPEN)
    severity_rank = models.PositiveSmallIntegerField(default=0)
    exposure = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))
    queue_key = models.GeneratedField(expression=QUEUE_KEY, output_field=models.BigIntegerField(), db_persist=True)
    risk_tier = models.GeneratedField(
        expression=RISK_TIER, output_field=models.PositiveSmallIntegerField(), db_persist=True
    )
    opened_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    sla_due_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=30, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="cases"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    # Every change bumps it; a form carries the version it was rendered with, so a stale form is refused.
    version = models.PositiveIntegerField(default=1)
    # The families of every signal linked to the case (kept by the engine), for the queue's family filter.
    signal_codes = ArrayField(models.CharField(max_length=20), default=list, blank=True)
    # The open appeal's state and deadline (kept by appeals.services), so the queue marks appeals without a join.
    appeal_state = models.CharField(max_length=20, blank=True, default="", db_default="")
    appeal_due_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("case")
        constraints = [
            models.UniqueConstraint(fields=["line"], condition=UNRESOLVED, name="one_unresolved_case_per_line")
        ]
        indexes = [
            models.Index(fields=["queue_key", "id"], name="case_queue", condition=UNRESOLVED),
            models.Index(fields=["assignee", "queue_key", "id"], name="case_queue_assignee", condition=UNRESOLVED),
            models.Index(fields=["sla_due_at"], name="case_sla", condition=UNRESOLVED),
            models.Index(
                fields=["queue_key", "id"], name="case_queue_appeal", condition=UNRESOLVED & ~Q(appeal_state="")
            ),
            # One queue index per signal family: a family filter reads its own cases in queue order.
            *(
                models.Index(
                    fields=["queue_key", "id"],
                    name=f"case_queue_{code.lower()}"[:30],
                    condition=UNRESOLVED & Q(signal_codes__contains=[code]),
                )
                for code in ("MULTI_HEAD", "OVERDUE", "ABNORMAL_USE", "PROFILE_STALE")
            ),
        ]
        permissions = [
            ("decide_case", "Can decide cases and propose four-eyes decisions"),
            ("approve_decision", "Can approve another operator's four-eyes decision"),
            ("assign_case", "Can assign and release other operators' cases"),
            ("reveal_pii", "Can reveal a borrower's personal data (audited)"),
        ]

    def __str__(self) -> str:
        return f"case #{self.pk}"

    @property
    def is_resolved(self) -> bool:
        return self.status == CaseStatus.RESOLVED


class DecisionKind(models.TextChoices):
    KEEP_FROZEN = "keep_frozen", _("keep frozen")
    UNFREEZE = "unfreeze", _("unfreeze")
    CUT_LIMIT = "cut_limit", _("cut limit")
    REMIND = "remind", _("send reminder")
    EDUCATE = "educate", _("send credit-education notice")
    ESCALATE = "escalate", _("escalate to a senior reviewer")


class DecisionStatus(models.TextChoices):
    APPLIED = "applied", _("applied")
    PROPOSED = "proposed", _("proposed, awaiting a second reviewer")
    APPROVED = "approved", _("approved and applied")
    REJECTED = "rejected", _("rejected by the second reviewer")


class ReasonCode(models.TextChoices):
    EVIDENCE_CONFIRMED = "evidence_confirmed", _("evidence confirmed")
    REPAID = "repaid", _("overdue amount repaid")
    LOANS_CLOSED = "loans_closed", _("other loans closed")
    INCOME_VERIFIED = "income_verified", _("income verified")
    TRANSFER_EXPLAINED = "transfer_explained", _("transfer explained")
    PROFILE_UPDATED = "profile_updated", _("profile updated")
    DATA_ERROR = "data_error", _("false positive: upstream data error")
    RISK_APPETITE = "risk_appetite", _("exposure above risk appetite")
    NEEDS_SENIOR = "needs_senior", _("needs a senior reviewer")
    OTHER = "other", _("other")


class Decision(models.Model):
    """What an operator decided on a case. Four-eyes decisions are proposed, then approved by another."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="decisions")
    line = models.ForeignKey(CreditLine, on_delete=models.PROTECT, related_name="decisions")
    kind = models.CharField(max_length=20, choices=DecisionKind.choices)
    status = models.CharField(max_length=20, choices=DecisionStatus.choices)
    reason_code = models.CharField(max_length=30, choices=ReasonCode.choices)
    note = models.TextField(blank=True)
    new_limit = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    proposed_at = models.DateTimeField()
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)
    # The form's one-time token: a double-submitted form finds its decision instead of making another.
    idempotency_key = models.CharField(max_length=64, unique=True)

    class Meta:
        verbose_name = _("decision")
        constraints = [
            models.UniqueConstraint(
                fields=["case"], condition=Q(status="proposed"), name="one_pending_proposal_per_case"
            ),
            # Four eyes, whatever the entry point (page, API, shell, admin): nobody reviews their own proposal.
            models.CheckConstraint(
                condition=Q(reviewed_by__isnull=True) | ~Q(reviewed_by=F("proposed_by")),
                name="decision_reviewer_is_not_proposer",
            ),
            models.CheckConstraint(
                condition=Q(status="proposed", reviewed_by__isnull=True)
                | Q(status="applied", reviewed_by__isnull=True)
                | Q(status__in=["approved", "rejected"], reviewed_by__isnull=False),
                name="decision_reviewed_iff_reviewed_status",
            ),
        ]
        indexes = [models.Index(fields=["line", "proposed_at"], name="decision_line_at")]

    def __str__(self) -> str:
        return f"{self.kind} on case #{self.case_id} ({self.status})"


class Note(models.Model):
    """An operator's note on an account; append-only."""

    line = models.ForeignKey(CreditLine, on_delete=models.PROTECT, related_name="notes")
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.PROTECT, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["line", "created_at"], name="note_line_at")]


# --- Notifications to borrowers: an outbox, sent after commit by a pluggable sender.


class NotificationKind(models.TextChoices):
    FREEZE = "freeze", _("line frozen")
    LIMIT_CUT = "limit_cut", _("available limit cut")
    PROFILE_UPDATE_REQUEST = "profile_update", _("profile update request")
    OVERDUE_REMINDER = "overdue_reminder", _("overdue reminder")
    UNFREEZE = "unfreeze", _("line unfrozen")
    LIMIT_CHANGE = "limit_change", _("limit changed")
    CREDIT_EDUCATION = "credit_education", _("credit-education notice")
    APPEAL_RECEIVED = "appeal_received", _("appeal received")
    APPEAL_MORE_INFO = "appeal_more_info", _("appeal: more information requested")
    APPEAL_APPROVED = "appeal_approved", _("appeal approved")
    APPEAL_REJECTED = "appeal_rejected", _("appeal rejected")


class Notification(models.Model):
    line = models.ForeignKey(CreditLine, on_delete=models.PROTECT, related_name="notifications")
    kind = models.CharField(max_length=20, choices=NotificationKind.choices)
    channel = models.CharField(max_length=10, default="sms")
    # Same key, same message: the outbox never holds a notification twice (a constraint in Meta: unique=True would
    # add a second, pattern-matching index that nothing uses, written on every notification).
    dedupe_key = models.CharField(max_length=100)
    body = models.TextField()
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        verbose_name = _("notification")
        constraints = [models.UniqueConstraint(fields=["dedupe_key"], name="notification_dedupe_key")]
        indexes = [models.Index(fields=["created_at"], name="notification_pending", condition=Q(sent_at__isnull=True))]
