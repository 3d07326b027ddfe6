from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class ActorKind(models.TextChoices):
    OPERATOR = "operator", _("operator")
    ENGINE = "engine", _("risk engine")
    JOB = "job", _("job")
    BORROWER = "borrower", _("borrower")
    SYSTEM = "system", _("system")


class AuditEvent(models.Model):
    """Append-only record of one state change: who or what, on which object, before and after, why."""

    at = models.DateTimeField(db_index=True)
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=100, blank=True)
    action = models.CharField(max_length=50)
    object_type = models.CharField(max_length=50)
    object_id = models.BigIntegerField()
    account = models.ForeignKey(
        "accounts.CreditLine", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["account", "at"], name="audit_account_at"),
            models.Index(fields=["object_type", "object_id"], name="audit_object"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_kind} {self.action} {self.object_type}#{self.object_id}"
