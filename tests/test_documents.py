"""Appeal documents: the type comes from the bytes, and every hostile file is refused before anything is stored."""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import re
import shutil
import socket
import stat
import struct
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pikepdf
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from appeals import links
from appeals.documents import (
    JPEG,
    MAX_BYTES,
    PDF,
    PNG,
    CheckedDocument,
    DocumentRejected,
    ScannerUnavailable,
    check_document,
    check_documents,
    content_disposition,
    document_name,
    safe_name,
    store,
)
from appeals.models import AppealDocument
from tests.factories import frozen_multi_head_case
from tests.helpers import NOTHING, STATEMENT, jpeg, logged_in, page, pdf, png, post_api, stored, submit, token_client


@pytest.mark.parametrize(
    ("name", "data", "content_type", "shown"),
    [
        ("收入证明.pdf", pdf(), PDF, "收入证明.pdf"),
        ("photo.png", png(), PNG, "photo.png"),
        ("IMG_0001.JPG", jpeg(), JPEG, "IMG_0001.jpg"),
        ("no-extension", png(), PNG, "no-extension.png"),
    ],
)
def test_a_pdf_png_or_jpeg_is_accepted_by_its_content_whatever_its_name(name, data, content_type, shown):
    document = check_document(name, data)
    assert (document.content_type, document.size, document.original_name) == (content_type, len(document.data), shown)


def test_a_pdf_called_photo_png_is_still_a_pdf():
    assert check_document("photo.png", pdf()).content_type == PDF


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("empty.pdf", b"", "empty.pdf is empty"),
        (
            "evil.png",
            b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>",
            "evil.png is not a complete PDF, PNG or JPEG file",
        ),
        (
            "evil2.png",
            png() + b"<html><script>alert(1)</script></html>",
            "evil2.png is not a complete PDF, PNG or JPEG file",
        ),
        (
            "setup.pdf",
            b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 200,
            "setup.pdf is not a complete PDF, PNG or JPEG file",
        ),
        ("tool.pdf", b"\x7fELF\x02\x01\x01" + b"\x00" * 200, "tool.pdf is not a complete PDF, PNG or JPEG file"),
        ("cut.pdf", pdf()[:-8], "cut.pdf is not a complete PDF, PNG or JPEG file"),
        ("cut.png", png()[:-6], "cut.png is not a complete PDF, PNG or JPEG file"),
        ("cut.jpg", jpeg()[:-2], "cut.jpg is not a complete PDF, PNG or JPEG file"),
        ("page.html", b"<!doctype html><p>%PDF-1.4</p>", "page.html is not a complete PDF, PNG or JPEG file"),
        ("../../x.pdf", pdf(), "the file name '../../x.pdf' contains a path; send the file itself"),
        ("C:\\x\\a.pdf", pdf(), "the file name 'C:\\\\x\\\\a.pdf' contains a path; send the file itself"),
        ("big.pdf", b"%PDF-1.4\n" + b"0" * MAX_BYTES + b"\n%%EOF\n", "big.pdf is larger than 10 MB"),
    ],
    ids=[
        "empty",
        "png-header-html",
        "png-then-html",
        "exe-as-pdf",
        "elf-as-pdf",
        "truncated-pdf",
        "truncated-png",
        "truncated-jpeg",
        "html",
        "path-traversal",
        "windows-path",
        "oversize",
    ],
)
def test_hostile_files_are_refused_with_a_clear_message(name, data, message):
    with pytest.raises(DocumentRejected) as excinfo:
        check_document(name, data)
    assert str(excinfo.value) == message


def test_one_bad_file_refuses_the_whole_upload_and_six_files_are_too_many(tmp_path: Path):
    with pytest.raises(DocumentRejected) as excinfo:
        check_documents([("a.pdf", pdf()), ("b.png", b"")])
    assert str(excinfo.value) == "b.png is empty"
    with pytest.raises(DocumentRejected) as excinfo:
        check_documents([(f"{i}.png", png()) for i in range(6)])
    assert str(excinfo.value) == "at most 5 documents at a time (6 sent)"
    assert list(tmp_path.iterdir()) == []


