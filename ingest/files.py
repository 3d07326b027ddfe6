"""Reading an import file: CSV (a header row naming the fields, see docs/IMPORT.md) or JSON lines, in chunks.

Each row becomes an item as the events API takes it, numbered by its line in the file (the header is line 1), so
the error report points at the line to fix. Empty CSV cells are absent fields.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from ingest.parsing import KINDS

CHUNK = 5_000


class FileError(ValueError):
    """The file as a whole cannot be read (its format, its header); nothing is imported."""


def kind_of_file(name: str) -> str:
    """The kind a file's name gives (`drawdown.csv`, `3-drawdown.csv`), or ""."""
    stem = re.sub(r"^\d+[-_]", "", Path(name).stem)
    return stem if stem in KINDS else ""


def file_format(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise FileError(f"{name}: unknown format {suffix or '(no extension)'!r}; use .csv or .jsonl")


def chunks(stream: IO[bytes], fmt: str, *, kind: str = "", size: int = CHUNK) -> Iterator[tuple[int, list[Any]]]:
    """(line number of the chunk's first row, its items), chunk after chunk."""
    for first, numbered in _numbered_chunks(stream, fmt, kind, size):
        yield first, [item for _number, item in numbered]


def _csv_rows(text: IO[str], kind: str) -> Iterator[tuple[int, Any]]:
    reader = csv.reader(text)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise FileError("the file is empty (a CSV file starts with a header row)") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise FileError(f"line 1: {exc}") from None
    known = {f for k in KINDS.values() for f in k.fields}
    unknown = [h for h in header if h not in known]
    if unknown:
        raise FileError(f"line 1: unknown column(s) {', '.join(unknown)} (docs/IMPORT.md lists each kind's columns)")
    if "kind" not in header and kind not in KINDS:
        raise FileError(
            "the header has no kind column; add one, name the file after its kind (drawdown.csv), or give the kind"
            " of every row (--kind), one of: " + ", ".join(KINDS)
        )
    try:
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            item: dict[str, Any] = {} if "kind" in header else {"kind": kind}
            for name, value in zip(header, values, strict=False):
                if value.strip():
                    item[name] = value
            if len(values) > len(header):
                item["_extra"] = values[len(header) :]
            yield reader.line_num, item
    except (csv.Error, UnicodeDecodeError) as exc:
        raise FileError(f"line {reader.line_num}: {exc}") from None


def _json_rows(text: IO[str]) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line, parse_float=Decimal)
        except ValueError as exc:
            yield number, {"_invalid_json": str(exc)}


def chunk_bounds(path: Path, *, kind: str = "", size: int = CHUNK) -> list[tuple[int, int, int]]:
    """(first line, last line, rows) of each chunk of a file: reads it once, checking its format and header
    (FileError)."""
    fmt = file_format(path.name)
    bounds = []
    with path.open("rb") as stream:
        for first, items in _numbered_chunks(stream, fmt, kind or kind_of_file(path.name), size):
            bounds.append((first, items[-1][0], len(items)))
    return bounds


def read_chunk(path: Path, first: int, *, kind: str = "", size: int = CHUNK) -> list[Any]:
    """The items of the chunk that starts at line `first` (as `chunk_bounds` cut it)."""
    with path.open("rb") as stream:
        for start, items in _numbered_chunks(stream, file_format(path.name), kind or kind_of_file(path.name), size):
            if start == first:
                return [item for _number, item in items]
    raise FileError(f"{path.name}: no chunk starts at line {first}")


def _numbered_chunks(stream: IO[bytes], fmt: str, kind: str, size: int) -> Iterator[tuple[int, list[tuple[int, Any]]]]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    rows = _csv_rows(text, kind) if fmt == "csv" else _json_rows(text)
    chunk: list[tuple[int, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk[0][0], chunk
            chunk = []
    if chunk:
        yield chunk[0][0], chunk
