"""Jobs over the API (operators, with a session or a token): start one, follow its progress."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import CreditLine
from riskops.core.api import ERRORS, OperatorApi
from riskops.core.http import actor as request_actor
from riskops.jobs import requests
from riskops.models import SELECTION_KINDS, Job, JobSelection


class JobInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=[str(k) for k in SELECTION_KINDS])
    selection_kind = serializers.ChoiceField(choices=JobSelection.values)
    account_nos = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=100_000)
    filter = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500)


class JobOutput(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "selection_kind",
            "status",
            "selected",
            "done",
            "changed",
            "unchanged",
            "failed",
            "batches_total",
            "batches_done",
            "requested_at",
            "started_at",
            "finished_at",
            "error",
        ]


class JobCreateApi(OperatorApi):
    """POST /api/v1/jobs/ {kind, selection_kind: ids|filter|all, account_nos?, filter?, reason?}."""

    @extend_schema(request=JobInput, responses={201: JobOutput, **ERRORS})
    def post(self, request: Request) -> Response:
        data = JobInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        selection: dict[str, Any] = {}
        if v["selection_kind"] == JobSelection.IDS:
            numbers = v.get("account_nos") or []
            found = dict(CreditLine.objects.filter(account_no__in=numbers).values_list("account_no", "pk"))
            missing = sorted(set(numbers) - set(found))
            if missing:
                return Response(
                    {"detail": f"unknown account numbers: {', '.join(missing[:20])}"},
                    status=status.HTTP_400_BAD_REQUEST,
                )
            selection = {"line_ids": list(found.values())}
        elif v["selection_kind"] == JobSelection.FILTER:
            selection = dict(v.get("filter") or {})
        job = requests.job_request(
            kind=v["kind"],
            selection_kind=v["selection_kind"],
            selection=selection,
            actor=request_actor(request),
            reason=v.get("reason", ""),
        )
        return Response(JobOutput(job).data, status=status.HTTP_201_CREATED)


class JobDetailApi(OperatorApi):
    @extend_schema(responses={200: JobOutput, **ERRORS})
    def get(self, request: Request, job_id: int) -> Response:
        return Response(JobOutput(get_object_or_404(Job, pk=job_id)).data)
