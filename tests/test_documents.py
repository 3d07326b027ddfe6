"""Appeal documents: the type comes from the bytes, and every hostile file is refused before anything is stored."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from appeals.documents import (
    JPEG,
    MAX_BYTES,
    PDF,
    PNG,
    CheckedDocument,
    DocumentRejected,
    check_document,
    check_documents,
    safe_name,
    store,
)
from tests.helpers import jpeg, pdf, png


@pytest.mark.parametrize(
    ("name", "data", "content_type"),
    [
        ("收入证明.pdf", pdf(), PDF),
        ("photo.png", png(), PNG),
        ("IMG_0001.JPG", jpeg(), JPEG),
        ("no-extension", png(), PNG),
    ],
)
def test_a_pdf_png_or_jpeg_is_accepted_by_its_content_whatever_its_name(name, data, content_type):
    document = check_document(name, data)
    assert (document.content_type, document.size, document.original_name) == (content_type, len(data), name)


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
