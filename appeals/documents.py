"""Appeal documents are hostile until proven otherwise.

The type is decided by the bytes, never by the file name or the declared content type, and then by the document's
full structure: a PNG must be a well-formed chunk sequence from its signature to `IEND` with nothing after it, a
JPEG must run from SOI to EOI through well-formed segments, a PDF must start with `%PDF-` and end with an `%%EOF`
marker; then each is opened by a real parser and disarmed:

- Images are decoded by Pillow (only the detected format's decoder, at most MAX_PIXELS pixels, so a decompression
  bomb is refused from its header before it is decoded) and encoded anew: whatever hid in the file (data after
  the JPEG scan, PNG text chunks, EXIF with its GPS position, ICC profiles, comments) is not in what is stored.
  The EXIF orientation is applied first, so a phone photo still stands the right way up.
- PDFs are parsed by qpdf (pikepdf) strictly: a file qpdf could only read by reconstructing it is refused as
  damaged, so every byte of what is stored belongs to objects the checker walked. Every object is walked; the PDF
  is refused when it carries JavaScript, automatic actions (`/AA`, an `/OpenAction` or link that is anything but
  a jump inside the document, a web link or a named page action), embedded files, a fillable form (signature
  fields alone are not a form), or HTML anywhere in its bytes. A clean PDF is stored as sent: exactly the bytes
  the borrower's bank or employer produced (its digital signature, if any, still verifies, and its sha256 is the
  borrower's file's), with nothing in it a viewer could run.
- When CLAMD_SOCKET is set, each file goes to clamd (`appeals.scanner`) before it is parsed or stored; a scanner
  that cannot answer refuses the upload (fail closed).

Anything else (HTML behind a PNG header, an executable renamed .pdf, an empty or truncated file) is refused with a
message for the borrower, and nothing is written. Accepted files are stored outside the static and web roots under
random names; the name shown and served is cleaned and carries the detected type's extension.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import logging
import mmap
import os
import re
import secrets
import struct
import threading
import unicodedata
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pikepdf
from django.conf import settings
from django.http import FileResponse, HttpResponse
from django.utils.translation import gettext as _
from PIL import Image, ImageOps

from appeals import scanner
from riskops.core.errors import DomainError, Unavailable

log = logging.getLogger(__name__)

MAX_BYTES = 10 * 1024 * 1024
MAX_FILES = 5

PDF, PNG, JPEG = "application/pdf", "image/png", "image/jpeg"
EXTENSIONS = {PDF: ".pdf", PNG: ".png", JPEG: ".jpg"}
# 40 megapixels: a phone's full-resolution photo is 12 to 50; decoded as RGB it is 120 MB of memory, for a moment.
MAX_PIXELS = 40_000_000


class DocumentRejected(DomainError):
    """The message says what is wrong in words a borrower understands."""


class ScannerUnavailable(Unavailable):
    """The virus scanner is configured but cannot answer: nothing is taken until it can (HTTP 503)."""


@dataclass
class CheckedDocument:
    original_name: str
    content_type: str
    size: int
    data: bytes

    @functools.cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


# Device names Windows will not open as files, whatever the extension ("CON.pdf" is the console).
_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{d}{n}" for d in ("COM", "LPT") for n in "0123456789¹²³"}
_UNSAFE_CHARS = re.compile(r'[<>:"|?*/\\]')


def safe_name(name: str) -> str:
    """The name to show reviewers: no directories, no control or format characters (NUL, escape sequences, bidi
    overrides), none of `<>:"|?*`, no Windows device name, no leading or trailing dots, at most 120 characters."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = " ".join(_UNSAFE_CHARS.sub("", name).split()).strip(" .")
    if name.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
        name = "_" + name
    return name[:120].rstrip(" .") or "document"


