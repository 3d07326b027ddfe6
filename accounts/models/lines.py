"""Borrowers and their credit lines (the "accounts" of the glossary), and each line's history."""

from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import Q
from django.db.models.functions import Right
from django.utils.translation import gettext_lazy as _

from accounts.masking import mask_name, mask_national_id, mask_phone
from riskops.models import ActorKind


class Borrower(models.Model):
    """The person behind a credit line. Personal fields are stored whole and shown masked; an upstream that does not
    have one leaves it empty (validated where present: `accounts.validation`)."""

    name = models.CharField(_("name"), max_length=50, blank=True)
    phone = models.CharField(_("phone"), max_length=20, blank=True)
    national_id = models.CharField(_("national id"), max_length=18, blank=True)
    city = models.CharField(_("city"), max_length=30, blank=True)
    occupation = models.CharField(_("occupation"), max_length=40, blank=True)
    employer = models.CharField(_("employer"), max_length=80, blank=True)
    declared_monthly_income = models.DecimalField(
        _("declared monthly income"), max_digits=14, decimal_places=2, null=True, blank=True
    )
    # Where the borrower lives, for the quiet hours of their messages (an IANA name; blank: the platform's TIME_ZONE).
    time_zone = models.CharField(_("time zone"), max_length=40, blank=True, db_default="")
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

    # Unique by a constraint in Meta, and searched by prefix through a pattern index (Meta.indexes).
    # The upstream's own account reference, in whatever format it uses (the demo's are JB + 10 digits).
    account_no = models.CharField(_("account number"), max_length=64)
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
        indexes = [
            models.Index(fields=["status"], name="line_status"),
            # The dashboard's exposure frozen, summed from the index alone.
            models.Index(fields=["outstanding"], name="line_frozen_outstanding", condition=Q(status="frozen")),
            # The dashboard's lines cut now: those with a cut in force, less the frozen or closed (an anti-join).
            models.Index(fields=["id"], name="line_not_active", condition=~Q(status="active")),
            # The queue's search by an account number's beginning (LIKE 'prefix%' under any collation).
            models.Index(fields=["account_no"], name="line_account_no_prefix", opclasses=["varchar_pattern_ops"]),
        ]

    def __str__(self) -> str:
        return self.account_no


class LineChangeKind(models.TextChoices):
    FREEZE = "freeze", _("freeze")
    UNFREEZE = "unfreeze", _("unfreeze")
    CUT_AVAILABLE = "cut_available", _("available amount cut")
    RESTORE_AVAILABLE = "restore_available", _("cut amount restored")
    LIMIT_CHANGE = "limit_change", _("limit change")


class LiftCause(models.TextChoices):
    """What caused a freeze or cut to be lifted, where it was the borrower's own action (else blank: a person's
    judgement or a job's)."""

    BORROWER = "borrower", _("the borrower's own action")


class LineChange(models.Model):
    """History of every status and limit change of a line: who or what, when, why."""

    # db_index=False: the composite index below starts with the line, and serves the same lookups.
    line = models.ForeignKey(CreditLine, on_delete=models.PROTECT, related_name="changes", db_index=False)
    at = models.DateTimeField()
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    # No index on who and which signal: nothing looks history up by them, and bulk jobs write a row per account.
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    kind = models.CharField(max_length=20, choices=LineChangeKind.choices)
    status_before = models.CharField(max_length=10, choices=LineStatus.choices)
    status_after = models.CharField(max_length=10, choices=LineStatus.choices)
    limit_before = models.DecimalField(max_digits=14, decimal_places=2)
    limit_after = models.DecimalField(max_digits=14, decimal_places=2)
    available_before = models.DecimalField(max_digits=14, decimal_places=2)
    available_after = models.DecimalField(max_digits=14, decimal_places=2)
    reason = models.TextField(blank=True)
    cause = models.CharField(max_length=10, choices=LiftCause.choices, blank=True, db_default="")
    signal = models.ForeignKey(
        "Signal", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )

    class Meta:
        verbose_name = _("line change")
        verbose_name_plural = _("line changes")
        indexes = [
            models.Index(fields=["line", "at"], name="linechange_line_at"),
            # The dashboard's figures of today (accounts.figures): rows are written in time order, so a block
            # range summary finds a day's changes at a fraction of a B-tree's cost to keep.
            BrinIndex(fields=["at"], name="linechange_at_brin", autosummarize=True, pages_per_range=32),
        ]
