"""One upstream event, as the evidence rows of the case page link to it."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from accounts.models import Case
from accounts.selectors.case import EVENT_MODELS
from riskops.core.http import operator_required


@operator_required
@require_GET
def event_detail(request: HttpRequest, kind: str, event_id: int) -> HttpResponse:
    model = EVENT_MODELS.get(kind)
    if model is None:
        return HttpResponse(status=404)
    event = get_object_or_404(model.objects.select_related("line"), pk=event_id)
    fields = [
        (f.verbose_name, getattr(event, f"get_{f.name}_display")() if f.choices else getattr(event, f.name))
        for f in model._meta.concrete_fields
        if f.name not in {"id", "line"}
    ]
    case = Case.objects.filter(line=event.line).order_by("-opened_at").first()
    return render(
        request,
        "accounts/event.html",
        {"event": event, "kind": model._meta.verbose_name, "fields": fields, "case": case},
    )
