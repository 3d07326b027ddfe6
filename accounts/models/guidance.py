"""What a borrower can do about each reason (credit education): short texts that risk managers keep in the console,
versioned, in both languages. The borrower's status page shows the newest version of each."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models.rules import RuleCode


class Guidance(models.Model):
    code = models.CharField(_("reason"), max_length=20, choices=RuleCode.choices)
    version = models.PositiveIntegerField(_("version"))
    text_zh = models.TextField(_("text (Chinese)"))
    text_en = models.TextField(_("text (English)"))
    created_at = models.DateTimeField(_("created at"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )

    class Meta:
        verbose_name = _("borrower guidance")
        verbose_name_plural = _("borrower guidance texts")
        constraints = [models.UniqueConstraint(fields=["code", "version"], name="guidance_code_version")]

    def __str__(self) -> str:
        return f"{self.code} v{self.version}"

    def text(self, language: str) -> str:
        return self.text_en if language.startswith("en") else self.text_zh
