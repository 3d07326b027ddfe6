"""Uploads keep the name the client sent, for one check: a name with a path in it is refused, not silently cut.

Django's multipart parser strips directories from file names before any view sees them ("../../x.pdf" arrives as
"x.pdf"). This middleware parses multipart POSTs itself, with a parser that notes such names on the request
(`request.unsafe_upload_names`); `appeals.documents.read_uploads` refuses the upload when there are any.
Everything else is Django's own parsing (same limits, same handlers), done a moment earlier, and only on the
addresses that take documents (UPLOAD_PREFIXES): a multipart POST anywhere else (the login page) is left to
Django's CSRF check and view, after `riskops.core.http.BodyLimitMiddleware` capped its size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParser, MultiPartParserError


class NameNotingMultiPartParser(MultiPartParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unsafe_names: list[str] = []

    def sanitize_file_name(self, file_name: str) -> str | None:
        if file_name and ("/" in file_name or "\\" in file_name or ".." in file_name):
            self.unsafe_names.append(file_name)
        return super().sanitize_file_name(file_name)


# The borrower's pages and the appeals API (appeals.urls).
UPLOAD_PREFIXES = ("/a/", "/api/v1/appeals/")


class UploadNameMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.unsafe_upload_names = []  # type: ignore[attr-defined]
        if (
            request.method == "POST"
            and request.content_type == "multipart/form-data"
            and request.path.startswith(UPLOAD_PREFIXES)
        ):
            parser = NameNotingMultiPartParser(request.META, request, request.upload_handlers, request.encoding)
            try:
                request._post, request._files = parser.parse()  # type: ignore[attr-defined]
            except MultiPartParserError:
                # Left to Django: reading request.POST later raises the same error the usual way.
                pass
            else:
                request.unsafe_upload_names = parser.unsafe_names  # type: ignore[attr-defined]
        return self.get_response(request)
