"""Demo appeals for `make run`: real documents, real intake through the service, deadlines spread over the SLA.

Deterministic: the first frozen lines with an open case (by id) appeal, with a reason that fits their signal.
"""

from __future__ import annotations

import struct
import zlib
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Case, CaseStatus, LineStatus
from appeals import services
from appeals.models import Appeal, AppealChannel, AppealReason
from riskops.core.audit import Actor
from riskops.models import ActorKind

REASON_BY_FAMILY = {
    "OVERDUE": (AppealReason.REPAID, "逾期的那笔已经在 App 里还清了，附还款截图，麻烦尽快恢复额度。"),
    "MULTI_HEAD": (AppealReason.LOANS_CLOSED, "之前只是比价查了几家，其他平台的借款都已结清，附结清证明。"),
    "ABNORMAL_USE": (AppealReason.TRANSFER_EXPLAINED, "那笔转账是还信用卡，不是投资，附银行流水。"),
    "PROFILE_STALE": (AppealReason.PROFILE_UPDATED, "换了工作，已在 App 里更新单位和收入，附新单位在职证明。"),
}


def demo_png(width: int = 240, height: int = 160, shade: int = 0) -> bytes:
    """A small photo-like PNG (a gradient), valid chunk by chunk."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(
        b"\x00" + b"".join(bytes(((x + shade) % 256, (y * 2) % 256, 180)) for x in range(width)) for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def demo_pdf(title: str) -> bytes:
    """A one-page PDF with a line of text, with a correct cross-reference table."""
    text = title.encode("latin-1", "replace")
    content = b"BT /F1 18 Tf 60 760 Td (" + text + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def seed_demo_appeals(count: int) -> int:
    """Submit `count` appeals for frozen lines with an open case; spread their deadlines; age them once."""
    if count <= 0:
        return 0
    cases = list(
        Case.objects.filter(line__status=LineStatus.FROZEN, appeal_state="")
        .exclude(status=CaseStatus.RESOLVED)
        .order_by("id")
        .values_list("id", "line_id", "signal_codes")[:count]
    )
    borrower = Actor(ActorKind.BORROWER, None, "borrower (demo)")
    made = 0
    for i, (case_id, line_id, codes) in enumerate(cases):
        family = next((c for c in codes if c in REASON_BY_FAMILY), "OVERDUE")
        reason, statement = REASON_BY_FAMILY[family]
        files = [("receipt.pdf", demo_pdf(f"Demo proof for appeal, case {case_id}"))]
        if i % 2 == 0:
            files.append(("photo.png", demo_png(shade=i * 7)))
        result = services.appeal_submit(
            line_id=line_id,
            reason=reason,
            statement=statement,
            files=files,
            channel=AppealChannel.LINK if i % 3 else AppealChannel.API,
            actor=borrower,
        )
        # Demo only: spread the submissions over the last three days, so some are due soon and a few breached.
        hours_ago = (i * 7) % (settings.APPEAL_SLA_HOURS + 6)
        submitted = timezone.now() - timedelta(hours=hours_ago)
        with transaction.atomic():
            Appeal.objects.filter(pk=result.appeal.pk).update(
                submitted_at=submitted, sla_due_at=submitted + timedelta(hours=settings.APPEAL_SLA_HOURS)
            )
            Case.objects.filter(pk=case_id).update(appeal_due_at=submitted + timedelta(hours=settings.APPEAL_SLA_HOURS))
        made += 1
    services.appeals_age()
    return made
