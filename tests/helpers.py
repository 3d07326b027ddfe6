"""Plain helpers shared by the test modules: constants, clients, threads, documents, the appeal API, the browser.

Fixtures live in conftest.py and the rows tests start from in factories.py; a test module imports from these three,
never from another test module.
"""

from __future__ import annotations

import html
import io
import os
import re
import shutil
import socket
import struct
import threading
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import quote

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Model
from django.test import Client
from kombu import pools as kombu_pools
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import Case, Notification
from appeals import services as appeal_services
from appeals.models import Appeal, AppealDocument
from riskops.celery import app as celery_app
from riskops.core.audit import Actor
from riskops.models import ActorKind, AuditEvent
from tests.factories import make_role_operator

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page
    from pytest_django.live_server_helper import LiveServer

M = TypeVar("M", bound=Model)


class Response(Protocol):
    """What the test clients return, as far as reading the page goes."""

    @property
    def content(self) -> bytes: ...


# The checkout (manage.py, locale/, scripts/).
ROOT = Path(__file__).resolve().parent.parent

# --- What the pages and services say

EN = {"accept-language": "en"}
STALE = (
    "This case changed while you were looking at it (someone else acted, or the engine re-evaluated it). "
    "Review the current state below and decide again."
)
OWN_PROPOSAL = "You cannot approve or reject your own proposal; another senior reviewer must"


# --- Rows, operators and clients


def fresh(obj: M) -> M:
    """The row as the database has it now."""
    obj.refresh_from_db()
    return obj


