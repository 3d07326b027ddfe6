from django.contrib import admin

from ingest.models import IngestBatch
from riskops.admin_base import ReadOnlyAdmin


@admin.register(IngestBatch)
class IngestBatchAdmin(ReadOnlyAdmin):
    """What each ingestion batch brought: counts by kind and the rows' errors (written only by ingest.services)."""

    list_display = ["id", "received_at", "source", "mode", "status", "items", "actor_label", "file_name", "duration_ms"]
    list_filter = ["source", "status", "backfill"]
    search_fields = ["=id", "=job"]
