"""What borrowers send through their pages besides appeals: the documents of a profile update."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import CreditLine


class ProfileDocument(models.Model):
    """A checked document (proof of income) sent with a profile update, stored under a random name like an appeal's
    (`appeals.documents`); `upstream_id` names the ProfileUpdate event it came with."""

    line = models.ForeignKey(CreditLine, on_delete=models.PROTECT, related_name="+", verbose_name=_("credit line"))
    upstream_id = models.CharField(_("profile update"), max_length=64, db_index=True)
    stored_name = models.CharField(max_length=64, unique=True)
    original_name = models.CharField(_("file name"), max_length=120)
    content_type = models.CharField(_("type"), max_length=30)
    size = models.PositiveIntegerField(_("size"))
    sha256 = models.CharField(max_length=64)
    uploaded_at = models.DateTimeField(_("uploaded at"))

    class Meta:
        verbose_name = _("profile document")
        verbose_name_plural = _("profile documents")

    def __str__(self) -> str:
        return self.original_name

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")
