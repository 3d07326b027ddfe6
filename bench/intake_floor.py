"""The floor of the appeal intake, for bench/appeals.py: served by the same gunicorn with the same settings and
middleware, a view that takes the same 1 MB multipart upload and writes the document to disk with the intake's own
storage (`appeals.documents.store`), and does nothing else: no token, no checks of the content, no database.

    gunicorn bench.intake_floor:application ...
"""

import os
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "riskops.settings")

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()

from django.conf import settings  # noqa: E402
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.urls import include, path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

from appeals.documents import CheckedDocument, store  # noqa: E402


@csrf_exempt
def take(request: HttpRequest) -> JsonResponse:
    upload = request.FILES.getlist("documents")[0]
    data = upload.read()
    document = CheckedDocument(upload.name or "document.pdf", "application/pdf", len(data), data)
    return JsonResponse({"stored": store(document, Path(settings.APPEAL_DOCUMENTS_DIR))}, status=201)


# The intake's address, so that the benchmark's clients send exactly what they send the intake; the rest of the
# console as it is (the benchmark waits for the login page to answer).
urlpatterns = [path("api/v1/appeals/", take), path("", include("riskops.urls"))]
settings.ROOT_URLCONF = __name__
