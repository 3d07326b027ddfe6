"""The project's own pages: the health check, and the API's 400 and 404 when Django answers before any API view
(an address naming nothing, a body Django refuses to parse): JSON, like every other API error."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views import defaults
from django.views.decorators.http import require_GET


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
