"""The events API: upstream systems send borrowers, lines and events in batches (token, `ingest_events`).

POST /api/v1/events/ with {"mode": "all" | "partial", "backfill": false, "items": [...]}; see docs/IMPORT.md.
The body is read here (not by DRF's parser) to enforce its size before parsing and to keep amounts exact
(JSON numbers become Decimals, never floats).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ingest.models import BatchMode, BatchSource, BatchStatus, IngestBatch
from ingest.parsing import KINDS
from ingest.services import MAX_ITEMS, events_ingest
from riskops.core.api import ERRORS, ErrorOutput
from riskops.core.auth import TokenWithRolesAuthentication
from riskops.core.http import actor as request_actor
from riskops.core.roles import INGEST_EVENTS

_FIELDS = {"mode", "backfill", "items"}


class IngestApi(APIView):
    """A token (or session) of a user holding `ingest.ingest_events` (the integration role)."""

    authentication_classes = [TokenWithRolesAuthentication]
    parser_classes: list[Any] = []

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if not request.user.has_perm(INGEST_EVENTS):
            raise PermissionDenied("This token may not send events")


def batch_body(batch: IngestBatch) -> dict[str, Any]:
    stored = sum(c["stored"] for c in batch.counts.values())
    failed = len({e["index"] for e in batch.errors})
    detail = {
        BatchStatus.STORED: f"{stored} items stored",
        BatchStatus.PARTIAL: f"{failed} items have errors; the other {stored} were stored",
        BatchStatus.REJECTED: f"{failed} items have errors; nothing was stored",
        BatchStatus.CHECKED: f"{failed} items have errors (a dry run: nothing was stored)",
    }[BatchStatus(batch.status)]
    return {
        "detail": detail,
        "batch": batch.pk,
        "status": batch.status,
        "mode": batch.mode,
        "backfill": batch.backfill,
        "received_at": batch.received_at.isoformat(),
        "items": batch.items,
        "counts": batch.counts,
        "errors": [{"index": e["index"], "field": e["field"], "message": e["message"]} for e in batch.errors],
    }


def _too_large(message: str) -> Response:
    return Response({"detail": message}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)


def _bad(message: str) -> Response:
    return Response({"detail": message}, status=status.HTTP_400_BAD_REQUEST)


class ItemError(serializers.Serializer):
    index = serializers.IntegerField(help_text="the item's position in the batch, from 0")
    field = serializers.CharField(help_text="the field at fault, or empty for the item as a whole")
    message = serializers.CharField()


class KindCounts(serializers.Serializer):
    received = serializers.IntegerField()
    stored = serializers.IntegerField()
    duplicate = serializers.IntegerField(help_text="already there with the same fields: nothing changed")
    failed = serializers.IntegerField()


class BatchSchema(serializers.Serializer):
    """What `batch_body` writes (for the OpenAPI schema)."""

    detail = serializers.CharField()
    batch = serializers.IntegerField()
    status = serializers.ChoiceField(choices=BatchStatus.values)
    mode = serializers.ChoiceField(choices=BatchMode.values)
    backfill = serializers.BooleanField()
    received_at = serializers.DateTimeField()
    items = serializers.IntegerField()
    counts = serializers.DictField(child=KindCounts(), help_text="by kind")

    def get_fields(self) -> dict[str, serializers.Field]:
        # Named here: a declared `errors` would hide the serializer's own `errors` property.
        return {**super().get_fields(), "errors": ItemError(many=True)}


class EventsInput(serializers.Serializer):
    mode = serializers.ChoiceField(choices=[BatchMode.ALL, BatchMode.PARTIAL], default=BatchMode.ALL)
    backfill = serializers.BooleanField(default=False, help_text="store without the engine reacting")
    items = serializers.ListField(
        child=serializers.DictField(),
        min_length=1,
        max_length=MAX_ITEMS,
        help_text="each an object with `kind` and that kind's fields (docs/IMPORT.md): " + ", ".join(KINDS),
    )


class EventsApi(IngestApi):
    @extend_schema(
        request=EventsInput,
        # A 400 is a rejected batch (its per-item errors) or a body that is no batch at all (the error format).
        responses={201: BatchSchema, 207: BatchSchema, 400: PolymorphicProxySerializer(
                       component_name="EventsRefused", serializers=[BatchSchema, ErrorOutput],
                       resource_type_field_name=None),
                   413: ErrorOutput, 401: ErrorOutput, 403: ErrorOutput},
    )  # fmt: skip
    def post(self, request: Request) -> Response:
        limit = settings.INGEST_MAX_BODY_BYTES
        declared = request.META.get("CONTENT_LENGTH") or ""
        if declared.isdigit() and int(declared) > limit:
            return _too_large(f"The body is {int(declared):,} bytes; the limit is {limit:,} bytes")
        raw = request.stream.read(limit + 1) if request.stream is not None else b""
        if len(raw) > limit:
            return _too_large(f"The body is over the limit of {limit:,} bytes")
        try:
            body = json.loads(raw, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError) as exc:
            return _bad(f"The body is not valid JSON: {exc}")
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            return _bad('The body must be an object with "items": a list of items')
        unknown = sorted(set(body) - _FIELDS)
        if unknown:
            return _bad(f"Unknown field(s): {', '.join(unknown)}; the body has mode, backfill and items")
        mode = body.get("mode", BatchMode.ALL)
        if mode not in (BatchMode.ALL, BatchMode.PARTIAL):
            return _bad('"mode" must be "all" (the default) or "partial"')
        backfill = body.get("backfill", False)
        if not isinstance(backfill, bool):
            return _bad('"backfill" must be true or false')
        items = body["items"]
        if len(items) > MAX_ITEMS:
            return _too_large(f"A batch holds at most {MAX_ITEMS:,} items; this one has {len(items):,}")
        if not items:
            return _bad('"items" is empty')
        batch = events_ingest(
            items=items, actor=request_actor(request), mode=mode, backfill=backfill, source=BatchSource.API
        )
        code = {
            BatchStatus.STORED: status.HTTP_201_CREATED,
            BatchStatus.PARTIAL: status.HTTP_207_MULTI_STATUS,
            BatchStatus.REJECTED: status.HTTP_400_BAD_REQUEST,
        }[BatchStatus(batch.status)]
        return Response(batch_body(batch), status=code)


class BatchApi(IngestApi):
    @extend_schema(responses={200: BatchSchema, **ERRORS})
    def get(self, request: Request, batch_id: int) -> Response:
        return Response(batch_body(get_object_or_404(IngestBatch, pk=batch_id)))
