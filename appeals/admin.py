from django.contrib import admin

from appeals.models import Appeal, AppealDocument, AppealRuleOutcome
from riskops.admin_base import ReadOnlyAdmin


@admin.register(Appeal)
class AppealAdmin(ReadOnlyAdmin):
    # Personal data (the statement) stays on the permission-checked appeal page, not in the admin list.
    list_display = ("id", "line", "reason", "status", "priority", "channel", "submitted_at", "sla_due_at")
    list_filter = ("status", "reason", "channel", "priority")
    list_select_related = ("line",)
    exclude = ("statement", "info_reply", "idempotency_key", "request_fingerprint")
    raw_id_fields = ("case", "line", "decision")


@admin.register(AppealDocument)
class AppealDocumentAdmin(ReadOnlyAdmin):
    list_display = ("id", "appeal", "content_type", "size", "round", "uploaded_at")
    exclude = ("stored_name", "original_name")


@admin.register(AppealRuleOutcome)
class AppealRuleOutcomeAdmin(ReadOnlyAdmin):
    list_display = ("appeal", "code", "ruleset_version", "outcome", "decided_at")
    list_filter = ("code", "outcome")