def test_an_accepted_file_is_stored_under_a_random_name_readable_only_by_the_app(tmp_path: Path):
    root = tmp_path / "appeal-documents"
    first = store(check_document("收入证明.pdf", pdf()), root)
    second = store(check_document("收入证明.pdf", pdf()), root)

    assert first != second
    assert first.endswith(".pdf")
    assert "收入" not in first
    assert (root / first).read_bytes() == pdf()
    assert stat.S_IMODE((root / first).stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("收入证明.pdf", "收入证明.pdf"),
        ("a\x00b\x1b[31m.png", "ab[31m.png"),
        (".hidden.pdf", "hidden.pdf"),
        ("", "document"),
        ("x\x00.pdf", "x.pdf"),
        ("CON.pdf", "_CON.pdf"),
        ("lpt1", "_lpt1"),
        ("<script>.pdf", "script.pdf"),
        ('a<b>:c"d|e?f*g.pdf', "abcdefg.pdf"),
        ("invoice\u202egpj.exe", "invoicegpj.exe"),  # a right-to-left override would show it as "exe.jpg"
        ("report. ", "report"),
        ("长" * 200 + ".pdf", "长" * 120),
    ],
)
def test_names_shown_to_reviewers_are_cleaned(raw, shown):
    assert safe_name(raw) == shown


# --- Storing: written past the page cache (O_DIRECT) where the file system allows it, the ordinary way elsewhere.

SIZES = [1, 4095, 4096, 4097, 1024 * 1024, 3_000_001]


def _document(size: int) -> CheckedDocument:
    return CheckedDocument("scan.pdf", PDF, size, os.urandom(size))


def _direct_supported(root: Path) -> bool:
    root.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(root / "probe", os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600))
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return False
    finally:
        (root / "probe").unlink(missing_ok=True)
    return True


@pytest.fixture
def opens(monkeypatch) -> list[int]:
    """The flags of every os.open while storing."""
    flags: list[int] = []
    real_open = os.open

    def recording_open(path, flag, *args, **kwargs):
        flags.append(flag)
        return real_open(path, flag, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    return flags


@pytest.mark.parametrize("size", SIZES)
def test_a_stored_file_holds_exactly_the_bytes_sent_whatever_their_size(tmp_path: Path, opens, size):
    root = tmp_path / "appeal-documents"
    direct = _direct_supported(root)
    opens.clear()
    document = _document(size)

    name = store(document, root)

    assert (root / name).read_bytes() == document.data  # padded to whole blocks for the write, then cut back
    assert stat.S_IMODE((root / name).stat().st_mode) == 0o600
    if direct:  # written once, past the page cache, and not again the ordinary way
        assert [bool(f & os.O_DIRECT) for f in opens] == [True]


def test_a_small_file_stored_after_a_large_one_gets_none_of_its_bytes(tmp_path: Path):
    root = tmp_path / "appeal-documents"
    documents = [_document(size) for size in (3_000_001, 1, 4097, 4096, 1024 * 1024, 4095)]

    names = [store(d, root) for d in documents]  # one reused buffer per thread

    assert [(root / n).read_bytes() for n in names] == [d.data for d in documents]


def test_without_o_direct_the_file_is_written_the_ordinary_way(tmp_path: Path, monkeypatch, opens):
    monkeypatch.delattr(os, "O_DIRECT")
    root = tmp_path / "appeal-documents"
    document = _document(4097)

    name = store(document, root)

    assert (root / name).read_bytes() == document.data
    assert stat.S_IMODE((root / name).stat().st_mode) == 0o600
    assert len(opens) == 1


@pytest.mark.parametrize("refused", ["open", "write", "short-write"])
def test_where_the_file_system_refuses_o_direct_the_file_is_written_the_ordinary_way(
    tmp_path: Path, monkeypatch, refused
):
    direct_flag = os.O_DIRECT
    real_open = os.open

    def open_refusing_direct(path, flags, *args, **kwargs):
        if flags & direct_flag:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args, **kwargs)

    if refused == "open":  # tmpfs and some other file systems
        monkeypatch.setattr(os, "open", open_refusing_direct)
    elif refused == "write":
        monkeypatch.setattr(os, "write", lambda fd, data: (_ for _ in ()).throw(OSError(errno.EINVAL, "Invalid")))
    else:
        monkeypatch.setattr(os, "write", lambda fd, data: 0)
    root = tmp_path / "appeal-documents"
    document = _document(4097)

    name = store(document, root)

    assert (root / name).read_bytes() == document.data
    assert stat.S_IMODE((root / name).stat().st_mode) == 0o600
    assert [p.name for p in root.iterdir()] == [name]


