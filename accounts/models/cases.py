"""Cases (one review unit per flagged account), the decisions taken on them, and notes."""

from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Cast, Least
from django.utils.translation import gettext_lazy as _

from accounts.models.lines import CreditLine


class CaseStatus(models.TextChoices):
    OPEN = "open", _("open")
    AWAITING_APPROVAL = "awaiting_approval", _("awaiting approval")
    ESCALATED = "escalated", _("escalated")
    RESOLVED = "resolved", _("resolved")


UNRESOLVED = ~Q(status="resolved")


class CaseAppealState(models.TextChoices):
    """The state of a case's open appeal, as the appeals app keeps it on the case (`Case.appeal_state`).

    The values are the appeals app's open appeal statuses (a test checks they stay the same), so the queue can
    mark and filter appealed cases without reading appeals.
    """

    NONE = "", _("no open appeal")
    OPEN = "open", _("in review")
    AWAITING_INFO = "awaiting_info", _("waiting for the borrower")
    AWAITING_APPROVAL = "awaiting_approval", _("awaiting a second reviewer")


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
    appeal_state = models.CharField(
        max_length=20, blank=True, default="", db_default="", choices=CaseAppealState.choices
    )
    appeal_due_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("case")
        verbose_name_plural = _("cases")
        constraints = [
            models.UniqueConstraint(fields=["line"], condition=UNRESOLVED, name="one_unresolved_case_per_line")
        ]
        indexes = [
            models.Index(fields=["queue_key", "id"], name="case_queue", condition=UNRESOLVED),
            models.Index(fields=["assignee", "queue_key", "id"], name="case_queue_assignee", condition=UNRESOLVED),
            models.Index(fields=["sla_due_at"], name="case_sla", condition=UNRESOLVED),
            # The dashboard's inflow and outflow of today, and the median time to a decision over its dates.
            models.Index(fields=["opened_at"], name="case_opened_at"),
            models.Index(fields=["resolved_at"], name="case_resolved_at", condition=Q(resolved_at__isnull=False)),
            # The dashboard's open cases by SLA state and risk tier, in one pass over this index.
            models.Index(fields=["risk_tier", "sla_due_at"], name="case_open_tier_sla", condition=UNRESOLVED),
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
    # For a line whose available amount a signal cut (not frozen): give it back in full, or keep the cut.
    RESTORE_AVAILABLE = "restore_available", _("restore the cut amount")
    KEEP_CUT = "keep_cut", _("keep the cut")
    REQUEST_UPDATE = "request_update", _("ask the borrower to update their profile")
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
        verbose_name_plural = _("decisions")
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
        indexes = [
            models.Index(fields=["line", "proposed_at"], name="decision_line_at"),
            # The dashboard's decisions per operator of today.
            BrinIndex(fields=["proposed_at"], name="decision_proposed_at_brin", autosummarize=True, pages_per_range=32),
            models.Index(fields=["reviewed_at"], name="decision_reviewed_at", condition=Q(reviewed_at__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.kind} on case #{self.case_id} ({self.status})"


class Note(models.Model):
    """An operator's note on an account; append-only."""

    line = models.ForeignKey(CreditLine, on_delete=models.PROTECT, related_name="notes")
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.PROTECT, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    created_at = models.DateTimeField()
    # The form's one-time token: a double-clicked "Add note" finds its note instead of adding another.
    idempotency_key = models.CharField(max_length=64, null=True, blank=True, unique=True)

    class Meta:
        verbose_name = _("note")
        verbose_name_plural = _("notes")
        indexes = [models.Index(fields=["line", "created_at"], name="note_line_at")]