def document_name(name: str, content_type: str) -> str:
    """The cleaned name with the detected type's extension in place of the one the borrower gave:
    `statement.html` that is a PDF is `statement.pdf`."""
    base = safe_name(name)
    stem, dot, extension = base.rpartition(".")
    if dot and stem and len(extension) <= 8 and extension.isalnum():
        base = stem.rstrip(" .")
    suffix = EXTENSIONS[content_type]
    return (base[: 120 - len(suffix)].rstrip(" .") or "document") + suffix


def content_disposition(disposition: str, name: str) -> str:
    """`inline` or `attachment` with the name twice (RFC 6266): an ASCII `filename` for old clients, and the real
    name as `filename*` (UTF-8, percent-encoded), which every current browser prefers."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = re.sub(r"[^A-Za-z0-9._()\[\] -]", "_", ascii_name)
    stem, dot, suffix = ascii_name.rpartition(".")
    if not re.search(r"[A-Za-z0-9]", stem):  # a name in Chinese, say: its ASCII form says nothing
        ascii_name = "document" + dot + suffix
    return f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def _looks_like_pdf(data: bytes) -> bool:
    if not data.startswith(b"%PDF-") or len(data) < 32:
        return False
    # Writers may append whitespace after the final marker; a truncated file has none in its tail.
    return b"%%EOF" in data[-1024:]


def _looks_like_png(data: bytes) -> bool:
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return False
    pos, seen_header = 8, False
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            return False
        chunk = data[pos + 4 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : end])
        if zlib.crc32(chunk) & 0xFFFFFFFF != crc:
            return False
        if not seen_header:
            if kind != b"IHDR":
                return False
            seen_header = True
        if kind == b"IEND":
            return end == len(data)  # nothing may hide after the image
        pos = end
    return False


def _looks_like_jpeg(data: bytes) -> bool:
    if not data.startswith(b"\xff\xd8\xff") or not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return False
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xD9:
            return True
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2 or pos + 2 + length > len(data):
            return False
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the end marker
            return True
        pos += 2 + length
    return False


def sniff(data: bytes) -> str | None:
    """The document's real type from its bytes, or None."""
    if _looks_like_pdf(data):
        return PDF
    if _looks_like_png(data):
        return PNG
    if _looks_like_jpeg(data):
        return JPEG
    return None


def _not_complete(name: str) -> DocumentRejected:
    return DocumentRejected(_("%(name)s is not a complete PDF, PNG or JPEG file") % {"name": safe_name(name)})


def check_document(name: str, data: bytes) -> CheckedDocument:
    """Accept a PDF, PNG or JPEG of at most 10 MB, whatever it is called, disarmed; refuse anything else."""
    if "/" in (name or "") or "\\" in (name or "") or ".." in (name or ""):
        raise DocumentRejected(_("the file name %(name)r contains a path; send the file itself") % {"name": name})
    if not data:
        raise DocumentRejected(_("%(name)s is empty") % {"name": safe_name(name)})
    if len(data) > MAX_BYTES:
        raise DocumentRejected(_("%(name)s is larger than 10 MB") % {"name": safe_name(name)})
    content_type = sniff(data)
    if content_type is None:
        raise _not_complete(name)
    scan(name, data)
    clean = _check_pdf(name, data) if content_type == PDF else _reencode_image(name, data, content_type)
    return CheckedDocument(document_name(name, content_type), content_type, len(clean), clean)


def scan(name: str, data: bytes) -> None:
    """Refuse the file if the virus scanner (clamd, when CLAMD_SOCKET is set) finds something, or cannot answer.

    The log names the scanner's finding or failure, never the borrower's file name.
    """
    socket_path = getattr(settings, "CLAMD_SOCKET", "")
    if not socket_path:
        return
    try:
        found = scanner.clamd_instream(socket_path, data)
    except scanner.ScannerError as exc:
        log.error("document refused: the virus scanner cannot answer (%s)", exc)
        raise ScannerUnavailable(
            _(
                "We cannot check documents for viruses right now, so nothing was saved. "
                "Please try again in a few minutes."
            )
        ) from exc
    if found:
        log.warning("document refused: the virus scanner found %s", found)
        raise DocumentRejected(
            _("%(name)s was refused: the virus scanner found %(threat)s in it. Send a clean copy of the document.")
            % {"name": safe_name(name), "threat": found}
        )