# --- Disarming (issue 14): the hostile corpus, through the check, the API and the borrower's page

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
SCRIPT = b"<script>alert(document.cookie)</script>"


def edited_pdf(change: Callable[[pikepdf.Pdf], object]) -> bytes:
    """tests.helpers.pdf() with `change` applied by pikepdf, written uncompressed (what is added stays readable)."""
    with pikepdf.open(io.BytesIO(pdf())) as document:
        change(document)
        out = io.BytesIO()
        document.save(out, compress_streams=False, static_id=True)
    return out.getvalue()


def _js(code: str) -> pikepdf.Dictionary:
    return pikepdf.Dictionary(S=pikepdf.Name.JavaScript, JS=pikepdf.String(code))


def _annotate(document: pikepdf.Pdf, annotation: pikepdf.Dictionary) -> None:
    annotation.Type, annotation.Rect = pikepdf.Name.Annot, pikepdf.Array([0, 0, 10, 10])
    document.pages[0].obj.Annots = document.make_indirect(pikepdf.Array([document.make_indirect(annotation)]))


def _link(uri: str) -> Callable[[pikepdf.Pdf], None]:
    action = pikepdf.Dictionary(S=pikepdf.Name.URI, URI=pikepdf.String(uri))
    return lambda d: _annotate(d, pikepdf.Dictionary(Subtype=pikepdf.Name.Link, A=action))


def _set_root(**entries: Any) -> Callable[[pikepdf.Pdf], None]:
    def change(document: pikepdf.Pdf) -> None:
        for key, value in entries.items():
            document.Root[f"/{key}"] = value

    return change


def _attach(document: pikepdf.Pdf) -> None:
    document.attachments["invoice.exe"] = pikepdf.AttachedFileSpec(document, b"MZ\x90\x00" + b"\x00" * 60)


def _attachment_annotation(document: pikepdf.Pdf) -> None:
    spec = pikepdf.AttachedFileSpec(document, b"MZ\x90\x00" + b"\x00" * 60, filename="a.exe")
    _annotate(document, pikepdf.Dictionary(Subtype=pikepdf.Name.FileAttachment, FS=spec.obj))


def _form(*fields: pikepdf.Dictionary, **extra: Any) -> Callable[[pikepdf.Pdf], None]:
    def change(document: pikepdf.Pdf) -> None:
        document.Root.AcroForm = pikepdf.Dictionary(
            Fields=pikepdf.Array([document.make_indirect(f) for f in fields]), **extra
        )

    return change


def _page_contents(data: bytes) -> Callable[[pikepdf.Pdf], None]:
    def change(document: pikepdf.Pdf) -> None:
        document.pages[0].obj.Contents = document.make_stream(data)

    return change


def _encrypted() -> bytes:
    with pikepdf.open(io.BytesIO(pdf())) as document:
        out = io.BytesIO()
        document.save(out, encryption=pikepdf.Encryption(user="secret", owner="owner"))
    return out.getvalue()


