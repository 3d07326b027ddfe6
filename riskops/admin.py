import contextlib

from django.contrib import admin
from django.contrib.admin.exceptions import NotRegistered
from django.http import HttpRequest
from django.utils.translation import gettext_lazy
from django_otp.plugins.otp_totp.models import TOTPDevice

from riskops import admin_operators  # noqa: F401 - operators, roles and API tokens (registers their admins)
from riskops.admin_base import ReadOnlyAdmin, service_action
from riskops.core.second_factor import devices_remove
from riskops.models import (
    AuditCheckpoint,
    AuditEvent,
    AuditVerification,
    DailyFigure,
    DailyFiguresDay,
    DayMember,
    Job,
    JobBatch,
    JobItem,
)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """The audit trail: append-only, never edited or deleted here (the database refuses it too)."""

    list_display = [
        "id", "at", "actor_kind", "actor_label", "action", "object_type", "object_id", "account", "client_address",
        "chain_seq",
    ]  # fmt: skip
    exclude = ["content_hash", "prev_hash", "chain_hash"]  # bytes; `verify_audit` checks them
    list_select_related = ["account"]
    # No list filters: actor kind and action are not indexed, and a rare value would scan the whole table.
    search_fields = ["=id"]
    search_help_text = gettext_lazy("An event id, or an account number typed whole.")
    line_field = "account"


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdmin):
    """The chain's signed heads (beat writes them; append-only)."""

    list_display = ["id", "at", "chain_seq", "signature"]
    search_fields = ["=id"]
    exclude = ["chain_hash"]


@admin.register(DailyFigure)
class DailyFigureAdmin(ReadOnlyAdmin):
    """The dashboard's kept closed days (riskops.dashboard; the refresh task writes them)."""

    list_display = ["id", "day", "figure", "key", "n"]
    sortable_by = ("day",)
    search_fields = ["=id"]


@admin.register(DayMember)
class DayMemberAdmin(ReadOnlyAdmin):
    list_display = ["id", "day", "figure", "key", "member"]
    sortable_by = ("day",)
    search_fields = ["=id"]


@admin.register(DailyFiguresDay)
class DailyFiguresDayAdmin(ReadOnlyAdmin):
    list_display = ["day", "time_zone", "computed_at", "until"]
    sortable_by = ("day",)


@admin.register(AuditVerification)
class AuditVerificationAdmin(ReadOnlyAdmin):
    """Each run of `manage.py verify_audit`: who ran it, what it checked, the first event that did not match."""

    list_display = ["id", "finished_at", "by", "ok", "events_checked", "first_bad_event_id", "problem"]
    search_fields = ["=id"]


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    """Jobs are requested, approved and cancelled on the jobs page (riskops.jobs), with four eyes."""

    list_display = ["id", "kind", "status", "requested_label", "requested_at", "selected", "done", "failed"]
    list_filter = ["kind", "status"]
    search_fields = ["=id"]


@admin.register(JobBatch)
class JobBatchAdmin(ReadOnlyAdmin):
    list_display = ["id", "job", "seq", "status", "first_id", "last_id", "dispatch_count", "finished_at"]
    list_select_related = ["job"]
    search_fields = ["=id", "=job"]
    search_help_text = gettext_lazy("A batch id or a job id.")
    exclude = ["line_ids", "changed_ids"]


@admin.register(JobItem)
class JobItemAdmin(ReadOnlyAdmin):
    list_display = ["id", "job", "line", "outcome", "text"]
    list_select_related = ["job", "line"]
    list_filter = ["outcome"]
    search_fields = ["=id", "=job"]
    search_help_text = gettext_lazy("An item id or a job id.")


# django-otp's own admin edits keys in place and its QR view answers a 500 for a missing device: replaced by a list
# whose one action removes devices through the service (audited).
with contextlib.suppress(NotRegistered):
    admin.site.unregister(TOTPDevice)


@admin.register(TOTPDevice)
class SecondFactorAdmin(ReadOnlyAdmin):
    """Operators' authenticator apps: an administrator can only remove one (a lost phone); the key is never shown."""

    list_display = ["id", "user", "name", "confirmed", "created_at", "last_used_at"]
    list_select_related = ["user"]
    list_filter = ["confirmed"]
    search_fields = ["=id"]
    exclude = ["key"]
    actions = ["remove"]

    @admin.action(description=gettext_lazy("Remove the second factor (the operator enrols again)"))
    def remove(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        service_action(request, queryset, lambda actor, ids: devices_remove(device_ids=ids, actor=actor))
