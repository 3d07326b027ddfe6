"""API throttling per token: a module of its own, as DRF imports its throttle classes while it loads its views."""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle


class TokenRateThrottle(SimpleRateThrottle):
    """API_THROTTLE_RATE requests per token (a session: per user; anonymous: per address), in the default cache.

    Read from settings at each request (DRF's own classes read their rates once, at import), so a test or a reload
    sees the current value. Over the rate: 429 with DRF's message and a Retry-After header.
    """

    scope = "api"

    def get_rate(self) -> str:
        return str(settings.API_THROTTLE_RATE)

    def allow_request(self, request: Request, view: Any) -> bool:
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: Any) -> str:
        auth = request.auth
        key = getattr(auth, "key", None)
        if key:
            ident = "token:" + hashlib.sha256(str(key).encode()).hexdigest()[:32]
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            # The address as the audit trail reads it (PROXY_COUNT); a request may come without one (a unix socket).
            from riskops.core.http import client_address

            ident = "addr:" + (client_address(request) or "unknown")
        return self.cache_format % {"scope": self.scope, "ident": ident}