SCRIPT_REFUSED = (
    "{} contains scripts or actions that run when it is opened; print it to a new PDF (or take a photo of it) "
    "and send that"
)
FORM_REFUSED = "{} is a fillable form; print it to a new PDF (or take a photo of it) and send that"
EMBEDDED_REFUSED = "{} has other files inside it; send each document as a file of its own"
HTML_REFUSED = "{} has web page code (HTML) hidden in it; send the PDF as your bank or employer issued it"
NOT_COMPLETE = "{} is not a complete PDF, PNG or JPEG file"

HOSTILE_PDFS = {
    "html-between-pdf-markers": (
        b"%PDF-1.4\n<html><body>" + SCRIPT + b"</body></html>\n" + b" " * 40 + b"\n%%EOF\n",
        HTML_REFUSED,
    ),
    "html-in-a-comment-of-a-real-pdf": (pdf().replace(b"xref\n", b"%<html>" + SCRIPT + b"\nxref\n"), HTML_REFUSED),
    "open-action-javascript": (edited_pdf(_set_root(OpenAction=_js("app.alert(1)"))), SCRIPT_REFUSED),
    "open-action-launch": (
        edited_pdf(_set_root(OpenAction=pikepdf.Dictionary(S=pikepdf.Name.Launch, F=pikepdf.String("cmd.exe")))),
        SCRIPT_REFUSED,
    ),
    "javascript-name-tree": (
        edited_pdf(
            _set_root(
                Names=pikepdf.Dictionary(
                    JavaScript=pikepdf.Dictionary(Names=pikepdf.Array([pikepdf.String("a"), _js("app.alert(1)")]))
                )
            )
        ),
        SCRIPT_REFUSED,
    ),
    "page-additional-action": (
        edited_pdf(lambda d: setattr(d.pages[0].obj, "AA", pikepdf.Dictionary(O=_js("app.alert(1)")))),
        SCRIPT_REFUSED,
    ),
    "javascript-link": (edited_pdf(_link("javascript:alert(1)")), SCRIPT_REFUSED),
    "file-link": (edited_pdf(_link("file:///C:/Windows/System32/calc.exe")), SCRIPT_REFUSED),
    "submit-form-action": (
        edited_pdf(
            _set_root(OpenAction=pikepdf.Dictionary(S=pikepdf.Name.SubmitForm, F=pikepdf.String("https://evil/")))
        ),
        SCRIPT_REFUSED,
    ),
    "embedded-file": (edited_pdf(_attach), EMBEDDED_REFUSED),
    "file-attachment-annotation": (edited_pdf(_attachment_annotation), EMBEDDED_REFUSED),
    "acroform": (
        edited_pdf(_form(pikepdf.Dictionary(FT=pikepdf.Name.Tx, T=pikepdf.String("income")))),
        FORM_REFUSED,
    ),
    "xfa": (edited_pdf(_form(XFA=pikepdf.Array())), FORM_REFUSED),
    "truncated-with-eof-marker": (pdf()[:300] + b"\n%%EOF\n", NOT_COMPLETE),
    "garbage-between-markers": (b"%PDF-1.7\n" + os.urandom(2000) + b"\n%%EOF\n", NOT_COMPLETE),
    "password-protected": (_encrypted(), "{} is protected by a password; send a copy without the password"),
}


@pytest.mark.parametrize(("data", "message"), list(HOSTILE_PDFS.values()), ids=list(HOSTILE_PDFS))
def test_a_pdf_that_could_act_or_does_not_parse_is_refused_with_a_reason(data, message):
    with pytest.raises(DocumentRejected) as excinfo:
        check_document("statement.pdf", data)
    assert str(excinfo.value) == message.format("statement.pdf")


