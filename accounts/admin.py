"""The accounts app in the admin panel: everything read-only, personal data masked as on the console's pages;
the few changes an administrator makes here (assigning, releasing, unfreezing) are actions calling the services."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts import services
from accounts.models import (
    Backtest,
    BacktestDay,
    BacktestLine,
    Borrower,
    Case,
    CaseStatus,
    CreditInquiry,
    CreditLine,
    Decision,
    DecisionKind,
    Drawdown,
    Exemption,
    ExternalIncomeRecord,
    Guidance,
    Installment,
    LimitChange,
    LineChange,
    LineStatus,
    Note,
    Notification,
    ProfileUpdate,
    ReasonCode,
    Repayment,
    Rule,
    RuleSet,
    ShadowRecord,
    Signal,
    Simulation,
    SimulationLine,
    Suppression,
    TouchedLine,
    Transfer,
)
from riskops.admin_base import ACTION_MAX_ROWS, ReadOnlyAdmin, service_action
from riskops.core.audit import Actor
from riskops.core.errors import DomainError

_BORROWER_FIELDS = (
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


@admin.register(Borrower)
class BorrowerAdmin(ReadOnlyAdmin):
    """Personal data stays masked here too; revealing it is a permissioned, audited action on the case page."""

    list_display = ["id", "masked_name", "masked_phone", "masked_national_id", "city", "occupation"]
    readonly_fields = fields = _BORROWER_FIELDS
    search_fields = ["=id"]
    search_help_text = gettext_lazy("An id, or an account number typed whole.")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        found, distinct = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        line = (
            CreditLine.objects.filter(account_no=term).values_list("borrower_id", flat=True).first() if term else None
        )
        if line is not None:
            return (found | queryset.filter(pk=line)), distinct
        return found, distinct


@admin.register(CreditLine)
class CreditLineAdmin(ReadOnlyAdmin):
    """Status and limits change only through accounts.services: read-only here, unfrozen by a decision on the case."""

    list_display = ["account_no", "borrower", "status", "limit", "available", "outstanding", "frozen_since"]
    list_filter = ["status"]
    list_select_related = ["borrower"]
    sortable_by = ("account_no",)
    search_fields = ["^account_no", "=id"]
    search_help_text = gettext_lazy("The beginning of an account number (case-sensitive), or a line id.")
    fields = (
        "account_no",
        "borrower",
        "status",
        "limit",
        "available",
        "outstanding",
        "frozen_since",
        "opened_at",
        "updated_at",
    )
    actions = ["unfreeze"]

    @admin.action(description=gettext_lazy("Unfreeze through the case's decision (four eyes where required)"))
    def unfreeze(self, request: HttpRequest, queryset: QuerySet[CreditLine]) -> None:
        lines = list(queryset.order_by("pk").values_list("pk", "account_no", "status")[: ACTION_MAX_ROWS + 1])
        if len(lines) > ACTION_MAX_ROWS:
            messages.error(
                request,
                _("Choose at most %(n)s rows for an action here; for more, start a job from the jobs page")
                % {"n": ACTION_MAX_ROWS},
            )
            return
        cases = dict(
            Case.objects.filter(line_id__in=[pk for pk, _no, _s in lines])
            .exclude(status=CaseStatus.RESOLVED)
            .values_list("line_id", "pk")
        )
        actor = Actor.operator(request.user)
        for pk, account_no, status in lines:
            refusal = _unfreeze_line(actor, status, cases.get(pk))
            if refusal:
                messages.error(request, f"{account_no}: {refusal}")
            else:
                messages.success(request, f"{account_no}: {_('unfrozen')}")


def _unfreeze_line(actor: Actor, status: str, case_id: int | None) -> str:
    """Unfreeze one line as the case page does (`case_decide`): the refusal, or ""."""
    if status != LineStatus.FROZEN:
        return _("the line is not frozen")
    if case_id is None:
        return _("the line has no open case to decide")
    try:
        outcome = services.case_decide(
            case_id=case_id,
            actor=actor,
            kind=DecisionKind.UNFREEZE,
            reason_code=ReasonCode.OTHER,
            note=_("Unfrozen from the admin panel"),
            expected_version=None,
            idempotency_key=uuid.uuid4().hex,
        )
    except DomainError as exc:
        return str(exc)
    if not outcome.applied:
        return _("proposed: a second reviewer must approve the unfreeze on the case page")
    return ""


@admin.register(LineChange)
class LineChangeAdmin(ReadOnlyAdmin):
    list_display = ["id", "at", "line", "kind", "actor_kind", "status_before", "status_after", "available_after"]
    list_select_related = ["line"]
    list_filter = ["kind"]
    search_fields = ["=id"]
    line_field = "line"


class EventAdmin(ReadOnlyAdmin):
    """Upstream facts, appended and never edited (a correction is a new event)."""

    list_display = ["upstream_id", "line", "occurred_at"]
    list_select_related = ["line"]
    sortable_by = ("upstream_id",)
    search_fields = ["=upstream_id", "=id"]
    search_help_text = gettext_lazy("An upstream id or an account number, typed whole.")
    line_field = "line"


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


@admin.register(TouchedLine)
class TouchedLineAdmin(ReadOnlyAdmin):
    """Lines waiting for the engine; claimed and deleted by it."""

    list_display = ["id", "line", "touched_at"]
    list_select_related = ["line"]
    search_fields = ["=id"]


@admin.register(Signal)
class SignalAdmin(ReadOnlyAdmin):
    list_display = ["id", "line", "code", "severity", "status", "ruleset_version", "fired_at", "cleared_at"]
    list_filter = ["code", "severity", "status"]
    list_select_related = ["line"]
    search_fields = ["=id"]
    line_field = "line"


@admin.register(Suppression)
class SuppressionAdmin(ReadOnlyAdmin):
    list_display = ["id", "line", "code", "created_at", "created_by"]
    list_select_related = ["line", "created_by"]
    search_fields = ["=id"]
    line_field = "line"


@admin.register(Exemption)
class ExemptionAdmin(ReadOnlyAdmin):
    """Made on a case page (`accounts.services.exemptions`), audited; they expire by themselves."""

    list_display = ["id", "line", "code", "until", "created_at", "created_by"]
    list_select_related = ["line", "created_by"]
    search_fields = ["=id"]
    line_field = "line"


@admin.register(Simulation)
class SimulationAdmin(ReadOnlyAdmin):
    """Simulations of a draft run as jobs (the rules pages show their reports)."""

    list_display = ["id", "ruleset", "live_version", "job_id", "requested_at", "requested_by", "evaluated"]
    list_select_related = ["ruleset", "requested_by"]
    search_fields = ["=id"]


@admin.register(SimulationLine)
class SimulationLineAdmin(ReadOnlyAdmin):
    list_display = ["id", "simulation", "line", "outcome", "codes", "exposure"]
    list_select_related = ["simulation__ruleset", "line"]
    search_fields = ["=id"]
    line_field = "line"


@admin.register(Backtest)
class BacktestAdmin(ReadOnlyAdmin):
    """Backtests of a draft run as jobs (the rules pages show their reports)."""

    list_display = ["id", "ruleset", "live_version", "job_id", "first_day", "last_day", "requested_by", "evaluated"]
    list_select_related = ["ruleset", "requested_by"]
    search_fields = ["=id"]


@admin.register(BacktestDay)
class BacktestDayAdmin(ReadOnlyAdmin):
    list_display = ["id", "backtest", "day", "code", "side", "n"]
    list_select_related = ["backtest__ruleset"]
    search_fields = ["=id"]


@admin.register(BacktestLine)
class BacktestLineAdmin(ReadOnlyAdmin):
    list_display = ["id", "backtest", "line", "spared_days", "caught_days", "first_day", "codes"]
    list_select_related = ["backtest__ruleset", "line"]
    search_fields = ["=id"]
    line_field = "line"


@admin.register(ShadowRecord)
class ShadowRecordAdmin(ReadOnlyAdmin):
    list_display = ["id", "ruleset", "line", "at", "kind", "codes"]
    list_select_related = ["ruleset", "line"]
    search_fields = ["=id"]
    line_field = "line"


@admin.register(Case)
class CaseAdmin(ReadOnlyAdmin):
    """Cases change through accounts.services: the actions below assign and release through `cases_assign`."""

    list_display = ["id", "line", "status", "severity_rank", "risk_tier", "opened_at", "sla_due_at", "assignee"]
    list_filter = ["status", "risk_tier", "appeal_state"]
    list_select_related = ["line", "assignee"]
    search_fields = ["=id"]
    search_help_text = gettext_lazy("A case id, or an account number typed whole.")
    line_field = "line"
    actions = ["assign_to_me", "release"]

    @admin.action(description=gettext_lazy("Assign to me"))
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        service_action(
            request,
            queryset,
            lambda actor, ids: len(services.cases_assign(case_ids=ids, assignee_id=actor.user_id, actor=actor)),
        )

    @admin.action(description=gettext_lazy("Release (no assignee)"))
    def release(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        service_action(
            request,
            queryset,
            lambda actor, ids: len(services.cases_assign(case_ids=ids, assignee_id=None, actor=actor)),
        )


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ["id", "line", "kind", "channel", "created_at", "sent_at", "attempts"]
    list_filter = ["kind", "channel"]
    list_select_related = ["line"]
    search_fields = ["=id"]
    line_field = "line"


class RuleInline(admin.TabularInline):
    model = Rule
    extra = 0
    can_delete = False
    fields = readonly_fields = ("code", "severity", "action", "enabled", "params")

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(RuleSet)
class RuleSetAdmin(ReadOnlyAdmin):
    """Rulesets are versions: never edited in place (rule changes go through the rule-tuning flow, as a new
    version activated by a second risk manager)."""

    list_display = ["version", "is_active", "note", "created_at"]
    list_filter = ["is_active"]
    sortable_by = ("version",)
    search_fields = ["=version"]
    inlines = [RuleInline]


@admin.register(Rule)
class RuleAdmin(ReadOnlyAdmin):
    list_display = ["id", "ruleset", "code", "severity", "action", "enabled", "restore_on_clear"]
    list_filter = ["code", "enabled"]
    list_select_related = ["ruleset"]
    search_fields = ["=id"]


@admin.register(Guidance)
class GuidanceAdmin(ReadOnlyAdmin):
    """Published on the console's guidance page (accounts.services.guidance), a new version each time."""

    list_display = ["id", "code", "version", "created_at", "created_by"]
    list_filter = ["code"]
    list_select_related = ["created_by"]
    search_fields = ["=id"]


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    """Decisions are made on the case page, through accounts.services; here they are only read."""

    list_display = ["id", "case", "line", "kind", "status", "proposed_by", "reviewed_by", "proposed_at"]
    list_filter = ["kind", "status"]
    list_select_related = ["case", "line", "proposed_by", "reviewed_by"]
    search_fields = ["=id", "=case"]
    line_field = "line"
    exclude = ["idempotency_key"]


@admin.register(Note)
class NoteAdmin(ReadOnlyAdmin):
    """Notes are append-only."""

    list_display = ["id", "line", "case", "author", "created_at"]
    list_select_related = ["line", "case", "author"]
    search_fields = ["=id", "=case"]
    line_field = "line"
    exclude = ["idempotency_key"]