# --- Images: decoded and encoded anew


def _reencode_image(name: str, data: bytes, content_type: str) -> bytes:
    kind = "PNG" if content_type == PNG else "JPEG"
    try:
        with Image.open(io.BytesIO(data), formats=[kind]) as opened:
            if opened.width * opened.height > MAX_PIXELS:  # from the header, before anything is decoded
                raise DocumentRejected(
                    _("%(name)s is too large an image (%(pixels)s megapixels; at most %(max)s): send a smaller photo")
                    % {
                        "name": safe_name(name),
                        "pixels": f"{opened.width * opened.height / 1e6:,.0f}",
                        "max": f"{MAX_PIXELS / 1e6:,.0f}",
                    }
                )
            opened.load()
            image = ImageOps.exif_transpose(opened)  # a copy, the right way up
        if "transparency" in image.info:
            image = image.convert("RGBA")
        if kind == "JPEG" and image.mode not in ("L", "RGB", "CMYK"):
            image = image.convert("RGB")
        image.info = {}  # nothing of the original's metadata (text, EXIF, ICC profile) is written back
        out = io.BytesIO()
        if kind == "JPEG":
            image.save(out, "JPEG", quality=90)
        else:
            image.save(out, "PNG")
    except DocumentRejected:
        raise
    except Exception as exc:  # a hostile file may make a decoder raise anything
        raise _not_complete(name) from exc
    return out.getvalue()


# --- PDFs: parsed strictly, every object walked, refused when anything in them could act

_HTML = re.compile(rb"<(?:!doctype|html|head|body|script|iframe|object|embed|svg|meta)[\s/>]", re.IGNORECASE)
# What a link or an outline entry may do: go to a page of this document, open a web page, turn a page.
_SAFE_ACTIONS = {"/GoTo", "/URI", "/Named"}
_SAFE_URI = re.compile(r"(?:https?://|mailto:)", re.IGNORECASE)
_ACTIVE_ANNOTATIONS = {"/RichMedia", "/Screen", "/Movie", "/Sound", "/3D"}
SCRIPT, EMBEDDED, FORM = "script", "embedded", "form"


def _check_pdf(name: str, data: bytes) -> bytes:
    if _HTML.search(data):
        raise DocumentRejected(
            _("%(name)s has web page code (HTML) hidden in it; send the PDF as your bank or employer issued it")
            % {"name": safe_name(name)}
        )
    try:
        with pikepdf.open(io.BytesIO(data), attempt_recovery=False) as document:
            found = pdf_findings(document)
            if not len(document.pages) or document.get_warnings():
                raise _not_complete(name)
    except pikepdf.PasswordError as exc:
        raise DocumentRejected(
            _("%(name)s is protected by a password; send a copy without the password") % {"name": safe_name(name)}
        ) from exc
    except DocumentRejected:
        raise
    except Exception as exc:  # qpdf raises several kinds for a damaged file
        raise _not_complete(name) from exc
    messages = {
        SCRIPT: _(
            "%(name)s contains scripts or actions that run when it is opened; print it to a new PDF "
            "(or take a photo of it) and send that"
        ),
        EMBEDDED: _("%(name)s has other files inside it; send each document as a file of its own"),
        FORM: _("%(name)s is a fillable form; print it to a new PDF (or take a photo of it) and send that"),
    }
    for finding in (SCRIPT, EMBEDDED, FORM):
        if finding in found:
            raise DocumentRejected(messages[finding] % {"name": safe_name(name)})
    return data


def pdf_findings(document: pikepdf.Pdf) -> set[str]:
    """What in the PDF could act (SCRIPT), carry another file (EMBEDDED) or be filled in (FORM): every object
    qpdf finds is walked, referenced or not, with the dictionaries and arrays written inside it."""
    found: set[str] = set()
    form = document.Root.get("/AcroForm")
    if isinstance(form, pikepdf.Dictionary) and ("/XFA" in form or not _only_signatures(form.get("/Fields"))):
        found.add(FORM)
    for obj in document.objects:
        _walk(obj, found, 0)
    return found


