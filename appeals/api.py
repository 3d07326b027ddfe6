"""The lending app's appeal API: token authentication, explicit input and output serializers, thin views."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from appeals import services
from appeals.documents import read_uploads
from appeals.models import Appeal, AppealChannel, AppealReason
from riskops.core.api import ERRORS, ErrorOutput, IntegrationApi
from riskops.core.audit import Actor


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


class AppealUpload(AppealInput):
    documents = serializers.ListField(child=serializers.FileField(), required=False, max_length=5)


class AppealCreateApi(IntegrationApi):
    """POST /api/v1/appeals/ (multipart): account_no, reason, statement, documents (0-5 files).

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
            actor=Actor.operator(request.user),
            idempotency_key=request.headers.get("Idempotency-Key", ""),
        )
        body = AppealOutput(result.appeal, context={"documents": result.documents}).data
        if result.replayed:
            return Response(body, status=status.HTTP_200_OK, headers={"Idempotent-Replayed": "true"})
        return Response(body, status=status.HTTP_201_CREATED)


class AppealDetailApi(IntegrationApi):
    """GET /api/v1/appeals/<id>/: where an appeal stands and the reply the borrower got."""

    @extend_schema(responses={200: AppealSchema, **ERRORS})
    def get(self, request: Request, appeal_id: int) -> Response:
        appeal = get_object_or_404(Appeal.objects.select_related("line").prefetch_related("documents"), pk=appeal_id)
        return Response(AppealOutput(appeal).data)
