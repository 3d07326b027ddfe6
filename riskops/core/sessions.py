"""Operator sessions end after SESSION_IDLE_MINUTES without a request, and at the latest SESSION_MAX_HOURS after the
login (SESSION_COOKIE_AGE, not renewed: Django saves a session only when it changes).

The time of the last request is kept in the session and written at most once a minute (SESSION_IDLE_WRITE_SECONDS),
so a page does not cost a session write each time. An idle session is logged out (audited as `auth.logout` with the
reason "idle") and the page asks to log in again, coming back to where it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.contrib.auth.views import redirect_to_login
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _

LAST_SEEN = "riskops_last_seen"
IDLE_WRITE_SECONDS = 60
IDLE_REASON = "idle"


@receiver(user_logged_in, dispatch_uid="riskops.session_last_seen")
def start_the_clock(sender: object, request: HttpRequest | None, **kwargs: object) -> None:
    """The login writes the session anyway: the clock starts there, not with a second write on the next page."""
    if request is not None and hasattr(request, "session"):
        request.session[LAST_SEEN] = int(time.time())


class IdleTimeoutMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = int(time.time())
            last_seen = request.session.get(LAST_SEEN)
            idle = settings.SESSION_IDLE_MINUTES * 60
            if isinstance(last_seen, int) and now - last_seen > idle:
                request.logout_reason = IDLE_REASON  # type: ignore[attr-defined]  # read by riskops.core.logins
                logout(request)
                if request.path.startswith("/api/"):
                    return self.get_response(request)  # as anonymous: the API answers 401/403 itself
                messages.info(
                    request,
                    _("Your session ended after %(minutes)d minutes without activity; please log in again.")
                    % {"minutes": settings.SESSION_IDLE_MINUTES},
                )
                return redirect_to_login(request.get_full_path())
            if not isinstance(last_seen, int) or now - last_seen >= IDLE_WRITE_SECONDS:
                request.session[LAST_SEEN] = now
        return self.get_response(request)
