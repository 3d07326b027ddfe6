"""Events from upstream: facts about a line, appended and never edited (a correction is a new event)."""

from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from accounts.models.lines import CreditLine

# --- Events from upstream. Each has an occurrence time and a unique upstream id, so re-ingesting
# the same feed is harmless (INSERT ... ON CONFLICT DO NOTHING).


class Event(models.Model):
    line = models.ForeignKey(CreditLine, on_delete=models.PROTECT, related_name="+", db_index=False)
    upstream_id = models.CharField(_("upstream id"), max_length=64, unique=True)
    occurred_at = models.DateTimeField(_("occurred at"))

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

    drawdown = models.ForeignKey(
        Drawdown, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("drawdown")
    )
    due_date = models.DateField(_("due date"))
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    paid_amount = models.DecimalField(_("paid amount"), max_digits=14, decimal_places=2, default=Decimal("0"))
    # The upstream's reference for paying it, when it has one: the borrower's status page shows it.
    payment_reference = models.CharField(_("payment reference"), max_length=64, blank=True, default="", db_default="")

    class Meta:
        verbose_name = _("installment")
        verbose_name_plural = _("installments")
        indexes = [
            models.Index(fields=["line", "due_date"], name="installment_line_due"),
            # The overdue rule only ever reads unpaid installments.
            models.Index(fields=["line", "due_date"], name="installment_unpaid", condition=Q(paid_at__isnull=True)),
            # The reminders before a due date: the unpaid installments falling due on one day.
            models.Index(fields=["due_date"], name="installment_unpaid_due", condition=Q(paid_at__isnull=True)),
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


class Repayment(Event):
    """Money paid against an installment, possibly partial, possibly late; occurred_at is when it was paid. The
    installment's paid amount (and paid_at once it is fully paid) and the line's amounts follow from it."""

    installment = models.ForeignKey(
        Installment, on_delete=models.PROTECT, related_name="+", db_index=False, verbose_name=_("installment")
    )
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2)

    class Meta:
        verbose_name = _("repayment")
        verbose_name_plural = _("repayments")
        indexes = [models.Index(fields=["line", "occurred_at"], name="repayment_line_at")]


class LimitChange(Event):
    """The lending app changed a line's limit upstream (its own decision, not one of this console's)."""

    limit = models.DecimalField(_("limit"), max_digits=14, decimal_places=2)
    reason = models.CharField(_("reason"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("upstream limit change")
        verbose_name_plural = _("upstream limit changes")
        indexes = [models.Index(fields=["line", "occurred_at"], name="limitchange_line_at")]


class TouchedLine(models.Model):
    """A line something new happened to, waiting for the engine (`accounts.reactions`). A row per ingestion batch and
    line, claimed and deleted by the evaluating transaction with SKIP LOCKED: many servers and workers share them,
    and a worker that dies puts its rows back by rolling back."""

    line = models.ForeignKey(CreditLine, on_delete=models.CASCADE, related_name="+", db_index=False)
    touched_at = models.DateTimeField()

    class Meta:
        verbose_name = _("touched line")
        verbose_name_plural = _("touched lines")
        indexes = [models.Index(fields=["touched_at"], name="touchedline_touched_at")]
