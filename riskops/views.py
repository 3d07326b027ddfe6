"""The project's own pages: the health check, the second factor's pages, and the API's 400 and 404 when Django answers before any API view
(an address naming nothing, a body Django refuses to parse): JSON, like every other API error."""

from __future__ import annotations

import base64

import segno
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views import defaults
from django.views.decorators.http import require_GET, require_http_methods

from riskops.core import second_factor
from riskops.core.http import safe_next


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """For load balancers and `make run`: the database answers."""
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    return JsonResponse({"ok": True})


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: an address under /api/ that names nothing (/api/v1/jobs/abc/) gets the API's error format."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": _("Not found.")}, status=404)
    return defaults.page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400: a request Django refused before the view (too many files, a malformed multipart body)."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"detail": _("The request could not be read: %(reason)s") % {"reason": exception}}, status=400
        )
    return defaults.bad_request(request, exception)


def _code(request: HttpRequest) -> str:
    return "".join(ch for ch in request.POST.get("token", "") if ch.isdigit())[:8]


@login_required
@require_http_methods(["GET", "POST"])
def second_factor_page(request: HttpRequest) -> HttpResponse:
    """After the password: the code from the operator's authenticator app."""
    error = ""
    if request.method == "POST":
        if second_factor.verify(request, _code(request)):
            return redirect(safe_next(request, "/"))
        error = _("That code is not right, or has expired; enter the code your app shows now.")
    return render(request, "registration/second_factor.html", {"error": error, "next": request.GET.get("next", "")})


@login_required
@require_http_methods(["GET", "POST"])
def second_factor_setup(request: HttpRequest) -> HttpResponse:
    """Enrol an authenticator app: scan the code (or type the key), then confirm with a first code."""
    if second_factor.confirmed_device(request.user) is not None and request.user.is_verified():  # type: ignore[union-attr]
        return render(request, "registration/second_factor_setup.html", {"enrolled": True})
    if request.session.get(second_factor.STATE) == second_factor.VERIFY:
        return redirect("second_factor")
    error = ""
    if request.method == "POST":
        if second_factor.enrol_confirm(request, _code(request)):
            return redirect(safe_next(request, "/"))
        error = _("That code is not right, or has expired; enter the code your app shows now.")
    device = second_factor.enrolment_device(request.user)
    key = base64.b32encode(device.bin_key).decode()
    return render(
        request,
        "registration/second_factor_setup.html",
        {
            "qr": segno.make(device.config_url, error="m").svg_inline(scale=4, title=""),
            "key": " ".join(key[i : i + 4] for i in range(0, len(key), 4)),
            "required": second_factor.required_for(request.user),
            "error": error,
            "next": request.GET.get("next", ""),
        },
    )
