from django.contrib import admin
from django.utils.translation import gettext_lazy

from appeals.models import Appeal, AppealAlert, AppealDocument, AppealRuleOutcome
from riskops.admin_base import ReadOnlyAdmin


@admin.register(Appeal)
class AppealAdmin(ReadOnlyAdmin):
    """Appeals are decided on the appeal page (appeals.services); personal data (the statement, the borrower's
    reply) stays on that permission-checked page, not in the admin."""

    list_display = ("id", "line", "reason", "status", "priority", "channel", "submitted_at", "sla_due_at")
    list_filter = ("status", "reason", "channel", "priority")
    list_select_related = ("line",)
    exclude = ("statement", "info_reply", "idempotency_key", "request_fingerprint")
    search_fields = ("=id",)
    search_help_text = gettext_lazy("An appeal id, or an account number typed whole.")
    line_field = "line"


@admin.register(AppealDocument)
class AppealDocumentAdmin(ReadOnlyAdmin):
    # The names stay out: the borrower's file name may carry their name, the stored one is the file's key.
    list_display = ("id", "appeal", "content_type", "size", "round", "uploaded_at")
    list_select_related = ("appeal",)
    exclude = ("stored_name", "original_name")
    search_fields = ("=id", "=appeal")
    search_help_text = gettext_lazy("A document id or an appeal id.")


@admin.register(AppealRuleOutcome)
class AppealRuleOutcomeAdmin(ReadOnlyAdmin):
    list_display = ("id", "appeal", "code", "ruleset_version", "outcome", "decided_at")
    list_filter = ("code", "outcome")
    list_select_related = ("appeal",)
    search_fields = ("=id", "=appeal")
    search_help_text = gettext_lazy("An id or an appeal id.")


@admin.register(AppealAlert)
class AppealAlertAdmin(ReadOnlyAdmin):
    list_display = ("id", "appeal", "recipient", "created_at", "read_at")
    list_select_related = ("appeal", "recipient")
    search_fields = ("=id", "=appeal")
    search_help_text = gettext_lazy("An alert id or an appeal id.")
