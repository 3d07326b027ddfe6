from django.contrib import admin

from accounts.models import (
    Borrower,
    Case,
    CreditInquiry,
    CreditLine,
    Decision,
    Drawdown,
    ExternalIncomeRecord,
    Installment,
    LimitChange,
    LineChange,
    Note,
    Notification,
    ProfileUpdate,
    Repayment,
    Rule,
    RuleSet,
    Signal,
    Suppression,
    Transfer,
)
from riskops.admin_base import ReadOnlyAdmin


@admin.register(Borrower)
class BorrowerAdmin(ReadOnlyAdmin):
    """Personal data stays masked here too; revealing it is a permissioned, audited action elsewhere."""

    list_display = ["id", "masked_name", "masked_phone", "masked_national_id", "city", "occupation"]
    readonly_fields = fields = (
        "masked_name",
        "masked_phone",
        "masked_national_id",
        "city",
        "occupation",
        "employer",
        "declared_monthly_income",
        "profile_updated_at",
        "created_at",
    )
    search_fields = ["=id"]


@admin.register(CreditLine)
class CreditLineAdmin(ReadOnlyAdmin):
    """Status and limits change only through accounts.services, so the admin shows them read-only."""

    list_display = ["account_no", "status", "limit", "available", "outstanding", "frozen_since"]
    list_filter = ["status"]
    search_fields = ["=account_no"]
    raw_id_fields = ["borrower"]


@admin.register(LineChange)
class LineChangeAdmin(ReadOnlyAdmin):
    list_display = ["at", "line", "kind", "status_before", "status_after", "available_before", "available_after"]
    raw_id_fields = ["line", "signal", "actor_user"]


class EventAdmin(ReadOnlyAdmin):
    list_display = ["upstream_id", "line", "occurred_at"]
    search_fields = ["=upstream_id", "=line__account_no"]
    raw_id_fields = ["line"]


for model in (
    CreditInquiry,
    Drawdown,
    Installment,
    Transfer,
    ExternalIncomeRecord,
    ProfileUpdate,
    Repayment,
    LimitChange,
):
    admin.site.register(model, EventAdmin)


@admin.register(Signal)
class SignalAdmin(ReadOnlyAdmin):
    list_display = ["id", "line", "code", "severity", "status", "ruleset_version", "fired_at", "cleared_at"]
    list_filter = ["code", "severity", "status"]
    search_fields = ["=line__account_no"]
    raw_id_fields = ["line", "rule", "case"]


@admin.register(Suppression)
class SuppressionAdmin(ReadOnlyAdmin):
    list_display = ["line", "code", "created_at", "created_by"]
    raw_id_fields = ["line", "signal", "created_by"]


@admin.register(Case)
class CaseAdmin(ReadOnlyAdmin):
    list_display = ["id", "line", "status", "severity_rank", "opened_at", "assignee"]
    list_filter = ["status"]
    raw_id_fields = ["line", "assignee"]
    show_full_result_count = True


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ["id", "line", "kind", "channel", "created_at", "sent_at", "attempts", "last_error"]
    list_filter = ["kind", "channel"]
    raw_id_fields = ["line"]


class RuleInline(admin.TabularInline):
    model = Rule
    extra = 0


@admin.register(RuleSet)
class RuleSetAdmin(admin.ModelAdmin):
    list_display = ["version", "is_active", "note", "created_at"]
    inlines = [RuleInline]


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    """Decisions are made on the case page, through accounts.services; here they are only read."""

    list_display = ["id", "case", "kind", "status", "proposed_by", "reviewed_by", "proposed_at"]
    list_filter = ["kind", "status"]
    raw_id_fields = ["case", "line", "proposed_by", "reviewed_by"]


@admin.register(Note)
class NoteAdmin(ReadOnlyAdmin):
    """Notes are append-only."""

    list_display = ["id", "line", "case", "author", "created_at"]
    raw_id_fields = ["line", "case", "author"]
