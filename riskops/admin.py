from django.contrib import admin

from riskops.admin_base import ReadOnlyAdmin
from riskops.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor_kind", "actor_label", "action", "object_type", "object_id", "account_id"]
    list_filter = ["actor_kind", "action"]
    search_fields = ["=object_id", "=account__account_no"]
    date_hierarchy = None
    raw_id_fields = ["account", "actor_user"]
