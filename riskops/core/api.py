"""What every API view shares: domain errors as JSON responses (one handler), and who may call which API.

`exception_handler` is DRF's `EXCEPTION_HANDLER`: a service's refusal becomes `{"detail": "..."}` with 400
(`DomainError`), 403 (`NotAllowed`), 404 (`NotFound`) or 409 (`ConflictError`); everything else is DRF's own.
"""

from __future__ import annotations

from typing import Any

from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from riskops.core.auth import TokenWithRolesAuthentication, user_roles
from riskops.core.errors import ConflictError, DomainError, NotAllowed, NotFound
from riskops.core.roles import ROLES, SUBMIT_APPEAL

_STATUS = [
    (NotAllowed, status.HTTP_403_FORBIDDEN),
    (NotFound, status.HTTP_404_NOT_FOUND),
    (ConflictError, status.HTTP_409_CONFLICT),
    (DomainError, status.HTTP_400_BAD_REQUEST),
]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            return Response({"detail": str(exc)}, status=code)
    return drf_exception_handler(exc, context)


class IsOperator(BasePermission):
    message = "This account has no operator role"

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and (user.is_superuser or user_roles(user) & set(ROLES)))


class IntegrationApi(APIView):
    """The lending app's API: a token of the `integration` role, which may submit and read appeals only."""

    authentication_classes = [TokenWithRolesAuthentication]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if not request.user.has_perm(SUBMIT_APPEAL):
            raise PermissionDenied("This token may not submit or read appeals")


class OperatorApi(APIView):
    """Operators' API (a session or a token): any operator role reads; services decide who may act."""

    def get_permissions(self) -> list[Any]:
        return [*super().get_permissions(), IsOperator()]
