"""What borrowers are told to do about each reason (credit education): every operator reads it, risk managers
publish a new version (accounts.services.guidance)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Guidance, RuleCode
from accounts.services.guidance import MAX_CHARS, guidance_publish, require_may_write_guidance
from riskops.core.errors import DomainError
from riskops.core.http import actor, domain_errors, operator_required
from riskops.core.roles import WRITE_GUIDANCE, may

HISTORY = 5  # versions shown under each reason


class GuidanceForm(forms.Form):
    text_zh = forms.CharField(
        label=gettext_lazy("Chinese"), max_length=MAX_CHARS, widget=forms.Textarea(attrs={"rows": 3})
    )
    text_en = forms.CharField(
        label=gettext_lazy("English"), max_length=MAX_CHARS, widget=forms.Textarea(attrs={"rows": 3})
    )


def _page(
    request: HttpRequest, forms_by_code: dict[str, GuidanceForm] | None = None, status: int = 200
) -> HttpResponse:
    versions: dict[str, list[Guidance]] = {code: [] for code in RuleCode.values}
    for g in Guidance.objects.select_related("created_by").order_by("code", "-version"):
        if len(versions[g.code]) < HISTORY:
            versions[g.code].append(g)
    forms_by_code = forms_by_code or {}
    rows = []
    for code, label in RuleCode.choices:
        current = versions[code][0] if versions[code] else None
        initial = {"text_zh": current.text_zh, "text_en": current.text_en} if current else {}
        rows.append(
            {
                "code": code,
                "label": label,
                "current": current,
                "older": versions[code][1:],
                "form": forms_by_code.get(code) or GuidanceForm(initial=initial, prefix=code),
            }
        )
    return render(
        request,
        "accounts/guidance.html",
        {"rows": rows, "may_write": may(actor(request), WRITE_GUIDANCE), "max_chars": MAX_CHARS},
        status=status,
    )


@operator_required
@require_GET
def guidance(request: HttpRequest) -> HttpResponse:
    return _page(request)


@operator_required
@require_POST
@domain_errors(lambda request, code: "/guidance/")
def guidance_publish_view(request: HttpRequest, code: str) -> HttpResponse:
    require_may_write_guidance(actor(request))
    if code not in RuleCode.values:
        raise DomainError(_("Unknown reason: %(code)s") % {"code": code})
    form = GuidanceForm(request.POST, prefix=code)
    if not form.is_valid():
        return _page(request, {code: form}, status=400)
    try:
        published = guidance_publish(
            code=code, text_zh=form.cleaned_data["text_zh"], text_en=form.cleaned_data["text_en"], actor=actor(request)
        )
    except DomainError as exc:
        form.add_error(None, str(exc))
        return _page(request, {code: form}, status=400)
    messages.success(
        request,
        _("%(reason)s: version %(version)s is what borrowers read now.")
        % {"reason": RuleCode(code).label, "version": published.version},
    )
    return redirect(f"/guidance/#guidance-{code}")
