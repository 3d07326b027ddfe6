"""An ingestion batch: one call of the events API, one chunk of an imported file. Its counts and errors stay, so
an upstream can ask later what became of what it sent (`GET /api/v1/ingest/batches/<id>/`)."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class BatchSource(models.TextChoices):
    API = "api", _("events API")
    FILE = "file", _("import_events command")
    UPLOAD = "upload", _("upload page")
    PORTAL = "portal", _("the borrower's page")


class BatchMode(models.TextChoices):
    ALL = "all", _("all or nothing")
    PARTIAL = "partial", _("partial")
    DRY_RUN = "dry_run", _("validation only")


class BatchStatus(models.TextChoices):
    STORED = "stored", _("stored")  # every item stored (or already there)
    PARTIAL = "partial", _("partly stored")  # the valid items stored, the others reported
    REJECTED = "rejected", _("rejected")  # nothing stored
    CHECKED = "checked", _("checked")  # a dry run


class IngestBatch(models.Model):
    source = models.CharField(_("source"), max_length=10, choices=BatchSource.choices)
    mode = models.CharField(_("mode"), max_length=10, choices=BatchMode.choices)
    backfill = models.BooleanField(_("backfill (the engine does not react)"), default=False)
    status = models.CharField(_("status"), max_length=10, choices=BatchStatus.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=100)
    file_name = models.CharField(_("file"), max_length=200, blank=True)
    first_row = models.PositiveIntegerField(default=0)  # for a file's chunk: the line its first item came from
    received_at = models.DateTimeField(_("received at"))
    items = models.PositiveIntegerField(_("items"))
    # {kind: {"received": n, "stored": n, "duplicate": n, "failed": n}}
    counts = models.JSONField(default=dict)
    errors = models.JSONField(default=list)  # [{"index", "field", "message"}]
    duration_ms = models.PositiveIntegerField(default=0)
    # The import job this batch is a chunk of (the upload page), for its progress and its error report.
    job = models.ForeignKey("riskops.Job", null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        verbose_name = _("ingestion batch")
        verbose_name_plural = _("ingestion batches")
        permissions = [("ingest_events", "Can send borrowers, lines and events to the console")]

    def __str__(self) -> str:
        return f"ingest batch #{self.pk}"
