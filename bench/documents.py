"""What disarming an appeal document costs (appeals.documents.check_document), per document, on this machine:

- a 1 MB phone photo (JPEG, 12 megapixels is 3 to 5 MB; a 1 MB JPEG is about 4 megapixels): decoded and encoded anew;
- a 10-page PDF statement (text and a scanned image per page): parsed strictly by qpdf, every object walked;
- the same PDF and photo through a fake clamd on a unix socket (the transfer, not clamd's own scan).

    python -m bench.documents [--runs 30]

No database: the check runs before the intake opens its transaction. Figures: median and p95 in milliseconds.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import socket
import statistics
import struct
import tempfile
import threading
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "riskops.settings")
import django

django.setup()

import pikepdf  # noqa: E402
from django.conf import settings  # noqa: E402
from PIL import Image, ImageFilter  # noqa: E402

from appeals.documents import check_document  # noqa: E402


def photo(target: int = 1024 * 1024) -> bytes:
    """A photo-like JPEG (smooth shapes and sensor noise) of about `target` bytes."""
    rng = random.Random(7)
    width, height = 2400, 1800
    base = Image.radial_gradient("L").resize((width, height)).convert("RGB")
    noise = Image.effect_noise((width, height), 40).convert("RGB")
    image = Image.blend(base, noise, 0.35).filter(ImageFilter.GaussianBlur(0.6))
    quality, data = 95, b""
    while quality > 20:
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality)
        data = out.getvalue()
        if len(data) <= target:
            break
        quality -= rng.choice((3, 4, 5))
    return data


def statement(pages: int = 10) -> bytes:
    """A PDF of `pages` pages, each with a few dozen lines of text and a scanned (JPEG) letterhead."""
    document = pikepdf.new()
    scan = io.BytesIO()
    Image.effect_noise((800, 200), 30).convert("RGB").save(scan, "JPEG", quality=70)
    for _ in range(pages):
        document.add_blank_page(page_size=(595, 842))
        page = document.pages[-1]
        image = pikepdf.Stream(document, scan.getvalue())
        image.Type, image.Subtype, image.Filter = pikepdf.Name.XObject, pikepdf.Name.Image, pikepdf.Name.DCTDecode
        image.Width, image.Height, image.BitsPerComponent = 800, 200, 8
        image.ColorSpace = pikepdf.Name.DeviceRGB
        font = pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica)
        page.obj.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font), XObject=pikepdf.Dictionary(Im1=image))
        lines = b"".join(
            b"BT /F1 9 Tf 40 %d Td (2026-05-%02d  Repayment  CNY 1,234.56  balance 9,876.54) Tj ET\n"
            % (640 - 14 * i, i % 28 + 1)
            for i in range(40)
        )
        page.obj.Contents = document.make_stream(b"q 515 0 0 130 40 680 cm /Im1 Do Q\n" + lines)
    out = io.BytesIO()
    document.save(out, compress_streams=True)
    return out.getvalue()


def fake_clamd(path: str) -> socket.socket:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)

    def read(conn: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            part = conn.recv(n - len(data))
            if not part:
                raise ConnectionError
            data += part
        return data

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                read(conn, 10)
                while size := struct.unpack(">I", read(conn, 4))[0]:
                    read(conn, size)
                conn.sendall(b"stream: OK\0")

    threading.Thread(target=serve, daemon=True).start()
    return server


def timed(name: str, data: bytes, runs: int) -> tuple[float, float]:
    check_document(name, data)  # warm
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        check_document(name, data)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, round(0.95 * len(samples)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    jpeg, pdf = photo(), statement()
    with Image.open(io.BytesIO(jpeg)) as image:
        print(f"photo: {len(jpeg):,} bytes, {image.width}x{image.height}; statement: {len(pdf):,} bytes, 10 pages")
    print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    stored = check_document("photo.jpg", jpeg)
    print(f"photo stored as {stored.size:,} bytes (encoded anew); statement stored as sent")
    for label, name, data in (("1 MB JPEG", "photo.jpg", jpeg), ("10-page PDF", "statement.pdf", pdf)):
        p50, p95 = timed(name, data, args.runs)
        print(f"{label}: disarm p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    with tempfile.TemporaryDirectory(prefix="clamd-") as directory:
        server = fake_clamd(os.path.join(directory, "clamd.sock"))
        settings.CLAMD_SOCKET = server.getsockname()
        for label, name, data in (("1 MB JPEG", "photo.jpg", jpeg), ("10-page PDF", "statement.pdf", pdf)):
            p50, p95 = timed(name, data, args.runs)
            print(f"{label} with the scanner hook (fake clamd): p50 {p50:.1f} ms, p95 {p95:.1f} ms")
        server.close()


if __name__ == "__main__":
    main()
