"""Signed, expiring links for borrowers: the appeal link a freeze message carries, and the more-information link.

A link names what it opens (a credit line to appeal for, or an appeal to add documents to) and is signed with the
SECRET_KEY; it expires after APPEAL_LINK_DAYS. Nothing in it is personal data.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.core import signing
from django.urls import reverse

_SALT = "riskops.appeals.link"


def _sign(kind: str, object_id: int) -> str:
    return signing.TimestampSigner(salt=_SALT).sign(f"{kind}{object_id}")


@functools.cache
def _path(name: str) -> tuple[str, str]:
    """The page's path around its token: reversed once (18 µs a time, against 7 for signing: a bulk unfreeze writes
    a link into each of its messages)."""
    head, tail = reverse(name, args=["TOKEN"]).split("TOKEN")
    return head, tail


def appeal_link(line_id: int) -> str:
    """The borrower's status page of this line (the appeal is made there): what every message about it carries."""
    head, tail = _path("portal:status")
    return settings.PUBLIC_BASE_URL + head + _sign("l", line_id) + tail


def more_info_link(appeal_id: int) -> str:
    head, tail = _path("portal:more_info")
    return settings.PUBLIC_BASE_URL + head + _sign("a", appeal_id) + tail


class LinkInvalid(Exception):
    def __init__(self, expired: bool) -> None:
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


def read_link(token: str, kind: str) -> int:
    """The id a link carries; LinkInvalid when it was tampered with, is of another kind, or has expired."""
    try:
        value = signing.TimestampSigner(salt=_SALT).unsign(token, max_age=settings.APPEAL_LINK_DAYS * 86400)
    except signing.SignatureExpired:
        raise LinkInvalid(expired=True) from None
    except (signing.BadSignature, ValueError):  # ValueError: signed, but without a timestamp (or a bad one)
        raise LinkInvalid(expired=False) from None
    if not value.startswith(kind) or not value[1:].isdigit():
        raise LinkInvalid(expired=False)
    return int(value[1:])
