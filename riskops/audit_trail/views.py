"""The audit page and its CSV export: filters in the URL, keyset pages, the export streamed and audited."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from accounts.templatetags.console_text import actor_text, object_text
from riskops.audit_trail import selectors, services
from riskops.audit_trail.access import reads_audit
from riskops.audit_trail.catalogue import action_label
from riskops.audit_trail.forms import AuditFilterForm
from riskops.core.http import actor, forbidden
from riskops.models import ActorKind

View = Callable[..., HttpResponseBase]
VALUE_CHARS = 60  # a before/after value longer than this is cut on the page (the export has it whole)


def audit_reader_required(view: View) -> View:
    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not reads_audit(request.user):
            return forbidden(request, _("Only auditors and admins read the audit trail."))
        return view(request, *args, **kwargs)

    return wrapper


def _checked(request: HttpRequest) -> tuple[AuditFilterForm, selectors.AuditFilters | None]:
    """The page's form, and its filter when the form and the names in it (operator, account) are good."""
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return form, None
    filters = form.filters()
    return form, (None if form.errors else filters)


@audit_reader_required
@require_GET
def audit(request: HttpRequest) -> HttpResponse:
    form, filters = _checked(request)
    kept = {k: v for k, v in request.GET.items() if k in AuditFilterForm.FILTER_FIELDS and v}
    context: dict[str, Any] = {
        "form": form,
        # Each field's errors with its label: "Object id: Ensure this value is ...".
        "field_errors": [
            (form.fields[name].label or name, errors) for name, errors in form.errors.items() if name != "__all__"
        ],
        "values": {k: request.GET.get(k, "") for k in AuditFilterForm.FILTER_FIELDS},
        "query": urlencode(kept),
        "chain": selectors.chain_state_for_page(),
        "show_client": True,
        "rows": [],
        "page": None,
    }
    if filters is None:
        return render(request, "riskops/audit.html", context, status=400)
    data = form.cleaned_data
    page = selectors.audit_page(filters, before=data["before"], after=data["after"])
    context |= {"page": page, "rows": _rows(page), "paged": bool(data["before"] or data["after"])}
    return render(request, "riskops/audit.html", context)


def _rows(page: selectors.AuditPage) -> list[dict[str, Any]]:
    case_url = reverse("accounts:case", args=[0])[:-2]
    kinds = dict(ActorKind.choices)
    client = selectors.CLIENT_ADDRESS
    rows = []
    for r in page.rows:
        case_id = page.case_of_account.get(r["account_id"])
        rows.append(
            {
                "id": r["id"],
                "at": r["at"],
                **_actor(r, kinds),
                "action": action_label(r["action"]),
                "action_code": r["action"],
                "object": f"{object_text(r['object_type'])} #{r['object_id']}",
                "object_url": f"{case_url}{r['object_id']}/" if r["object_type"] == "case" else "",
                "account_no": r["account__account_no"] or "",
                "account_url": f"{case_url}{case_id}/" if case_id else "",
                "changes": changes(r["before"], r["after"]),
                "reason": r["reason"],
                "client": r.get(client, "") if client else "",
            }
        )
    return rows


def _actor(r: dict[str, Any], kinds: dict[str, Any]) -> dict[str, str]:
    """Who acted: an operator's user name; for the others their label ("job #3"), the kind under it unless the
    label is only the kind ("engine")."""
    kind = kinds.get(r["actor_kind"], r["actor_kind"])
    if r["actor_kind"] == ActorKind.OPERATOR:
        return {"actor": r["actor_user__username"] or r["actor_label"], "actor_kind_label": ""}
    if r["actor_label"] in ("", r["actor_kind"]):
        return {"actor": str(kind), "actor_kind_label": ""}
    return {"actor": actor_text(r["actor_label"]), "actor_kind_label": str(kind)}


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def changes(before: Any, after: Any) -> list[tuple[str, str | None, str | None]]:
    """Before and after, compactly: (key, before or None, after or None) per key either holds, in their order."""
    if not isinstance(before, dict | type(None)) or not isinstance(after, dict | type(None)):
        return [("", None if before is None else _short(before), None if after is None else _short(after))]
    before, after = before or {}, after or {}
    keys = [*before, *(k for k in after if k not in before)]
    return [
        (k, _short(before[k]) if k in before else None, _short(after[k]) if k in after else None)
        for k in keys
        if before.get(k, object()) != after.get(k)
    ]


# Cells a spreadsheet would read as a formula (OWASP's CSV injection list) are sent with a leading quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


CSV_HEADER = [
    "id",
    "at",
    "actor_kind",
    "actor",
    "action",
    "object_type",
    "object_id",
    "account_no",
    "before",
    "after",
    "reason",
]


class _Echo:
    """csv.writer writes to this; each row comes back as the string to send (Django's streaming CSV recipe)."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[dict[str, Any]], client: str | None) -> Iterator[str]:
    writer = csv.writer(_Echo())
    tz = timezone.get_current_timezone()
    yield "\ufeff" + writer.writerow([*CSV_HEADER, *(["client_address"] if client else [])])
    for r in rows:
        cells = [
            r["id"],
            r["at"].astimezone(tz).isoformat(),
            r["actor_kind"],
            r["actor_user__username"] or r["actor_label"],
            r["action"],
            r["object_type"],
            r["object_id"],
            r["account__account_no"] or "",
            "" if r["before"] is None else json.dumps(r["before"], ensure_ascii=False, sort_keys=True),
            "" if r["after"] is None else json.dumps(r["after"], ensure_ascii=False, sort_keys=True),
            r["reason"],
            *([r.get(client) or ""] if client else []),
        ]
        yield writer.writerow([csv_cell(c) for c in cells])


@audit_reader_required
@require_GET
def audit_export_csv(request: HttpRequest) -> HttpResponseBase:
    form, filters = _checked(request)
    if filters is None:
        return audit(request)  # the page, with the form's errors (400)
    export = services.audit_export(filters=filters, query=form.query(), actor=actor(request))
    client = selectors.CLIENT_ADDRESS
    response = StreamingHttpResponse(
        csv_lines(selectors.export_rows(export.filters, export.up_to), client), content_type="text/csv; charset=utf-8"
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    response["Cache-Control"] = "no-store"
    return response
