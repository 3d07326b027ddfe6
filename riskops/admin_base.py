"""What every admin page of the project shares: administrators only, no full count of a large table, sorting and
searching on indexed columns only, foreign keys picked by search (never a select of every row), and nothing changed
except through the services (`ServiceActionsAdmin`).

Admins of the project derive from `ProjectAdmin` (a test checks it); append-only records and state owned by
services from `ReadOnlyAdmin`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property
from django.utils.translation import gettext as _

from riskops.core.audit import Actor
from riskops.core.auth import may_administer
from riskops.core.errors import DomainError

BIGINT_MAX = 2**63 - 1


class EstimatingPaginator(Paginator):
    """Counts exactly up to `exact_up_to` rows; beyond that, an unfiltered list takes PostgreSQL's estimate of the
    table's rows (`pg_class.reltuples`, kept by ANALYZE) and a filtered one stops counting there. Either way a page
    costs a bounded count, never a COUNT(*) of millions of rows. `estimated` says the count is not exact (the
    changelist shows it with ≈)."""

    exact_up_to = 10_000
    estimated = False

    @cached_property
    def count(self) -> int:  # type: ignore[override]
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return len(queryset)
        # Without ORDER BY, the capped count reads the cheapest index that serves the filter.
        counted = queryset.order_by()[: self.exact_up_to + 1].count()
        if counted <= self.exact_up_to:
            return counted
        self.estimated = True
        if queryset.query.has_filters():
            return counted
        return max(counted, _table_estimate(queryset.model))


def _table_estimate(model: type[Model]) -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", [model._meta.db_table])
        row = cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def whole_number(term: str) -> int | None:
    """The search term as an id, if it is one."""
    term = term.strip()
    if term.isdigit() and 0 < int(term) <= BIGINT_MAX:
        return int(term)
    return None


class ProjectAdmin(admin.ModelAdmin):
    """Administrators see every model; changelists are safe on tables of millions of rows.

    Searching: `search_fields` lists what a term is compared with, exactly (`=field`, an indexed column), or by its
    beginning (`^field`, a column with a pattern index); integer fields only take a whole number. `line_field`
    names the credit line (a foreign key), found by its account number typed whole: the line ids are looked up first,
    so the search is one indexed condition per field on this table (an OR across a join would scan it).
    """

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatingPaginator
    list_per_page = 50
    # Newest first by the primary key's index (the autocomplete's pages too).
    ordering = ("-pk",)
    # Only the id (the primary key's index) sorts, unless an admin names other indexed columns.
    sortable_by = ("id",)
    line_field: str = ""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return may_administer(request.user)

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return may_administer(request.user)

    def get_autocomplete_fields(self, request: HttpRequest) -> list[str]:
        # Every foreign key is picked by a search (the related admin's), never from a select of all its rows.
        return [f.name for f in self.model._meta.get_fields() if f.concrete and (f.many_to_one or f.one_to_one)]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = Q()
        for spec in self.search_fields:
            condition |= self._search_condition(spec, term)
        if self.line_field:
            from accounts.models import CreditLine  # riskops does not import accounts at import time

            line_ids = list(CreditLine.objects.filter(account_no=term).values_list("pk", flat=True)[:1])
            if line_ids:
                condition |= Q(**{f"{self.line_field}_id__in": line_ids})
        if not condition:
            return queryset.none(), False
        return queryset.filter(condition), False

    def _search_condition(self, spec: str, term: str) -> Q:
        name = spec.lstrip("=^")
        field = self.model._meta.get_field("id" if name == "pk" else name)
        if field.is_relation:
            number = whole_number(term)
            return Q(**{f"{name}_id": number}) if number is not None else Q()
        if field.get_internal_type() in {"AutoField", "BigAutoField", "BigIntegerField", "PositiveIntegerField"}:
            number = whole_number(term)
            return Q(**{name: number}) if number is not None else Q()
        if spec.startswith("^"):
            return Q(**{f"{name}__startswith": term})
        return Q(**{name: term})


class ReadOnlyAdmin(ProjectAdmin):
    """Append-only records (events, signals, audit) and state owned by services: view, never edit here."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


# The most rows one admin action works on: more is a job (the jobs page), with its batches, approval and report.
ACTION_MAX_ROWS = 100


def service_action(
    request: HttpRequest,
    queryset: QuerySet[Any],
    call: Callable[[Actor, list[int]], int],
) -> None:
    """Run an admin action through a service, as the logged-in administrator: `call(actor, ids)` returns how many
    rows it changed; a refusal (a role, four eyes, a state) is shown as the service words it, and changes nothing."""
    ids = list(queryset.order_by("pk").values_list("pk", flat=True)[: ACTION_MAX_ROWS + 1])
    if len(ids) > ACTION_MAX_ROWS:
        messages.error(
            request,
            _("Choose at most %(n)s rows for an action here; for more, start a job from the jobs page")
            % {"n": ACTION_MAX_ROWS},
        )
        return
    try:
        changed = call(Actor.operator(request.user), ids)
    except DomainError as exc:
        messages.error(request, str(exc))
        return
    messages.success(request, _("%(changed)s of %(chosen)s changed") % {"changed": changed, "chosen": len(ids)})