@pytest.mark.parametrize(
    "data",
    [
        edited_pdf(_link("https://bank.example.com/verify")),  # a bank's statement links to its site
        edited_pdf(lambda d: setattr(d.Root, "OpenAction", pikepdf.Array([d.pages[0].obj, pikepdf.Name.Fit]))),
        edited_pdf(_form(pikepdf.Dictionary(FT=pikepdf.Name.Sig, T=pikepdf.String("bank seal")))),
        edited_pdf(_page_contents(b"% " + EICAR + b"\nBT /F1 18 Tf 72 720 Td (Loan settlement) Tj ET")),
    ],
    ids=["web-link", "open-at-page-one", "signature-field", "eicar-text-without-a-scanner"],
)
def test_a_clean_pdf_is_stored_exactly_as_sent(data):
    # EICAR in a content stream is text on a page: harmless unless a scanner is configured to say so (see below).
    assert check_document("statement.pdf", data).data == data


def _png_with_chunk(kind: bytes, body: bytes) -> bytes:
    base = png((4, 4))
    iend = base.rindex(b"IEND") - 4
    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    return base[:iend] + chunk + base[iend:]


def _jpeg_with_metadata() -> bytes:
    exif = Image.Exif()
    exif[0x010E] = SCRIPT.decode()  # ImageDescription
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, "JPEG", exif=exif.tobytes(), comment=SCRIPT)
    return out.getvalue()


HIDDEN_IN_IMAGES = {
    "data-inside-the-jpeg-scan": (jpeg((8, 8))[:-2] + SCRIPT + b"\xff\xd9", JPEG),
    "data-after-the-jpeg-end": (jpeg((8, 8)) + b"PK\x03\x04" + SCRIPT + b"\xff\xd9", JPEG),
    "jpeg-exif-and-comment": (_jpeg_with_metadata(), JPEG),
    "png-text-chunk": (_png_with_chunk(b"tEXt", b"Comment\x00" + SCRIPT), PNG),
    "png-compressed-text-chunk": (_png_with_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(SCRIPT)), PNG),
    "png-international-text-chunk": (_png_with_chunk(b"iTXt", b"Comment\x00\x00\x00\x00\x00" + SCRIPT), PNG),
}


@pytest.mark.parametrize(("data", "content_type"), list(HIDDEN_IN_IMAGES.values()), ids=list(HIDDEN_IN_IMAGES))
def test_what_hides_in_an_image_is_not_in_what_is_stored(data, content_type):
    assert SCRIPT in data or zlib.compress(SCRIPT) in data

    document = check_document("photo", data)

    assert document.content_type == content_type
    assert SCRIPT not in document.data and b"Comment" not in document.data and b"PK\x03\x04" not in document.data
    with Image.open(io.BytesIO(document.data)) as image:
        assert image.info.get("comment") is None and not image.getexif() and not getattr(image, "text", {})
        image.load()
    if content_type == JPEG:  # the stored file ends at the one end-of-image marker
        assert document.data.endswith(b"\xff\xd9") and document.data.count(b"\xff\xd9") == 1
    else:
        assert document.data.endswith(b"IEND\xaeB`\x82")


def test_a_photo_is_stored_the_right_way_up_without_its_exif():
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display; GPS and the camera would sit beside it
    out = io.BytesIO()
    Image.new("RGB", (40, 20), (10, 200, 10)).save(out, "JPEG", exif=exif.tobytes())

    document = check_document("IMG_0002.jpeg", out.getvalue())

    with Image.open(io.BytesIO(document.data)) as image:
        assert (image.size, dict(image.getexif())) == ((20, 40), {})
    assert document.original_name == "IMG_0002.jpg"


def _png_bomb(width: int, height: int) -> bytes:
    """A grayscale PNG of width x height black pixels: a few kilobytes that decode to width x height bytes."""
    packer = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused_from_its_header_before_it_is_decoded():
    bomb = _png_bomb(8000, 8000)  # 64 megapixels in about 60 KB
    assert len(bomb) < 100_000
    started = time.perf_counter()

    with pytest.raises(DocumentRejected) as excinfo:
        check_document("bomb.png", bomb)

    assert str(excinfo.value) == ("bomb.png is too large an image (64 megapixels; at most 40): send a smaller photo")
    assert time.perf_counter() - started < 0.5  # decoding it would take seconds and 64 MB