def _only_signatures(fields: Any, inherited: Any = None, depth: int = 0) -> bool:
    """True when every field of the form is a signature field (a signed statement carries one)."""
    if not isinstance(fields, pikepdf.Array) or depth > 32:
        return fields is None
    for field in fields:
        if not isinstance(field, pikepdf.Dictionary):
            return False
        kind = field.get("/FT", inherited)
        kids = field.get("/Kids")
        if kids is not None:
            if not _only_signatures(kids, kind, depth + 1):
                return False
        elif kind != "/Sig":
            return False
    return True


def _walk(obj: Any, found: set[str], depth: int) -> None:
    if depth > 64:  # nesting deeper than any real document: refuse rather than recurse without end
        found.add(SCRIPT)
        return
    if isinstance(obj, pikepdf.Array):
        children = list(obj)
    elif isinstance(obj, (pikepdf.Dictionary, pikepdf.Stream)):
        _check_dictionary(obj, found)
        children = [value for _key, value in obj.items()]
    else:
        return
    for child in children:
        if isinstance(child, pikepdf.Object) and not child.is_indirect:  # an indirect one is walked on its own
            _walk(child, found, depth + 1)


def _check_dictionary(obj: Any, found: set[str]) -> None:
    keys = set(obj.keys())
    if keys & {"/JS", "/JavaScript", "/AA"}:
        found.add(SCRIPT)
    if keys & {"/EmbeddedFiles", "/EF"} or obj.get("/Subtype") == "/FileAttachment":
        found.add(EMBEDDED)
    if "/XFA" in keys:
        found.add(FORM)
    if obj.get("/Subtype") in _ACTIVE_ANNOTATIONS:
        found.add(SCRIPT)
    # An /OpenAction or /A that is an array is a destination ("open at page 1"), not an action; /Next chains
    # further actions, one or an array of them.
    actions = [obj[key] for key in ("/A", "/OpenAction", "/Next") if key in keys]
    actions += list(obj["/Next"]) if isinstance(obj.get("/Next"), pikepdf.Array) else []
    if obj.get("/Type") == "/Action":
        actions.append(obj)
    if any(isinstance(action, pikepdf.Dictionary) and not _safe_action(action) for action in actions):
        found.add(SCRIPT)


def _safe_action(action: Any) -> bool:
    """A jump inside the document, a web or mail link, or a named page action; an OpenAction that is a
    destination (an array: "open at page 1, fit the width") is not an action and never comes here."""
    kind = action.get("/S")
    if kind not in _SAFE_ACTIONS:
        return False
    return kind != "/URI" or bool(_SAFE_URI.match(str(action.get("/URI", ""))))


def check_documents(files: list[tuple[str, bytes]]) -> list[CheckedDocument]:
    """All or nothing: one bad file refuses the whole upload."""
    if len(files) > MAX_FILES:
        raise DocumentRejected(
            _("at most %(max)d documents at a time (%(sent)d sent)") % {"max": MAX_FILES, "sent": len(files)}
        )
    return [check_document(name, data) for name, data in files]


