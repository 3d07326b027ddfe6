"""clamd's INSTREAM command over its unix socket: the virus scanner hook for appeal documents.

The protocol is small enough to write out (no well-kept client library exists: python-clamd and pyclamd have not
had a release for years): send `zINSTREAM\0`, then the file in chunks each prefixed by its length (4 bytes, big
endian), then a zero length; clamd answers `stream: OK`, `stream: <signature> FOUND`, or `... ERROR` (a file
over its StreamMaxLength, say), ended by a NUL.
"""

from __future__ import annotations

import socket
import struct

CHUNK = 256 * 1024
# Long enough for clamd to scan 10 MB on a busy host; short enough that a hung scanner does not hold a worker.
TIMEOUT_SECONDS = 30.0
_REPLY_MAX = 4096


class ScannerError(Exception):
    """clamd could not be reached or did not give a verdict; the message names the socket and the cause."""


def clamd_instream(socket_path: str, data: bytes, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """The name of what clamd found in `data`, or None when it is clean; ScannerError when there is no verdict."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(socket_path)
            conn.sendall(b"zINSTREAM\0")
            with memoryview(data) as view:
                for start in range(0, len(data), CHUNK):
                    chunk = view[start : start + CHUNK]
                    conn.sendall(struct.pack(">I", len(chunk)))
                    conn.sendall(chunk)
            conn.sendall(struct.pack(">I", 0))
            reply = _read_reply(conn)
    except OSError as exc:
        raise ScannerError(f"clamd at {socket_path}: {exc.__class__.__name__}: {exc.strerror or exc}") from exc
    if reply == "stream: OK":
        return None
    if reply.startswith("stream: ") and reply.endswith(" FOUND"):
        return reply.removeprefix("stream: ").removesuffix(" FOUND").strip() or "a virus"
    raise ScannerError(f"clamd at {socket_path} answered {reply[:200]!r}")


def _read_reply(conn: socket.socket) -> str:
    reply = b""
    while b"\0" not in reply and len(reply) < _REPLY_MAX:
        part = conn.recv(_REPLY_MAX)
        if not part:
            break
        reply += part
    return reply.split(b"\0", 1)[0].decode("utf-8", "replace").strip()
