"""Demo appeals for `make run`: real documents, real intake and review through the services, in time order.

The story goes on from the demo's accounts (`accounts.demo`): after a line was frozen, its borrower appeals; some
appeals are still within their 72 h, some due soon, some past it; reviewers note and decide a few of them; the SLA
clock then alerts the senior reviewers on duty about the breaches. The services stamp what they write with the
current time, so each step is then moved to its time in the story (`_move`): what one call wrote on its line,
between the moments before and after the call, moves by the same amount.

Deterministic for a given "now": the frozen lines with an open case appeal in id order, with a reason that fits
their signal, each at a time that gives it its SLA state in turn (`SLA_STATES`).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, models
from django.db.models import F, OuterRef, Subquery
from django.utils import timezone

from accounts.demo import db_column
from accounts.models import (
    Case,
    CaseStatus,
    CreditLine,
    Decision,
    LineChange,
    LineStatus,
    Note,
    Notification,
    Signal,
    Suppression,
)
from accounts.services import decision_review, note_add
from appeals import replies, services
from appeals.models import (
    CLOCK_STATES,
    OPEN_STATES,
    Appeal,
    AppealChannel,
    AppealDocument,
    AppealReason,
    AppealRuleOutcome,
    AppealStatus,
)
from appeals.services.common import appeal_priority
from riskops.core.audit import Actor
from riskops.core.audit_chain import audit_maintenance
from riskops.core.roles import ANALYST, SENIOR_REVIEWER, SENIORS
from riskops.models import ActorKind, AuditEvent

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

    # Each row: filter byte 0, then (red = x + shade, green = 2y, blue = 180) per pixel, channels interleaved.
    row = bytearray(3 * width)
    row[0::3] = bytes((x + shade) % 256 for x in range(width))
    row[2::3] = bytes([180]) * width
    parts = []
    for y in range(height):
        row[1::3] = bytes([(y * 2) % 256]) * width
        parts.append(b"\x00" + bytes(row))
    rows = b"".join(parts)
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


NOTES = {
    "OVERDUE": "已核对借款人提交的还款截图与还款记录，金额和日期一致。",
    "MULTI_HEAD": "已核对其他机构的结清证明，近期查询多为比价，未见新增借款。",
    "ABNORMAL_USE": "已核对银行流水，相关转账为信用卡还款。",
    "PROFILE_STALE": "已核对新单位在职证明，借款人已在 App 中更新资料。",
}

# The SLA state each demo appeal is given, in turn (one that no frozen line is old enough for falls back to
# on time): most within their deadline, a few due soon, a few past it.
SLA_STATES = ("on_time", "breached", "on_time", "due_soon", "on_time", "on_time", "breached", "on_time", "due_soon")
# One appeal in three within its deadline is decided (approved and rejected in turn), after a reviewer's note; an
# approval (an unfreeze) is a proposal until a senior reviewer approves it.
DECIDE_EVERY = 3
AFTER_FREEZE = timedelta(minutes=20)  # the earliest an appeal comes after its line was frozen
BEFORE_NOW = timedelta(minutes=15)  # the latest anything happens before the demo's now
MARGIN = timedelta(minutes=30)  # keeps each appeal clear of its SLA state's edges


@dataclass
class _Planned:
    case_id: int
    line_id: int
    family: str
    submitted: datetime
    noted: datetime | None = None
    decided: datetime | None = None
    outcome: str = ""
    approved: datetime | None = None  # a frozen line's unfreeze needs a second reviewer


@dataclass
class _Moved:
    """What one service call wrote on one line (between `start` and `end`), to move by `delta`."""

    line_id: int
    appeal_id: int
    start: datetime
    end: datetime
    delta: timedelta


# Where the services stamp the current time: model, the column that names the line (or the appeal), time columns.
STAMPED: tuple[tuple[type[models.Model], str, tuple[str, ...]], ...] = (
    (Appeal, "line_id", ("submitted_at", "updated_at", "decided_at", "sla_paused_at")),
    (AppealDocument, "appeal_id", ("uploaded_at",)),
    (AppealRuleOutcome, "appeal_id", ("decided_at",)),
    (Case, "line_id", ("updated_at", "resolved_at", "claimed_at", "last_activity_at")),
    (Decision, "line_id", ("proposed_at", "reviewed_at")),
    (Note, "line_id", ("created_at",)),
    (CreditLine, "id", ("updated_at", "frozen_since")),
    (LineChange, "line_id", ("at",)),
    (Signal, "line_id", ("cleared_at",)),
    (Suppression, "line_id", ("created_at",)),
    (Notification, "line_id", ("created_at", "sent_at")),
    (AuditEvent, "account_id", ("at",)),
)


def _window(state: str, opened: datetime, now: datetime) -> tuple[datetime, datetime]:
    """When an appeal on a case opened at `opened` gets `state` at `now` (empty when lo >= hi)."""
    sla, soon = timedelta(hours=settings.APPEAL_SLA_HOURS), timedelta(hours=settings.APPEAL_DUE_SOON_HOURS)
    lo = opened + AFTER_FREEZE
    if state == "breached":
        return lo, now - sla - MARGIN
    if state == "due_soon":
        return max(lo, now - sla + MARGIN), now - sla + soon - MARGIN
    return max(lo, now - sla + soon + MARGIN), now - BEFORE_NOW


def _fits(state: str, opened: datetime, now: datetime) -> bool:
    lo, hi = _window(state, opened, now)
    return lo < hi


def _between(lo: datetime, hi: datetime, i: int) -> datetime:
    """A time in [lo, hi) that differs from one appeal to the next (golden-ratio steps), whole seconds after lo."""
    fraction = (i * 0.6180339887) % 1
    return lo + timedelta(seconds=int((hi - lo).total_seconds() * fraction))


def _plan(count: int, now: datetime) -> list[_Planned]:
    candidates = list(
        Case.objects.filter(line__status=LineStatus.FROZEN, appeal_state="", opened_at__lt=now - AFTER_FREEZE)
        .exclude(status=CaseStatus.RESOLVED)
        .order_by("id")
        .values_list("id", "line_id", "signal_codes", "opened_at")
    )
    # Per SLA state, in id order, the cases frozen long enough ago to get it; each case appeals once.
    fits = {state: iter([c for c in candidates if _fits(state, c[3], now)]) for state in set(SLA_STATES)}
    taken: set[int] = set()
    planned: list[_Planned] = []
    decided = 0
    for i in range(count):
        state = SLA_STATES[i % len(SLA_STATES)]
        found = next((c for c in fits[state] if c[0] not in taken), None)
        if found is None and state != "on_time":
            state = "on_time"
            found = next((c for c in fits[state] if c[0] not in taken), None)
        if found is None:
            break
        case_id, line_id, codes, opened = found
        taken.add(case_id)
        family = next((c for c in codes if c in REASON_BY_FAMILY), "OVERDUE")
        item = _Planned(case_id, line_id, family, _between(*_window(state, opened, now), i))
        if state != "breached" and i % DECIDE_EVERY == DECIDE_EVERY - 1:
            # Settled within its SLA, one to 36 hours after it came: a note, the decision, a second reviewer's
            # approval of an unfreeze.
            took = min(timedelta(hours=1 + (i * 7) % 36), now - BEFORE_NOW - item.submitted)
            if took >= timedelta(hours=1):
                item.noted = item.submitted + took * 3 / 5
                item.decided = item.submitted + took * 3 / 4
                item.outcome = (replies.APPROVE, replies.REJECT)[decided % 2]
                if item.outcome == replies.APPROVE:
                    item.approved = item.submitted + took
                decided += 1
        planned.append(item)
    return planned


def seniors_on_duty(at: datetime) -> bool:
    """Whether a senior reviewer who was already there at `at` would be alerted of a breach."""
    return get_user_model().objects.filter(is_active=True, groups__name__in=SENIORS, date_joined__lte=at).exists()


def seed_demo_appeals(count: int, *, now: datetime) -> int:
    """`count` borrowers of frozen lines with an open case appeal, each after its freeze and before `now`; a few
    appeals are noted and decided; then the SLA clock runs at `now` if a senior reviewer is on duty (otherwise the
    breaches wait for the aging job, which alerts the seniors there are by then)."""
    if count <= 0:
        return 0
    planned = _plan(count, now)
    steps: list[tuple[datetime, int, str, _Planned]] = []
    for n, item in enumerate(planned):
        steps.append((item.submitted, n, "submit", item))
        if item.noted is not None and item.decided is not None:
            steps.append((item.noted, n, "note", item))
            steps.append((item.decided, n, "decide", item))
        if item.approved is not None:
            steps.append((item.approved, n, "approve", item))
    story = _Story()
    moved: list[_Moved] = []
    # Moving the audit events' times is the demo's own maintenance (docs/AUDIT.md): the sealer waits until the
    # moves are done, so the events it then seals (their content hash covers the time) are already in the story.
    with audit_maintenance():
        for at, n, step, item in sorted(steps, key=lambda s: (s[0], s[1])):
            start = timezone.now()
            stamped = getattr(story, step)(at, n, item)
            if stamped is not None:
                moved.append(_Moved(item.line_id, story.appeal_ids[item.line_id], start, timezone.now(), at - stamped))
        _move(moved)
    _deadlines(list(story.appeal_ids.values()), now)
    if seniors_on_duty(now):
        services.appeals_age(now=now)
    return len(planned)


class _Story:
    """The steps of the appeals' story, each through its service; each returns the time the service stamped (None
    when nobody was there to take the step)."""

    def __init__(self) -> None:
        self.borrower = Actor(ActorKind.BORROWER, None, "borrower (signed link)")
        users = get_user_model().objects.filter(is_active=True, groups__name__in=[ANALYST, *SENIORS])
        self.operators = [(user, user.role) for user in users.annotate(role=F("groups__name")).order_by("id")]
        self.appeal_ids: dict[int, int] = {}  # line -> its appeal
        self.proposed: dict[int, tuple[int, int]] = {}  # line -> (the appeal's proposal, its proposer)

    def submit(self, at: datetime, n: int, item: _Planned) -> datetime | None:
        reason, statement = REASON_BY_FAMILY[item.family]
        files = [("receipt.pdf", demo_pdf(f"Demo proof for appeal, case {item.case_id}"))]
        if n % 2 == 0:
            files.append(("photo.png", demo_png(shade=n * 7)))
        appeal = services.appeal_submit(
            line_id=item.line_id,
            reason=reason,
            statement=statement,
            files=files,
            channel=AppealChannel.LINK if n % 3 else AppealChannel.API,
            actor=self.borrower,
        ).appeal
        self.appeal_ids[item.line_id] = appeal.pk
        return appeal.submitted_at

    def reviewers(self, at: datetime, roles: list[str]) -> list[Any]:
        """Operators in these roles who were already there at `at`, by id."""
        return [user for user, role in self.operators if role in roles and user.date_joined <= at]

    def note(self, at: datetime, n: int, item: _Planned) -> datetime | None:
        reviewers = self.reviewers(at, [ANALYST, SENIOR_REVIEWER])
        if not reviewers:
            return None
        reviewer = Actor.operator(reviewers[n % len(reviewers)])
        return note_add(case_id=item.case_id, actor=reviewer, text=NOTES[item.family]).created_at

    def decide(self, at: datetime, n: int, item: _Planned) -> datetime | None:
        reviewers = self.reviewers(at, [ANALYST, SENIOR_REVIEWER])
        if not reviewers:
            return None
        reviewer = reviewers[n % len(reviewers)]
        appeal = services.appeal_decide(
            appeal_id=self.appeal_ids[item.line_id],
            actor=Actor.operator(reviewer),
            outcome=item.outcome,
            reply=replies.reply_template(REASON_BY_FAMILY[item.family][0], item.outcome),
            expected_version=None,
        )
        if appeal.status == AppealStatus.AWAITING_APPROVAL and appeal.decision_id is not None:
            self.proposed[item.line_id] = (appeal.decision_id, reviewer.pk)
        return appeal.updated_at

    def approve(self, at: datetime, n: int, item: _Planned) -> datetime | None:
        if item.line_id not in self.proposed:
            return None
        decision_id, proposer = self.proposed[item.line_id]
        seniors = [u for u in self.reviewers(at, SENIORS) if u.pk != proposer]
        if not seniors:
            return None
        return decision_review(decision_id=decision_id, actor=Actor.operator(seniors[0]), approve=True).reviewed_at


def _move(moved: list[_Moved]) -> None:
    """Move what each service call wrote to its time in the story: one UPDATE per time column.

    The calls ran one after another, so a stamp falls in at most one call's window. In SQL: through the ORM (a CASE
    branch per call and column) Django took 1.4 s to compile the UPDATEs for 30 appeals; these take 0.1 s for 60.
    """
    if not moved:
        return
    qn = connection.ops.quote_name
    windows: dict[str, list[Any]] = {
        "lo": [m.start for m in moved],
        "hi": [m.end for m in moved],
        "delta": [m.delta for m in moved],
        "line_id": [m.line_id for m in moved],
        "appeal_id": [m.appeal_id for m in moved],
    }
    with connection.cursor() as cur:
        for model, key, columns in STAMPED:
            table = qn(model._meta.db_table)
            by = qn(db_column(model, key.removesuffix("_id")))
            for name in columns:
                column = qn(db_column(model, name))
                cur.execute(
                    f"UPDATE {table} t SET {column} = t.{column} + m.delta "  # noqa: S608 - names from the models, values bound
                    "FROM unnest(%(keys)s::bigint[], %(lo)s::timestamptz[], %(hi)s::timestamptz[], %(delta)s::interval[])"
                    " AS m(key, lo, hi, delta) "
                    f"WHERE t.{by} = m.key AND t.{column} BETWEEN m.lo AND m.hi",
                    {"keys": windows["appeal_id" if key == "appeal_id" else "line_id"], **windows},
                )


def _deadlines(appeal_ids: list[int], now: datetime) -> None:
    """The appeals' deadlines count from their time in the story, and so do their priorities at `now`."""
    appeals = Appeal.objects.filter(pk__in=appeal_ids)
    appeals.update(sla_due_at=F("submitted_at") + timedelta(hours=settings.APPEAL_SLA_HOURS))
    Case.objects.filter(appeals__in=appeals.filter(status__in=OPEN_STATES)).exclude(appeal_due_at=None).update(
        appeal_due_at=Subquery(
            Appeal.objects.filter(case=OuterRef("pk"), status__in=OPEN_STATES).values("sla_due_at")[:1]
        )
    )
    ticking = list(appeals.filter(status__in=CLOCK_STATES).only("pk", "sla_due_at", "priority"))
    for appeal in ticking:
        appeal.priority = appeal_priority(appeal.sla_due_at, now)
    Appeal.objects.bulk_update(ticking, ["priority"])
