"""Notifications to borrowers: an outbox, sent after commit by a pluggable sender (`accounts.notifications`)."""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from accounts.models.lines import CreditLine


class NotificationKind(models.TextChoices):
    FREEZE = "freeze", _("line frozen")
    LIMIT_CUT = "limit_cut", _("available limit cut")
    LIMIT_RESTORED = "limit_restored", _("available limit restored")
    LIMIT_RESTORED_AUTO = "limit_restored_auto", _("available limit restored: the reason no longer holds")
    PROFILE_UPDATE_REQUEST = "profile_update", _("profile update request")
    OVERDUE_REMINDER = "overdue_reminder", _("overdue reminder")
    UNFREEZE = "unfreeze", _("line unfrozen")
    LIMIT_CHANGE = "limit_change", _("limit changed")
    CREDIT_EDUCATION = "credit_education", _("credit-education notice")
    APPEAL_RECEIVED = "appeal_received", _("appeal received")
    APPEAL_MORE_INFO = "appeal_more_info", _("appeal: more information requested")
    APPEAL_APPROVED = "appeal_approved", _("appeal approved")
    APPEAL_REJECTED = "appeal_rejected", _("appeal rejected")
    DUE_REMINDER = "due_reminder", _("reminder before an installment falls due")
    OVERDUE_ADVICE = "overdue_advice", _("advice after an overdue reminder")


class HeldReason(models.TextChoices):
    """Why the outbox holds a message back for now (it goes out at `held_until`, once)."""

    QUIET_HOURS = "quiet_hours", _("quiet hours")
    DAILY_MAX = "daily_max", _("daily message budget reached")
    BEHIND = "behind", _("waiting behind an earlier message")


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
    # Held back by the borrower's message budget or quiet hours: not sent before this time.
    held_until = models.DateTimeField(null=True, blank=True)
    held_reason = models.CharField(max_length=12, choices=HeldReason.choices, blank=True, db_default="")

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        constraints = [models.UniqueConstraint(fields=["dedupe_key"], name="notification_dedupe_key")]
        indexes = [models.Index(fields=["created_at"], name="notification_pending", condition=Q(sent_at__isnull=True))]