@pytest.mark.parametrize(
    ("name", "content_type", "shown"),
    [
        ("statement.html", PDF, "statement.pdf"),
        ("photo.jpeg", JPEG, "photo.jpg"),
        ("scan.PDF", PDF, "scan.pdf"),
        ("CON.pdf", PDF, "_CON.pdf"),
        ("x\x00.pdf", PDF, "x.pdf"),
        ("<script>.pdf", PDF, "script.pdf"),
        ("payslip", PNG, "payslip.png"),
        ("archive.tar.gz", PDF, "archive.tar.pdf"),
        (".pdf", PDF, "pdf.pdf"),
        ("长" * 200 + ".html", PDF, "长" * 116 + ".pdf"),
    ],
)
def test_the_stored_and_served_name_carries_the_detected_type_s_extension(name, content_type, shown):
    assert document_name(name, content_type) == shown
    assert len(shown) <= 120


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("statement.pdf", "attachment; filename=\"statement.pdf\"; filename*=UTF-8''statement.pdf"),
        (
            "收入证明.pdf",
            "attachment; filename=\"document.pdf\"; filename*=UTF-8''%E6%94%B6%E5%85%A5%E8%AF%81%E6%98%8E.pdf",
        ),
        ("Café; 100%.pdf", "attachment; filename=\"Cafe_ 100_.pdf\"; filename*=UTF-8''Caf%C3%A9%3B%20100%25.pdf"),
    ],
)
def test_the_download_names_the_file_for_old_and_new_browsers(name, header):
    assert content_disposition("attachment", name) == header


# --- The scanner: clamd's INSTREAM over a unix socket (a fake clamd here: the real one lies outside the project)


