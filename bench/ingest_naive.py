"""The naive way of taking events, for bench/ingest.py: one POST per event, a DRF ModelSerializer create each
(the account and the referenced drawdown or installment looked up by SlugRelatedField), as one would first write
it. Served by the same gunicorn command as the console, at /naive/events/; the rest of the console as it is.

    gunicorn bench.ingest_naive:application ...
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "riskops.settings")

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()

from typing import Any  # noqa: E402

from django.conf import settings  # noqa: E402
from django.db import models  # noqa: E402
from django.urls import include, path  # noqa: E402
from rest_framework import serializers, status  # noqa: E402
from rest_framework.parsers import JSONParser  # noqa: E402
from rest_framework.request import Request  # noqa: E402
from rest_framework.response import Response  # noqa: E402

from accounts.models import CreditLine, Drawdown, Installment  # noqa: E402
from ingest.api import IngestApi  # noqa: E402
from ingest.services import EVENT_MODELS  # noqa: E402


def _serializer(model: type[models.Model]) -> type[serializers.ModelSerializer]:
    extra: dict[str, Any] = {
        "account": serializers.SlugRelatedField(
            slug_field="account_no", queryset=CreditLine.objects.all(), source="line"
        )
    }
    names = {f.name for f in model._meta.concrete_fields}
    if "drawdown" in names:
        extra["drawdown"] = serializers.SlugRelatedField(
            slug_field="upstream_id", queryset=Drawdown.objects.all(), required=False, allow_null=True
        )
    if "installment" in names:
        extra["installment"] = serializers.SlugRelatedField(
            slug_field="upstream_id", queryset=Installment.objects.all()
        )
    meta = type("Meta", (), {"model": model, "exclude": ["id", "line"]})
    return type(f"Naive{model.__name__}", (serializers.ModelSerializer,), {**extra, "Meta": meta})


SERIALIZERS = {kind: _serializer(model) for kind, model in EVENT_MODELS.items()}


class NaiveEventApi(IngestApi):
    parser_classes = [JSONParser]

    def post(self, request: Request) -> Response:
        data = dict(request.data)
        serializer = SERIALIZERS[data.pop("kind")](data=data)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data, status=status.HTTP_201_CREATED)


urlpatterns = [path("naive/events/", NaiveEventApi.as_view()), path("", include("riskops.urls"))]
settings.ROOT_URLCONF = __name__
