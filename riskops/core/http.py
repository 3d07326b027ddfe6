"""What every page view shares: who may see operator pages, who is acting, and domain errors as responses.

The one mapping from a service's refusal to a page (`domain_errors`): `NotAllowed` is a 403 page with the reason;
`ConflictError` (someone changed it first) a warning and `DomainError` an error message, on the page the view
names, after a redirect (POST, then redirect). A form page that shows the refusal inside the form uses `attempt`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
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


def actor(request: HttpRequest) -> Actor:
    return Actor.operator(request.user)


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
