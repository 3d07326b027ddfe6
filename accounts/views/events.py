"""One upstream event, as the evidence rows of the case page link to it."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.formats import date_format
from django.views.decorators.http import require_GET

from accounts.models import Case
from accounts.selectors.case import EVENT_MODELS
from riskops.core.formats import money
from riskops.core.http import operator_required


def _shown(event: models.Model, f: Any) -> object:
    """A field's value as a reader expects it: money as ¥12,345.00, times in the operator's zone with the zone's
    name, choices by their label, a referenced event by its upstream id."""
    value = getattr(event, f.name)
    if value is None:
        return None
    if f.choices:
        return getattr(event, f"get_{f.name}_display")()
    if isinstance(f, models.DecimalField):
        return money(value)
    if isinstance(f, models.DateTimeField):
        return date_format(timezone.localtime(value), "Y-m-d H:i:s T")
    if f.is_relation:
        return getattr(value, "upstream_id", value)
    return value


@operator_required
@require_GET
def event_detail(request: HttpRequest, kind: str, event_id: int) -> HttpResponse:
    model = EVENT_MODELS.get(kind)
    if model is None:
        return HttpResponse(status=404)
    event = get_object_or_404(model.objects.select_related("line"), pk=event_id)
    fields = [(f.verbose_name, _shown(event, f)) for f in model._meta.concrete_fields if f.name not in {"id", "line"}]
    case = Case.objects.filter(line=event.line).order_by("-opened_at").first()
    return render(
        request,
        "accounts/event.html",
        {"event": event, "kind": model._meta.verbose_name, "fields": fields, "case": case},
    )