def store(document: CheckedDocument, root: Path) -> str:
    """Write the file under `root` with a random name; returns the name (relative to root)."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    stored = secrets.token_hex(16) + EXTENSIONS[document.content_type]
    path = root / stored
    try:
        if not _write_direct(path, document.data):
            # Whatever the refused attempt left at this random name is ours: remove it, then create the file anew
            # (O_EXCL and O_NOFOLLOW: never through something planted there).
            path.unlink(missing_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(document.data)
    except BaseException:
        path.unlink(missing_ok=True)  # a full disk, say: no partial file is left behind
        raise
    return stored


_BLOCK = 4096
_buffers = threading.local()


def _write_direct(path: Path, data: bytes) -> bool:
    """Write `data` to a new file past the page cache (O_DIRECT); False if this file system cannot.

    An appeal document is written once and read a few times by a reviewer, so it has no business in the page
    cache: putting each megabyte there costs the server about 2.8 ms of CPU on the test machine (allocating the
    cache pages), against 0.7 ms for a direct write, and evicts pages that PostgreSQL and the workers use. The
    write must be of whole blocks from an aligned buffer (a per-thread anonymous mapping, reused), so the file is
    written padded with zeros to a block boundary and then truncated to its size.
    """
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    padded = -(-len(data) // _BLOCK) * _BLOCK
    buffer: mmap.mmap | None = getattr(_buffers, "buffer", None)
    if buffer is None or len(buffer) < padded:
        if buffer is not None:
            buffer.close()
        buffer = _buffers.buffer = mmap.mmap(-1, max(padded, _BLOCK))
    buffer[: len(data)] = data
    buffer[len(data) : padded] = bytes(padded - len(data))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | flag, 0o600)
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # tmpfs and some others refuse O_DIRECT
            return False
        raise
    try:
        with memoryview(buffer) as view:
            written = os.write(fd, view[:padded])
        if written != padded:
            return False  # rewritten the ordinary way by the caller
        os.ftruncate(fd, len(data))
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return False
    finally:
        os.close(fd)
    return True


def read_uploads(uploads: list, unsafe_names: list[str] | None = None) -> list[tuple[str, bytes]]:  # type: ignore[type-arg]
    """(name, bytes) of uploaded files; an oversized file is refused by its size before it is read.

    `unsafe_names` are the names with a path that the client sent (see appeals.middleware): Django has already cut
    the path off, so they are refused here, with the name as it was sent.
    """
    for name in unsafe_names or []:
        raise DocumentRejected(_("the file name %(name)r contains a path; send the file itself") % {"name": name})
    if len(uploads) > MAX_FILES:
        raise DocumentRejected(
            _("at most %(max)d documents at a time (%(sent)d sent)") % {"max": MAX_FILES, "sent": len(uploads)}
        )
    files = []
    for upload in uploads:
        if upload.size > MAX_BYTES:
            raise DocumentRejected(_("%(name)s is larger than 10 MB") % {"name": safe_name(upload.name or "")})
        files.append((upload.name or "", upload.read()))
    return files


class StoredFiles:
    """Files written inside a transaction (an appeal's, a profile update's); removed again if it does not commit."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.paths: list[Path] = []

    def write(self, docs: list[CheckedDocument]) -> list[dict[str, Any]]:
        """Store each document under a random name; the fields of its row (stored and original name, type, size,
        hash), for the model that records it."""
        fields = []
        for doc in docs:
            name = store(doc, self.root)
            self.paths.append(self.root / name)
            fields.append(
                {
                    "stored_name": name,
                    "original_name": doc.original_name,
                    "content_type": doc.content_type,
                    "size": doc.size,
                    "sha256": doc.sha256,
                }
            )
        return fields

    def discard(self) -> None:
        for path in self.paths:
            path.unlink(missing_ok=True)


def document_response(path: Path, content_type: str, original_name: str, *, download: bool) -> HttpResponse:
    """A stored document for an operator: its checked type, never sniffed, never run by the browser."""
    content_type = content_type if content_type in EXTENSIONS else "application/octet-stream"
    response = FileResponse(path.open("rb"), content_type=content_type)
    # The name from the row, cleaned again and given the checked type's extension (rows stored before names were
    # cleaned included): "statement.html" that is a PDF downloads as "statement.pdf".
    name = document_name(original_name, content_type) if content_type in EXTENSIONS else "document"
    response["Content-Disposition"] = content_disposition("attachment" if download else "inline", name)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    # Nothing in a document may run, load anything or reach the console's origin, whatever the browser makes of it.
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response  # type: ignore[return-value]  # a streaming response; Django serves it like any other
