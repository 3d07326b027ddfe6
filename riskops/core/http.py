"""What every page view shares: who may see operator pages, who is acting, domain errors as responses, and the
cap on request bodies (`BodyLimitMiddleware`).

The one mapping from a service's refusal to a page (`domain_errors`): `NotAllowed` is a 403 page with the reason;
`ConflictError` (someone changed it first) a warning and `DomainError` an error message, on the page the view
names, after a redirect (POST, then redirect). A form page that shows the refusal inside the form uses `attempt`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _

from riskops.core.audit import Actor
from riskops.core.auth import user_roles
from riskops.core.errors import ConflictError, DomainError, NotAllowed
from riskops.core.roles import ROLES

View = Callable[..., HttpResponse]


def operator_required(view: View) -> View:
    """Logged in and holding one of the operator roles (auditors included: they read)."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not (user.is_superuser or user_roles(user) & set(ROLES)):
            return forbidden(request, _("Your account has no operator role."))
        return view(request, *args, **kwargs)

    return wrapper


def client_address(request: HttpRequest) -> str | None:
    """The client's address: the connection's, or behind PROXY_COUNT trusted proxies the one the outermost of them
    saw (the X-Forwarded-For entry that many places from the right; entries further left are the client's word)."""
    address = request.META.get("REMOTE_ADDR") or None
    hops = settings.PROXY_COUNT
    if hops:
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
        if len(forwarded) >= hops:
            address = forwarded[-hops]
    return address[:45] if address else None  # the longest textual IPv6 address


def actor(request: HttpRequest) -> Actor:
    """The operator making this request, with the address it comes from (every audit event of it records it)."""
    return Actor.operator(request.user, client_address(request))


def forbidden(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "riskops/forbidden.html", {"message": message}, status=403)


def domain_errors(back: Callable[..., str]) -> Callable[[View], View]:
    """Turn a service's refusal into a response: `back(request, *args, **kwargs)` is where the message is shown."""

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return view(request, *args, **kwargs)
            except NotAllowed as exc:
                return forbidden(request, str(exc))
            except ConflictError as exc:
                messages.warning(request, str(exc))
            except DomainError as exc:
                messages.error(request, str(exc))
            return redirect(back(request, *args, **kwargs))

        return wrapper

    return decorate


def attempt(call: Callable[[], object]) -> str:
    """Run a service for a form page that shows its refusal in the form: the refusal's message, or ""."""
    try:
        call()
    except DomainError as exc:
        return str(exc)
    return ""


def safe_next(request: HttpRequest, default: str) -> str:
    """The POSTed `next` address when it stays on this site, else `default`."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return default


class BodyLimitMiddleware:
    """Refuse a request whose declared body is larger than its path allows (413), before anything reads it.

    Every entry point has a limit (settings.REQUEST_BODY_LIMITS: path prefixes that take uploads or batches, and
    REQUEST_MAX_BYTES for the rest, the login page included), so an anonymous client cannot make the server read,
    parse or spill to disk a large body. WSGI reads at most Content-Length bytes, so the declared length is the cap.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    @staticmethod
    def limit(path: str) -> int:
        for prefix, limit in settings.REQUEST_BODY_LIMITS:
            if path.startswith(prefix):
                return int(limit)
        return int(settings.REQUEST_MAX_BYTES)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        limit = self.limit(request.path)
        size = int(declared) if declared.isdigit() else -1
        if size < 0 or size > limit:
            message = _("The request body is %(size)s bytes; this address takes at most %(limit)s") % {
                "size": f"{size:,}" if size >= 0 else "?",
                "limit": f"{limit:,}",
            }
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": message}, status=413)
            return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