class FakeClamd:
    """Answers INSTREAM like clamd: FOUND for the EICAR test string anywhere in the stream, OK otherwise."""

    def __init__(self, path: str, reply: bytes | None = None) -> None:
        self.path, self.reply = path, reply
        self.scanned: list[bytes] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                self._answer(conn)

    def _read(self, conn: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            part = conn.recv(n - len(data))
            if not part:
                raise ConnectionError("client went away")
            data += part
        return data

    def _answer(self, conn: socket.socket) -> None:
        assert self._read(conn, len(b"zINSTREAM\0")) == b"zINSTREAM\0"
        data = b""
        while size := struct.unpack(">I", self._read(conn, 4))[0]:
            data += self._read(conn, size)
        self.scanned.append(data)
        verdict = b"stream: Eicar-Signature FOUND" if EICAR in data else b"stream: OK"
        conn.sendall((self.reply or verdict) + b"\0")

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def clamd_dir() -> Iterator[str]:
    # A short path: a unix socket's name is at most 107 bytes, and pytest's tmp_path can be longer.
    directory = tempfile.mkdtemp(prefix="clamd-")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def clamd(settings, clamd_dir) -> Iterator[FakeClamd]:
    server = FakeClamd(os.path.join(clamd_dir, "clamd.sock"))
    settings.CLAMD_SOCKET = server.path
    yield server
    server.close()


EICAR_PDF = edited_pdf(_page_contents(b"% " + EICAR + b"\nBT /F1 18 Tf 72 720 Td (Loan settlement) Tj ET"))
VIRUS_FOUND = "{} was refused: the virus scanner found Eicar-Signature in it. Send a clean copy of the document."
CANNOT_SCAN = (
    "We cannot check documents for viruses right now, so nothing was saved. Please try again in a few minutes."
)


def test_with_a_scanner_each_file_is_scanned_as_sent_and_eicar_is_refused(clamd):
    assert check_document("clean.pdf", pdf()).data == pdf()
    with pytest.raises(DocumentRejected) as excinfo:
        check_document("eicar.pdf", EICAR_PDF)

    assert str(excinfo.value) == VIRUS_FOUND.format("eicar.pdf")
    assert clamd.scanned == [pdf(), EICAR_PDF]


def test_a_large_file_reaches_the_scanner_whole(clamd):
    data = b"%PDF-1.4\n" + os.urandom(3_000_000) + b"\n%%EOF\n"  # many INSTREAM chunks; refused later, unparsed
    with pytest.raises(DocumentRejected):
        check_document("big.pdf", data)
    assert clamd.scanned == [data]


@pytest.mark.parametrize("scanner_state", ["no-socket", "error-reply"])
def test_a_configured_scanner_that_cannot_answer_refuses_the_file_and_logs_no_name(
    settings, clamd_dir, caplog, scanner_state
):
    path = os.path.join(clamd_dir, "clamd.sock")
    server = FakeClamd(path, reply=b"INSTREAM size limit exceeded. ERROR") if scanner_state == "error-reply" else None
    settings.CLAMD_SOCKET = path

    with pytest.raises(ScannerUnavailable) as excinfo, caplog.at_level(logging.ERROR, logger="appeals.documents"):
        check_document("张三的收入证明.pdf", pdf())

    assert str(excinfo.value) == CANNOT_SCAN
    [record] = [r for r in caplog.records if r.name == "appeals.documents"]
    assert record.getMessage().startswith("document refused: the virus scanner cannot answer (clamd at ")
    assert "张三" not in record.getMessage()
    if server:
        server.close()


# --- Through the entry points: a 4xx with the reason, and nothing stored (no row, no file, no audit, no message)

ENTRY_CORPUS = {
    "html-between-pdf-markers": ("statement.pdf", *HOSTILE_PDFS["html-between-pdf-markers"]),
    "open-action-javascript": ("statement.pdf", *HOSTILE_PDFS["open-action-javascript"]),
    "embedded-file": ("statement.pdf", *HOSTILE_PDFS["embedded-file"]),
    "acroform": ("statement.pdf", *HOSTILE_PDFS["acroform"]),
    "truncated": ("statement.pdf", *HOSTILE_PDFS["truncated-with-eof-marker"]),
    "bomb": (
        "bomb.png",
        _png_bomb(8000, 8000),
        "{} is too large an image (64 megapixels; at most 40): send a smaller photo",
    ),
}


@pytest.mark.django_db
@pytest.mark.usefixtures("ruleset")
@pytest.mark.parametrize(("name", "data", "message"), list(ENTRY_CORPUS.values()), ids=list(ENTRY_CORPUS))
def test_a_hostile_document_over_the_api_is_refused_and_leaves_nothing(integration, name, data, message):
    case = frozen_multi_head_case()

    response = post_api(token_client(integration), case.line.account_no, [("good.pdf", pdf()), (name, data)])

    assert (response.status_code, response.json()) == (400, {"detail": message.format(name)})
    assert stored() == NOTHING


@pytest.mark.django_db
@pytest.mark.usefixtures("ruleset")
@pytest.mark.parametrize(("name", "data", "message"), list(ENTRY_CORPUS.values()), ids=list(ENTRY_CORPUS))
def test_a_hostile_document_on_the_borrower_page_is_refused_in_both_languages(name, data, message):
    case = frozen_multi_head_case()
    path = urlsplit(links.appeal_link(case.line_id)).path

    responses = {
        lang: Client().post(
            path + query,
            {"reason": "repaid", "statement": STATEMENT, "documents": [SimpleUploadedFile(name, data)]},
        )
        for lang, query in (("en", "?lang=en"), ("zh", ""))
    }

    english, chinese = responses["en"], responses["zh"]
    assert (english.status_code, chinese.status_code) == (400, 400)
    assert f'<p class="error" role="alert" id="error">{message.format(name)}</p>' in page(english)
    # The Chinese page explains it in Chinese (locale/ gets the msgids at merge); here: the same refusal, shown.
    assert re.search(rf'<p class="error" role="alert" id="error">[^<]*{re.escape(name)}[^<]*</p>', page(chinese))
    assert stored() == NOTHING


@pytest.mark.django_db
@pytest.mark.usefixtures("ruleset")
def test_eicar_in_a_pdf_is_refused_by_the_scanner_on_both_entry_points(integration, clamd):
    case = frozen_multi_head_case()

    api = post_api(token_client(integration), case.line.account_no, [("eicar.pdf", EICAR_PDF)])
    borrower = Client().post(
        urlsplit(links.appeal_link(case.line_id)).path + "?lang=en",
        {"reason": "repaid", "statement": STATEMENT, "documents": [SimpleUploadedFile("eicar.pdf", EICAR_PDF)]},
    )

    assert (api.status_code, api.json()) == (400, {"detail": VIRUS_FOUND.format("eicar.pdf")})
    assert borrower.status_code == 400
    assert VIRUS_FOUND.format("eicar.pdf") in page(borrower)
    assert stored() == NOTHING


@pytest.mark.django_db
@pytest.mark.usefixtures("ruleset")
def test_while_the_scanner_is_down_the_api_says_try_later_and_stores_nothing(integration, settings, clamd_dir):
    settings.CLAMD_SOCKET = os.path.join(clamd_dir, "nobody-listens.sock")
    case = frozen_multi_head_case()

    response = post_api(token_client(integration), case.line.account_no, [("clean.pdf", pdf())])

    assert (response.status_code, response.json()) == (503, {"detail": CANNOT_SCAN})
    assert stored() == NOTHING


@pytest.mark.django_db
@pytest.mark.usefixtures("ruleset")
def test_names_and_hidden_data_are_cleaned_before_anything_is_stored(integration):
    case = frozen_multi_head_case()
    hidden = HIDDEN_IN_IMAGES["data-after-the-jpeg-end"][0]
    files = [("x\x00.pdf", pdf()), ("CON.pdf", pdf()), ("<script>.pdf", pdf()), ("statement.html", hidden)]

    response = post_api(token_client(integration), case.line.account_no, files)

    assert response.status_code == 201, response.content
    names = [d["name"] for d in response.json()["documents"]]
    assert names == ["x.pdf", "_CON.pdf", "script.pdf", "statement.jpg"]
    documents = list(AppealDocument.objects.order_by("pk"))
    assert [d.original_name for d in documents] == names
    photo = Path(settings.APPEAL_DOCUMENTS_DIR, documents[3].stored_name).read_bytes()
    assert SCRIPT not in photo and photo.endswith(b"\xff\xd9")
    assert (documents[3].size, documents[3].sha256) == (len(photo), hashlib.sha256(photo).hexdigest())


@pytest.mark.django_db
@pytest.mark.usefixtures("ruleset")
def test_a_pdf_sent_as_html_downloads_as_a_pdf_in_a_sandbox(analyst):
    appeal = submit(frozen_multi_head_case(), [("statement.html", pdf()), ("photo.png", png())])
    legacy = appeal.documents.get(content_type=PDF)
    # A row stored before names were cleaned keeps the name it was sent with: it is cleaned again when served.
    AppealDocument.objects.filter(pk=legacy.pk).update(original_name="statement.html")
    image = appeal.documents.get(content_type=PNG)
    client = logged_in(analyst)

    served = {
        (doc, query): client.get(f"/appeals/documents/{doc.pk}/{query}")
        for doc in (legacy, image)
        for query in ("", "?download=1")
    }

    for (doc, _query), response in served.items():
        assert response.status_code == 200
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
        assert response["Content-Type"] == doc.content_type
        response.getvalue()  # type: ignore[attr-defined]  # a FileResponse: read to the end, the client closes it
    for query in ("", "?download=1"):  # a PDF always downloads: sandboxed, Chrome would not show it anyway
        assert served[(legacy, query)]["Content-Disposition"] == (
            "attachment; filename=\"statement.pdf\"; filename*=UTF-8''statement.pdf"
        )
    assert served[(image, "")]["Content-Disposition"] == "inline; filename=\"photo.png\"; filename*=UTF-8''photo.png"
    assert served[(image, "?download=1")]["Content-Disposition"].startswith("attachment; ")
