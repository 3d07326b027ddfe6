"""What every API view shares: one error format (one handler), and who may call which API.

Every error is `{"detail": "..."}`, with `errors: [{"field", "message"}]` (and `index`, for ingestion's items)
where input was at fault. `exception_handler` is DRF's `EXCEPTION_HANDLER`: a service's refusal becomes 400
(`DomainError`), 403 (`NotAllowed`), 404 (`NotFound`), 409 (`ConflictError`) or 503 (`Unavailable`); a
serializer's validation errors are flattened into `errors`; everything else is DRF's own `{"detail"}`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from riskops.core.auth import TokenWithRolesAuthentication, user_granted, user_roles
from riskops.core.errors import ConflictError, DomainError, NotAllowed, NotFound, Unavailable
from riskops.core.roles import ROLES, SUBMIT_APPEAL

_STATUS = [
    (NotAllowed, status.HTTP_403_FORBIDDEN),
    (NotFound, status.HTTP_404_NOT_FOUND),
    (ConflictError, status.HTTP_409_CONFLICT),
    (Unavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
    (DomainError, status.HTTP_400_BAD_REQUEST),
]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            return Response({"detail": str(exc)}, status=code)
    if isinstance(exc, ValidationError):
        errors = list(_flatten(exc.detail, ""))
        detail = "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors)
        return Response({"detail": detail or "Invalid input", "errors": errors}, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)


def _flatten(detail: Any, field: str) -> Iterator[dict[str, str]]:
    if isinstance(detail, dict):
        for name, value in detail.items():
            inner = "" if name == "non_field_errors" else str(name)
            yield from _flatten(value, f"{field}.{inner}" if field and inner else field or inner)
    elif isinstance(detail, list):
        for value in detail:
            yield from _flatten(value, field)
    else:
        yield {"field": field, "message": str(detail)}


class FieldError(serializers.Serializer):
    field = serializers.CharField(help_text="the field at fault, or empty for the input as a whole")
    message = serializers.CharField()


class ErrorOutput(serializers.Serializer):
    """The one error format of the API (documentation only: `exception_handler` writes it)."""

    detail = serializers.CharField()

    def get_fields(self) -> dict[str, serializers.Field]:
        # Named here: a declared `errors` would hide the serializer's own `errors` property.
        return {**super().get_fields(), "errors": FieldError(many=True, required=False)}


ERRORS = {400: ErrorOutput, 401: ErrorOutput, 403: ErrorOutput, 404: ErrorOutput, 409: ErrorOutput, 429: ErrorOutput}


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
        if not user_granted(request.user, SUBMIT_APPEAL):
            raise PermissionDenied("This token may not submit or read appeals")


class OperatorApi(APIView):
    """Operators' API (a session or a token): any operator role reads; services decide who may act."""

    def get_permissions(self) -> list[Any]:
        return [*super().get_permissions(), IsOperator()]
