"""Borrower appeals (申诉): the request, its documents, the outcome per rule, and SLA breach alerts."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class AppealReason(models.TextChoices):
    REPAID = "repaid", _("I have repaid the overdue loan")
    LOANS_CLOSED = "loans_closed", _("My other loans are closed")
    INCOME_PROOF = "income_proof", _("Proof of income")
    TRANSFER_EXPLAINED = "transfer_explained", _("The transfer was not what it looks like")
    PROFILE_UPDATED = "profile_updated", _("I have updated my profile")
    OTHER = "other", _("Other")


class AppealStatus(models.TextChoices):
    OPEN = "open", _("in review")
    AWAITING_INFO = "awaiting_info", _("waiting for the borrower")
    AWAITING_APPROVAL = "awaiting_approval", _("awaiting a second reviewer")
    APPROVED = "approved", _("approved")
    APPROVED_IN_PART = "approved_in_part", _("approved in part")
    REJECTED = "rejected", _("rejected")


OPEN_STATES = [AppealStatus.OPEN, AppealStatus.AWAITING_INFO, AppealStatus.AWAITING_APPROVAL]
# States whose SLA clock runs (waiting for the borrower pauses it).
CLOCK_STATES = [AppealStatus.OPEN, AppealStatus.AWAITING_APPROVAL]


class AppealChannel(models.TextChoices):
    API = "api", _("lending app (API)")
    LINK = "link", _("borrower link")


class AppealPriority(models.IntegerChoices):
    NORMAL = 0, _("normal")
    DUE_SOON = 1, _("due soon")
    BREACHED = 2, _("SLA breached")


class Appeal(models.Model):
    """A borrower's request to lift a freeze, with a statement and documents; at most one open per case."""

    case = models.ForeignKey("accounts.Case", on_delete=models.PROTECT, related_name="appeals")
    line = models.ForeignKey("accounts.CreditLine", on_delete=models.PROTECT, related_name="appeals")
    reason = models.CharField(_("reason"), max_length=30, choices=AppealReason.choices)
    statement = models.TextField(_("statement"))
    channel = models.CharField(max_length=10, choices=AppealChannel.choices)
    status = models.CharField(max_length=20, choices=AppealStatus.choices, default=AppealStatus.OPEN)
    priority = models.PositiveSmallIntegerField(choices=AppealPriority.choices, default=AppealPriority.NORMAL)
    submitted_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    # Moves later by the time spent waiting for the borrower, so the clock only counts our time.
    sla_due_at = models.DateTimeField()
    sla_paused_at = models.DateTimeField(null=True, blank=True)
    breach_notified_at = models.DateTimeField(null=True, blank=True)
    # The reviewer's last question and the borrower's answer (request-more-info round trip).
    info_request = models.TextField(blank=True)
    info_reply = models.TextField(blank=True)
    # The outcome the reviewer chose and the reply the borrower gets (kept while a second reviewer looks).
    outcome = models.CharField(max_length=20, blank=True)
    reply = models.TextField(blank=True)
    decision = models.ForeignKey(
        "accounts.Decision", null=True, blank=True, on_delete=models.PROTECT, related_name="appeals"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    # The API user who sent it (None: the borrower, through their link); an API token reads only its own.
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The API client's Idempotency-Key (prefixed with the client's id) and what the request carried.
    idempotency_key = models.CharField(max_length=120, null=True, blank=True, unique=True)
    request_fingerprint = models.CharField(max_length=64, blank=True)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        verbose_name = _("appeal")
        verbose_name_plural = _("appeals")
        constraints = [
            models.UniqueConstraint(
                fields=["case"], condition=Q(status__in=OPEN_STATES), name="one_open_appeal_per_case"
            )
        ]
        indexes = [
            # The inbox: open appeals, nearest deadline first.
            models.Index(fields=["status", "sla_due_at", "id"], name="appeal_inbox"),
            # Its keyset pages: in review by deadline, decided newest decision first, any status by deadline.
            models.Index(fields=["sla_due_at", "id"], name="appeal_in_review", condition=Q(status__in=CLOCK_STATES)),
            models.Index(fields=["decided_at", "id"], name="appeal_decided", condition=Q(decided_at__isnull=False)),
            models.Index(fields=["sla_due_at", "id"], name="appeal_deadline"),
            models.Index(fields=["line", "submitted_at"], name="appeal_line_at"),
            models.Index(fields=["submitted_at"], name="appeal_submitted_at"),  # the dashboard's appeals of today
        ]
        permissions = [("submit_appeal", "Can submit appeals for borrowers (lending-app integration)")]

    def __str__(self) -> str:
        return f"appeal #{self.pk}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATES


class AppealDocument(models.Model):
    """A checked document (PDF, PNG or JPEG by content), stored under a random name outside the web roots."""

    appeal = models.ForeignKey(Appeal, on_delete=models.PROTECT, related_name="documents")
    stored_name = models.CharField(max_length=64, unique=True)
    original_name = models.CharField(max_length=120)
    content_type = models.CharField(max_length=30)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    uploaded_at = models.DateTimeField()
    # 0 with the appeal, 1, 2, ... with each answer to a request for more information.
    round = models.PositiveSmallIntegerField(default=0)

    class Meta:
        verbose_name = _("appeal document")
        verbose_name_plural = _("appeal documents")

    def __str__(self) -> str:
        return self.original_name

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")


class RuleOutcome(models.TextChoices):
    OVERTURNED = "overturned", _("overturned")
    UPHELD = "upheld", _("upheld")


class AppealRuleOutcome(models.Model):
    """What a decided appeal did to each rule that had fired: the dashboard's overturn rate per rule."""

    appeal = models.ForeignKey(Appeal, on_delete=models.PROTECT, related_name="rule_outcomes")
    signal = models.ForeignKey("accounts.Signal", on_delete=models.PROTECT, related_name="+")
    rule = models.ForeignKey("accounts.Rule", on_delete=models.PROTECT, related_name="+")
    code = models.CharField(max_length=20)
    ruleset_version = models.PositiveIntegerField()
    outcome = models.CharField(max_length=12, choices=RuleOutcome.choices)
    decided_at = models.DateTimeField()

    class Meta:
        verbose_name = _("appeal rule outcome")
        verbose_name_plural = _("appeal rule outcomes")
        constraints = [models.UniqueConstraint(fields=["appeal", "signal"], name="one_outcome_per_appeal_signal")]
        indexes = [models.Index(fields=["code", "outcome"], name="appeal_outcome_code")]

    def __str__(self) -> str:
        return f"{self.code} {self.outcome} by appeal #{self.appeal_id}"


class AppealAlert(models.Model):
    """An appeal past its SLA, for a senior reviewer to see in the appeals inbox."""

    appeal = models.ForeignKey(Appeal, on_delete=models.PROTECT, related_name="alerts")
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("appeal alert")
        verbose_name_plural = _("appeal alerts")
        constraints = [models.UniqueConstraint(fields=["appeal", "recipient"], name="one_alert_per_appeal_recipient")]
        indexes = [
            models.Index(
                fields=["recipient", "created_at"], name="appeal_alert_unread", condition=Q(read_at__isnull=True)
            )
        ]

    def __str__(self) -> str:
        return f"SLA breach of appeal #{self.appeal_id} for user {self.recipient_id}"
