"""The lending app's appeal API: token authentication, explicit input and output serializers, thin views."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from appeals import selectors, services
from appeals.documents import read_uploads
from appeals.models import Appeal, AppealChannel, AppealReason
from riskops.core.api import ERRORS, ErrorOutput, IntegrationApi
from riskops.core.http import actor as request_actor


class AppealInput(serializers.Serializer):
    account_no = serializers.CharField(max_length=64)
    reason = serializers.ChoiceField(choices=AppealReason.values)
    statement = serializers.CharField(max_length=services.STATEMENT_MAX)


_when = serializers.DateTimeField()  # DRF's own output format (ISO 8601 in TIME_ZONE), without a bound field


class AppealOutput(serializers.BaseSerializer):
    """An appeal as the lending app reads it: where it stands, the reply, the documents it holds.

    Written out by hand (DRF's read-only BaseSerializer): a declared-field Serializer deep-copies its fields for
    every response, a tenth of the intake's CPU time.
    """

    def to_representation(self, appeal: Appeal) -> dict[str, Any]:
        documents = self.context.get("documents")
        return {
            "id": appeal.pk,
            "account_no": appeal.line.account_no,
            "reason": appeal.reason,
            "status": appeal.status,
            "submitted_at": _when.to_representation(appeal.submitted_at),
            "sla_due_at": _when.to_representation(appeal.sla_due_at),
            "outcome": appeal.outcome,
            "reply": appeal.reply,
            "documents": [
                {"id": d.pk, "name": d.original_name, "content_type": d.content_type, "size": d.size}
                for d in (appeal.documents.all() if documents is None else documents)
            ],
        }


class _Document(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    content_type = serializers.CharField()
    size = serializers.IntegerField()


class AppealSchema(serializers.Serializer):
    """What `AppealOutput` writes (for the OpenAPI schema)."""

    id = serializers.IntegerField()
    account_no = serializers.CharField()
    reason = serializers.ChoiceField(choices=AppealReason.values)
    status = serializers.CharField()
    submitted_at = serializers.DateTimeField()
    sla_due_at = serializers.DateTimeField()
    outcome = serializers.CharField()
    reply = serializers.CharField()
    documents = _Document(many=True)


LIST_PAGE_SIZE = 50


class AppealListQuery(serializers.Serializer):
    after = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)


class AppealPage(serializers.Serializer):
    results = AppealSchema(many=True)
    next_after = serializers.IntegerField(allow_null=True, help_text="pass as `after` for the next page")


class AppealUpload(AppealInput):
    documents = serializers.ListField(child=serializers.FileField(), required=False, max_length=5)


def _token_user_id(request: Request) -> int:
    """The API user's id (IntegrationApi let in only users holding `submit_appeal`, so there is one)."""
    user_id = request.user.pk
    if user_id is None:
        raise NotAuthenticated
    return int(user_id)


class AppealCreateApi(IntegrationApi):
    """POST /api/v1/appeals/ (multipart): account_no, reason, statement, documents (0-5 files); GET lists them.

    `Idempotency-Key` makes a retried request return the appeal the first one created (200, not 201).
    """

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": AppealUpload},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
        # 503: the virus scanner is configured and cannot answer (nothing was stored; retry later).
        responses={201: AppealSchema, 200: AppealSchema, **ERRORS, 503: ErrorOutput},
    )
    def post(self, request: Request) -> Response:
        data = AppealInput(data=request.data)
        data.is_valid(raise_exception=True)
        files = read_uploads(request.FILES.getlist("documents"), getattr(request, "unsafe_upload_names", []))
        result = services.appeal_submit(
            account_no=data.validated_data["account_no"],
            reason=data.validated_data["reason"],
            statement=data.validated_data["statement"],
            files=files,
            channel=AppealChannel.API,
            actor=request_actor(request),
            idempotency_key=request.headers.get("Idempotency-Key", ""),
        )
        body = AppealOutput(result.appeal, context={"documents": result.documents}).data
        if result.replayed:
            return Response(body, status=status.HTTP_200_OK, headers={"Idempotent-Replayed": "true"})
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="v1_appeals_list",
        parameters=[
            OpenApiParameter("after", int, description="the last id of the previous page (newest first)"),
        ],
        responses={200: AppealPage, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        """GET /api/v1/appeals/: the appeals this token sent, newest first, LIST_PAGE_SIZE a page."""
        query = AppealListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        appeals = selectors.appeals_sent_by(_token_user_id(request))
        after = query.validated_data.get("after")
        if after is not None:
            appeals = appeals.filter(pk__lt=after)
        rows = list(appeals[: LIST_PAGE_SIZE + 1])
        page = rows[:LIST_PAGE_SIZE]
        return Response(
            {
                "results": [AppealOutput(a).data for a in page],
                "next_after": page[-1].pk if len(rows) > LIST_PAGE_SIZE else None,
            }
        )


class AppealDetailApi(IntegrationApi):
    """GET /api/v1/appeals/<id>/: where an appeal this token sent stands and the reply the borrower got.

    Another client's appeal, or one a borrower sent through their link, is a 404 here (as if it did not exist).
    """

    @extend_schema(responses={200: AppealSchema, **ERRORS})
    def get(self, request: Request, appeal_id: int) -> Response:
        appeal = get_object_or_404(selectors.appeals_sent_by(_token_user_id(request)), pk=appeal_id)
        return Response(AppealOutput(appeal).data)
