"""Reads of the audit trail: the page (keyset on id, newest first), the export's rows (keyset chunks), the chain's
state. A page costs the same queries whatever the table's size: its rows with who acted and the account, and the
accounts' cases for the links (plus one each for an operator or an account named in the filter)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import F, QuerySet
from django.utils import timezone

from accounts.masking import mask_name, mask_national_id, mask_phone
from accounts.models import Case, CreditLine
from accounts.selectors.queue import by_line_search
from riskops.core.audit_chain import UNSEALED_COUNTED, chain_state
from riskops.core.sql import inline_int
from riskops.models import AuditEvent

PAGE_SIZE = 50
EXPORT_CHUNK = 2000
# An account filter names a few accounts (a phone's last 4 digits may be several borrowers'), never a range.
ACCOUNT_MATCHES_MAX = 20
# A time window this many days or shorter is read through the BRIN index on `at` (`audit_page`).
NARROW_WINDOW_DAYS = 31

# The address of the request that caused the event (none for the engine, jobs and beat).
CLIENT_ADDRESS = "client_address"

ROW_FIELDS = (
    "id",
    "at",
    "actor_kind",
    "actor_label",
    "actor_user__username",
    "action",
    "object_type",
    "object_id",
    "account_id",
    "account__account_no",
    "before",
    "after",
    "reason",
    CLIENT_ADDRESS,
)


@dataclass(frozen=True)
class AuditFilters:
    actor_kind: str = ""
    actor_user_id: int | None = None
    action: str = ""
    object_type: str = ""
    object_id: int | None = None
    account_ids: tuple[int, ...] | None = None
    day_from: date | None = None  # whole days in the operator's time zone, as the queue's
    day_to: date | None = None


@dataclass
class AuditPage:
    rows: list[dict[str, Any]]
    older: int | None  # the `before` cursor of the next older page
    newer: int | None  # the `after` cursor of the next newer page
    case_of_account: dict[int, int] = field(default_factory=dict)  # account id -> its latest case


def operator_id(username: str) -> int | None:
    return get_user_model().objects.filter(username=username).values_list("pk", flat=True).first()


def account_ids(q: str) -> list[int]:
    """The accounts an operator's search names: the account number itself when it exists, else the numbers it
    begins or the phones whose last 4 digits it is (`by_line_search`), at most ACCOUNT_MATCHES_MAX + 1 of them."""
    exact = list(CreditLine.objects.filter(account_no__in={q, q.upper()}).values_list("pk", flat=True))
    if exact:
        return exact
    found = by_line_search(CreditLine.objects.all(), q, line="").values_list("pk", flat=True)
    return list(found[: ACCOUNT_MATCHES_MAX + 1])


def audit_queryset(filters: AuditFilters) -> QuerySet[AuditEvent]:
    qs = AuditEvent.objects.all()
    if filters.actor_kind:
        qs = qs.filter(actor_kind=filters.actor_kind)
    if filters.actor_user_id is not None:
        # In the statement's text, not bound: each operator's page gets its own plan (`inline_int`).
        qs = qs.filter(actor_user_id=inline_int(filters.actor_user_id))
    if filters.action:
        qs = qs.filter(action=filters.action)
    if filters.object_type:
        qs = qs.filter(object_type=filters.object_type)
    if filters.object_id is not None:
        qs = qs.filter(object_id=filters.object_id)
    if filters.account_ids is not None:
        qs = qs.filter(account_id__in=filters.account_ids)
    tz = timezone.get_current_timezone()
    if filters.day_from:
        qs = qs.filter(at__gte=datetime.combine(filters.day_from, datetime.min.time(), tzinfo=tz))
    if filters.day_to:
        qs = qs.filter(at__lt=datetime.combine(filters.day_to + timedelta(days=1), datetime.min.time(), tzinfo=tz))
    return qs


def audit_page(
    filters: AuditFilters, *, before: int | None = None, after: int | None = None, page_size: int = PAGE_SIZE
) -> AuditPage:
    """One page of the trail, newest first (ids follow time): older than `before`, or newer than `after`."""
    qs, key = keyed(audit_queryset(filters), filters)
    qs = qs.values(*ROW_FIELDS)
    if after is not None:
        rows = list(qs.filter(**{f"{key}__gt": after}).order_by(key)[: page_size + 1])
        more_newer = len(rows) > page_size
        rows = rows[:page_size][::-1]
        newer = rows[0]["id"] if more_newer else None
        older = rows[-1]["id"] if rows else None
    else:
        if before is not None:
            qs = qs.filter(**{f"{key}__lt": before})
        rows = list(qs.order_by(f"-{key}")[: page_size + 1])
        more_older = len(rows) > page_size
        rows = rows[:page_size]
        older = rows[-1]["id"] if more_older else None
        newer = rows[0]["id"] if before is not None and rows else None
    for row in rows:
        row["before"], row["after"] = masked(row["before"]), masked(row["after"])
    return AuditPage(rows, older, newer, cases_of_accounts({r["account_id"] for r in rows} - {None}))


def keyed(qs: QuerySet[AuditEvent], filters: AuditFilters) -> tuple[QuerySet[AuditEvent], str]:
    """The queryset and the key its pages walk: the id; for a window of a few days, an expression of it, so that
    PostgreSQL reads the window through the BRIN index on `at` and sorts it rather than walking the primary key back
    from the newest event to the window (it takes `at` and `id` for uncorrelated: at 2M events, 420 ms for a day's
    first page against 22 ms; bench/audit_page.py)."""
    days = filters.day_to - filters.day_from if filters.day_from and filters.day_to else None
    if days is not None and days.days < NARROW_WINDOW_DAYS:
        return qs.alias(seq=F("id") + 0), "seq"
    return qs, "id"


def cases_of_accounts(ids: set[int]) -> dict[int, int]:
    """Each account's latest case (the link from an account's audit event), in one query."""
    if not ids:
        return {}
    latest = Case.objects.filter(line_id__in=ids).order_by("line_id", "-opened_at", "-id").distinct("line_id")
    return dict(latest.values_list("line_id", "id"))


def newest_id() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def export_count(filters: AuditFilters, up_to: int) -> int:
    return audit_queryset(filters).filter(id__lte=up_to).count()


def export_rows(filters: AuditFilters, up_to: int, chunk: int = EXPORT_CHUNK) -> Iterator[dict[str, Any]]:
    """The filtered trail up to event `up_to`, newest first, read in keyset chunks: memory holds one chunk, and no
    transaction stays open while the client downloads."""
    keyed_qs, key = keyed(audit_queryset(filters), filters)
    qs = keyed_qs.values(*ROW_FIELDS).order_by(f"-{key}")
    below = up_to + 1
    while True:
        rows = list(qs.filter(**{f"{key}__lt": below})[:chunk])
        for row in rows:
            row["before"], row["after"] = masked(row["before"]), masked(row["after"])
            yield row
        if len(rows) < chunk:
            return
        below = rows[-1]["id"]


# Keys under which an audit record could hold a person's data: shown masked, whatever a writer put there. The
# writers record ids, statuses and amounts (borrower.reveal: the names of the fields shown, not their values).
_MASKS = {
    "name": mask_name,
    "borrower_name": mask_name,
    "phone": mask_phone,
    "mobile": mask_phone,
    "national_id": mask_national_id,
    "id_number": mask_national_id,
}


def masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _MASKS[k](str(v)) if k in _MASKS and isinstance(v, str | int) else masked(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def chain_state_for_page() -> dict[str, Any]:
    """The audit chain's state for the page's panel (templates/riskops/_audit_chain_state.html): the last run of
    `verify_audit` (when, by whom, its result), the last signed checkpoint and how many events wait for the sealer."""
    state = chain_state()
    verified, checkpoint = state.last_verification, state.last_checkpoint
    return {
        "last_verified_at": verified.finished_at if verified else None,
        "last_verified_by": verified.by if verified else None,
        "last_verified_ok": verified.ok if verified else None,
        "first_bad_event_id": verified.first_bad_event_id if verified else None,
        "events_checked": verified.events_checked if verified else None,
        "last_checkpoint_at": checkpoint.at if checkpoint else None,
        "unsealed": min(state.unsealed, UNSEALED_COUNTED),
        "unsealed_more": state.unsealed > UNSEALED_COUNTED,
    }