def op(user: User) -> Actor:
    return Actor.operator(user)


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def token_client(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def messages_of(response: Any) -> list[str]:
    """The messages a page shows (the test client's context)."""
    return [str(m) for m in response.context["messages"]] if response.context else []


def page(response: Response) -> str:
    """The page as a reader sees it (entities decoded, no surrounding whitespace)."""
    return html.unescape(response.content.decode()).strip()


# --- Concurrency and processes


def in_threads(*calls: Callable[..., object]) -> list[Any]:
    """Run the calls at the same moment, each in its own thread and connection; each call's result or exception."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[..., object]) -> object:
        try:
            start.wait(timeout=10)
            return call()
        except Exception as exc:  # noqa: BLE001 - the test inspects what each thread got
            return exc
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [f.result(timeout=60) for f in futures]


def reset_celery_connections() -> None:
    """Drop this process's broker connections, so Celery's next send connects to the broker now configured."""
    # kombu keeps connection pools in a registry keyed by URL; closing them empties it.
    kombu_pools.reset()
    # celery-stubs do not declare Celery._pool, the app's handle on the pool closed above.
    celery_app._pool = None  # type: ignore[attr-defined]
    # Queues, router and producer pool are cached on app.amqp; a fresh one reads the new settings.
    celery_app.__dict__.pop("amqp", None)


def current_database_url() -> str:
    """The URL of the database this test runs on, for a process of its own (a worker, a command)."""
    s = connection.settings_dict
    auth = quote(s["USER"] or "", safe="") + (f":{quote(s['PASSWORD'], safe='')}" if s["PASSWORD"] else "")
    host, port, name = s["HOST"] or "", s["PORT"] or "", quote(s["NAME"], safe="")
    if host.startswith("/"):
        return f"postgresql://{auth}@/{name}?host={quote(host, safe='')}" + (f"&port={port}" if port else "")
    return f"postgresql://{auth}@{host}{':' + str(port) if port else ''}/{name}"


def free_port() -> int:
    """A TCP port nothing listens on right now (on 127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- Real documents, built byte by byte (no fixtures on disk)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png(size: tuple[int, int] = (1, 1)) -> bytes:
    """An RGB PNG of `size` pixels, a colour gradient from red in its top-left corner (one red pixel by default)."""
    width, height = size
    rows = b"".join(
        b"\x00" + b"".join(bytes(((255 - x * 10) % 256, y * 15 % 256, 0)) for x in range(width)) for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")


def jpeg(size: tuple[int, int] = (1, 1)) -> bytes:
    """A baseline JPEG of `size` pixels (red), as a camera writes it: SOI, JFIF header, tables, frame, scan, EOI."""
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, "JPEG", quality=90)
    return out.getvalue()


def pdf() -> bytes:
    """A one-page PDF with a correct cross-reference table, as a PDF reader expects it."""
    content = b"BT /F1 18 Tf 72 720 Td (Loan settlement certificate) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


# --- Appeals: the borrower's link and the lending app's API

APPEALS_API = "/api/v1/appeals/"
BOUNDARY = "----riskops-test-boundary"
STATEMENT = "我已于上周还清其他机构的借款，附上结清证明。"
BORROWER = Actor(ActorKind.BORROWER, None, "borrower (signed link)")
# What `stored()` gives when an appeal left nothing behind.
NOTHING: tuple[int, int, list[str], int, int] = (0, 0, [], 0, 0)


def submit(case: Case, files: Iterable[tuple[str, bytes]] = (), reason: str = "loans_closed") -> Appeal:
    """An appeal through the borrower link's service call."""
    return appeal_services.appeal_submit(
        line_id=case.line_id, reason=reason, statement=STATEMENT, files=list(files), channel="link", actor=BORROWER
    ).appeal


def multipart(fields: dict[str, str], files: list[tuple[str, bytes]]) -> bytes:
    """A multipart body built by hand: the test client would strip directories from file names."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    for name, data in files:
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="documents"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def post_api(
    client: Client,
    account_no: str,
    files: Iterable[tuple[str, bytes]] = (),
    key: str = "",
    reason: str = "loans_closed",
    statement: str = STATEMENT,
):
    """POST an appeal to the API as the lending app does (a multipart body, an optional Idempotency-Key)."""
    return client.post(
        APPEALS_API,
        data=multipart({"account_no": account_no, "reason": reason, "statement": statement}, list(files)),
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
        headers={"Idempotency-Key": key} if key else {},
    )


def stored() -> tuple[int, int, list[str], int, int]:
    """Everything an appeal leaves behind: rows, files, audit events, borrower messages."""
    root = Path(settings.APPEAL_DOCUMENTS_DIR)
    return (
        Appeal.objects.count(),
        AppealDocument.objects.count(),
        sorted(p.name for p in root.iterdir()) if root.exists() else [],
        AuditEvent.objects.filter(action__startswith="appeal.").count(),
        Notification.objects.filter(kind__startswith="appeal_").count(),
    )


# --- The browser: Debian's Chromium driven by Playwright (the `browser` fixture is in conftest.py)

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def need_chromium() -> None:
    """Skip the calling module without Chromium (fail in CI, which installs it); let Playwright share the thread.

    Call it at the top of a browser test module, before its tests are collected.
    """
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI"):
            raise RuntimeError(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium package")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
    # Playwright's sync API runs an event loop in this thread; the live server answers in its own thread.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def password_of(username: str) -> str:
    """The password of an operator made with `browser_operator`."""
    return f"{username}-pw-2026"


def browser_operator(username: str, role: str) -> User:
    """An operator in `role` who can log in through the login page."""
    return make_role_operator(role, username, password=password_of(username))


def browser_login(browser: Browser, live_server: LiveServer, username: str) -> Page:
    """A new browser context (English, a desktop screen) logged in as `username`, on their home: the queue, or for
    managers and readers the dashboard."""
    context = browser.new_context(locale="en-US", viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    tab.goto(f"{live_server.url}/login/")
    tab.fill("#id_username", username)
    tab.fill("#id_password", password_of(username))
    tab.click(".login button[type=submit]")
    tab.wait_for_url(re.compile(re.escape(live_server.url) + r"/(queue|dashboard)/$"))
    return tab


def linked(body: str, line_id: int) -> str:
    """A message's text before the status-page link it ends with; fails unless the link opens this line's page."""
    from appeals.links import read_link

    head, _sep, link = body.rpartition(settings.PUBLIC_BASE_URL)
    assert head and link.startswith("/a/"), body
    assert read_link(link.removeprefix("/a/").rstrip("/"), "l") == line_id, body
    return head
