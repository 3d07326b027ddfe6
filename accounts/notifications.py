"""Borrower notifications: an outbox table, sent after commit by a pluggable sender.

Like Django's email backends, the sender is a dotted path in NOTIFICATION_SENDER:
`ConsoleSender` (logs, masked), `FileSender` (appends JSON lines to NOTIFICATION_FILE_PATH), or
a gateway of your own with the same `send(notification, phone)` method.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.masking import mask_phone
from accounts.models import Borrower, CreditLine, HeldReason, Notification, NotificationKind
from accounts.validation import MOBILE_SQL
from riskops.core.sql import to_json

logger = logging.getLogger(__name__)

# Borrowers read these in Chinese; no personal data goes into the body.
TEMPLATES = {
    NotificationKind.FREEZE: "【借呗】您的额度已暂时冻结，原因：{reason}。如有异议，可在 App 内或通过此链接提交申诉：{link} ，我们将在 72 小时内处理。",
    NotificationKind.LIMIT_CUT: "【借呗】您的可用额度已调整为 ¥{available}，原因：{reason}。查看原因、更新个人信息：{link}",
    NotificationKind.LIMIT_RESTORED: "【借呗】经人工复核，您的可用额度已恢复为 ¥{available}。感谢您的配合，请合理用款、按时还款。详情：{link}",
    NotificationKind.LIMIT_RESTORED_AUTO: "【借呗】下调额度的原因已不再成立，您的可用额度已恢复为 ¥{available}。请合理用款、按时还款。详情：{link}",
    NotificationKind.PROFILE_UPDATE_REQUEST: "【借呗】您的工作或收入信息可能已变化，请通过此链接更新个人资料，以免影响额度：{link}",
    NotificationKind.OVERDUE_REMINDER: "【借呗】您有一笔 ¥{amount} 的还款已逾期 {days} 天，请尽快还款，按时还款有助于维护您的信用记录。详情：{link}",
    NotificationKind.UNFREEZE: "【借呗】经人工复核，您的额度已恢复使用，当前额度 ¥{limit}。感谢您的配合，请合理用款、按时还款。详情：{link}",
    NotificationKind.LIMIT_CHANGE: "【借呗】经人工复核，您的额度已调整为 ¥{limit}。如有疑问，可在 App 内联系客服或提交申诉。详情：{link}",
    NotificationKind.APPEAL_RECEIVED: "【借呗】我们已收到您的申诉（编号 {appeal}），将在 {hours} 小时内处理并告知结果。查看进度：{link}",
    NotificationKind.APPEAL_MORE_INFO: "【借呗】关于您的申诉（编号 {appeal}）：{question} 请通过此链接补充材料：{link}",
    NotificationKind.APPEAL_APPROVED: "【借呗】您的申诉（编号 {appeal}）已通过。{reply} 详情：{link}",
    NotificationKind.APPEAL_REJECTED: "【借呗】您的申诉（编号 {appeal}）未获通过。{reply} 详情：{link}",
    NotificationKind.DUE_REMINDER: "【借呗】您有一笔 ¥{amount} 的还款将于 {due} 到期，请按时还款，避免逾期影响信用。详情：{link}",
    NotificationKind.OVERDUE_ADVICE: "【借呗】温馨提示：{advice} 详情：{link}",
    NotificationKind.CREDIT_EDUCATION: "【借呗】温馨提示：同时向多家机构借款、逾期还款或将借款用于投资、博彩，都会影响您的信用。理性借贷，按时还款。详情：{link}",
}

REASON_ZH = {
    "MULTI_HEAD": "近期多头借贷",
    "OVERDUE": "还款逾期",
    "ABNORMAL_USE": "借款资金用途异常",
    "PROFILE_STALE": "个人信息变更未及时更新",
}


@dataclass(frozen=True)
class Outgoing:
    line_id: int
    kind: str
    dedupe_key: str
    params: dict[str, object]


def money_text(value: Decimal) -> str:
    """An amount as the messages write it, after the ¥ of the template: 12,345.00."""
    return f"{value:,.2f}"


OUTBOX_JSON_SOURCE = (
    "SELECT * FROM json_to_recordset(%(messages)s::json) AS m(line_id bigint, kind text, dedupe_key text, body text)"
)


def outbox_insert(source: str = OUTBOX_JSON_SOURCE, where: str = "") -> str:
    """SQL adding messages to the outbox: `source` returns rows of (line_id, kind, dedupe_key, body), by default the
    messages of `outbox_json` (the named parameter `messages`); a message whose dedupe key is already there is
    skipped. The time is the parameter `at`; `where` may add a condition on the messages (`m`). Every writer of the
    outbox uses it.

    A borrower without a valid mobile number (an upstream that did not have it) gets no message: the row is kept,
    as done, on channel `none`, with the reason in `last_error`, so the case shows what was not sent and why."""
    # The phone is checked by a lookup per message (a scalar subquery), not a join: PostgreSQL guesses 100 rows
    # for the messages and joined them to every line by a sequential scan (3.5 ms for one appeal on 20,000 lines,
    # PostgreSQL's CPU per appeal 2.6 -> 5.8 ms in bench/appeals.py).
    return f"""
        INSERT INTO {Notification._meta.db_table} (line_id, kind, channel, dedupe_key, body, created_at, sent_at,
            attempts, last_error)
        SELECT m.line_id, m.kind, CASE WHEN m.ok THEN '{_CHANNEL}' ELSE '{NO_CHANNEL}' END, m.dedupe_key, m.body,
            %(at)s, CASE WHEN m.ok THEN NULL ELSE %(at)s END, 0, CASE WHEN m.ok THEN '' ELSE '{NO_PHONE}' END
        FROM (
            SELECT s.*, (SELECT b.phone ~ '{MOBILE_SQL}' FROM {CreditLine._meta.db_table} l
                         JOIN {Borrower._meta.db_table} b ON b.id = l.borrower_id WHERE l.id = s.line_id) AS ok
            FROM ({source}) AS s(line_id, kind, dedupe_key, body)
            OFFSET 0  -- looked up once per message, not once per use below
        ) AS m
        {where}
        ON CONFLICT DO NOTHING
    """  # noqa: S608 - table names from the models, values bound


NO_CHANNEL = "none"
NO_PHONE = "not sent: the borrower has no valid mobile number"


_CHANNEL = Notification._meta.get_field("channel").default
_TABLE = Notification._meta.db_table
assert _CHANNEL.isalnum()  # written into the SQL above


def outbox_json(items: list[Outgoing]) -> str:
    """The messages as outbox rows (JSON), each body its template filled in; no personal data goes in."""
    return to_json(
        [
            {
                "line_id": i.line_id,
                "kind": i.kind,
                "dedupe_key": i.dedupe_key,
                "body": TEMPLATES[NotificationKind(i.kind)].format(**i.params),
            }
            for i in items
        ]
    )


def notifications_queue(items: list[Outgoing], *, at: datetime) -> int:
    """Add notifications to the outbox (one INSERT); duplicates by dedupe_key are ignored. Returns how many were
    added (a duplicate is not).

    Sending is scheduled after the surrounding transaction commits.
    """
    if not items:
        return 0
    with connection.cursor() as cur:
        cur.execute(outbox_insert(), {"at": at, "messages": outbox_json(items)})
        added = cur.rowcount
    notifications_send_after_commit()
    return added


def notifications_send_after_commit() -> None:
    """Schedule sending for when the surrounding transaction commits (at once outside a transaction).

    Several changes in one transaction each ask; `_schedule_send` publishes at most one task per
    NOTIFICATION_SEND_DELAY_SECONDS per process, and a task sends everything committed before it runs.
    """
    transaction.on_commit(_schedule_send)


SEND_TASK = "accounts.tasks.notifications_send_pending"

# When this process's pending send task will run (monotonic clock); see _schedule_send.
_send_due_at = 0.0


def _schedule_send() -> None:
    """Queue the task that drains the outbox, at most once per NOTIFICATION_SEND_DELAY_SECONDS per process.

    A busy server commits notifications many times a second (every appeal queues its confirmation). Each commit
    would otherwise publish a task; instead the first one publishes a task that runs the delay later, and the
    commits until then skip publishing: they committed before that task runs, so it sends their rows too. With a
    delay of 0, and when tasks run eagerly (tests), every change that queued messages publishes. A lost task (or a worker whose clock
    runs ahead of the web server's, so that it runs the task early) costs at most the wait for the periodic sweep.
    """
    global _send_due_at
    # By name from Celery's registry: the task module calls this one, not the other way.
    notifications_send_pending = current_app.tasks[SEND_TASK]
    delay = settings.NOTIFICATION_SEND_DELAY_SECONDS
    eager = notifications_send_pending.app.conf.task_always_eager
    now = time.monotonic()
    if delay and not eager and now < _send_due_at:
        return
    try:
        if delay and not eager:
            notifications_send_pending.apply_async(countdown=delay)
            _send_due_at = now + delay
        else:
            notifications_send_pending.delay()
    except Exception:  # noqa: BLE001 - the periodic sweep sends it later; nothing is lost
        logger.warning("could not schedule notification sending; the periodic sweep will send them")


BUDGET_WINDOW = timedelta(hours=24)
# What the budget limits: the messages the engine, jobs and reviewers send of their own accord. Replies and good
# news (an appeal's outcome, an unfreeze, a restored amount) are never held for the budget, only for quiet hours,
# and the receipt of an appeal the borrower just sent goes out at once.
BUDGETED = {
    NotificationKind.FREEZE,
    NotificationKind.LIMIT_CUT,
    NotificationKind.LIMIT_CHANGE,
    NotificationKind.PROFILE_UPDATE_REQUEST,
    NotificationKind.OVERDUE_REMINDER,
    NotificationKind.DUE_REMINDER,
    NotificationKind.OVERDUE_ADVICE,
    NotificationKind.CREDIT_EDUCATION,
}
ANY_HOUR = {NotificationKind.APPEAL_RECEIVED}
# pg_try_advisory_xact_lock keys of the sender: one worker at a time sends a line's messages, so that two workers
# never both spend the borrower's last message of the day.
_SENDER_LOCKS = 7003 << 40


def quiet_until(at: datetime, zone: str) -> datetime | None:
    """When the quiet hours that `at` falls in end for a borrower in `zone` (None: not in quiet hours)."""
    try:
        tz = ZoneInfo(zone or settings.TIME_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo(settings.TIME_ZONE)
    local = at.astimezone(tz)
    if settings.NOTIFICATION_QUIET_HOURS is None:
        return None
    start, end = settings.NOTIFICATION_QUIET_HOURS
    minute = local.hour * 60 + local.minute
    inside = (start <= minute or minute < end) if start > end else (start <= minute < end)
    if not inside:
        return None
    day = local.date() + timedelta(days=1) if (start > end and minute >= start) else local.date()
    return datetime.combine(day, clock(end // 60, end % 60), tzinfo=tz).astimezone(UTC)


def _lines_to_send(
    first: dict[int, Notification], now: datetime
) -> tuple[set[int], dict[int, list[datetime]], dict[int, datetime]]:
    """One query for the lines whose messages this worker sends: those whose sender lock it takes and that have no
    older message due that another worker holds; for each, its budgeted texts of the last 24 hours and, when an
    older message of the borrower is held, until when (their later messages wait for it)."""
    lines = sorted(first)
    with connection.cursor() as cur:
        cur.execute(
            f"""
            SELECT f.line_id,
                (SELECT array_agg(n.sent_at) FROM {_TABLE} n WHERE n.line_id = f.line_id AND n.sent_at > %(since)s
                    AND n.channel = %(channel)s AND n.kind = ANY(%(budgeted)s)),
                (SELECT max(n.held_until) FROM {_TABLE} n WHERE n.line_id = f.line_id AND n.sent_at IS NULL
                    AND n.attempts < 10 AND (n.created_at, n.id) < (f.created_at, f.id) AND n.held_until > %(now)s),
                EXISTS (SELECT 1 FROM {_TABLE} n WHERE n.line_id = f.line_id AND n.sent_at IS NULL AND n.attempts < 10
                    AND (n.created_at, n.id) < (f.created_at, f.id) AND (n.held_until IS NULL OR n.held_until <= %(now)s))
            FROM unnest(%(lines)s::bigint[], %(ats)s::timestamptz[], %(ids)s::bigint[]) AS f(line_id, created_at, id)
            WHERE pg_try_advisory_xact_lock(%(locks)s + f.line_id)
            """,  # noqa: S608 - the table name from the model, values bound
            {
                "lines": lines,
                "ats": [first[i].created_at for i in lines],
                "ids": [first[i].pk for i in lines],
                "since": now - BUDGET_WINDOW,
                "now": now,
                "channel": _CHANNEL,
                "budgeted": sorted(BUDGETED),
                "locks": _SENDER_LOCKS,
            },
        )
        rows = cur.fetchall()
    mine = {line_id for line_id, _spent, _held, older_due in rows if not older_due}
    spent = defaultdict(list, {line_id: list(at or []) for line_id, at, _held, _older in rows})
    behind = {line_id: held for line_id, _spent, held, _older in rows if held is not None}
    return mine, spent, behind


def _held(n: Notification, now: datetime, spent: list[datetime], behind: dict[int, datetime]) -> bool:
    """Whether the budget holds this message back now (and until when: `held_until`, `held_reason`)."""
    if n.line_id in behind and n.kind not in ANY_HOUR:  # an older message waits: this one goes out after it
        n.held_until, n.held_reason = behind[n.line_id], HeldReason.BEHIND
        return True
    quiet = None if n.kind in ANY_HOUR else quiet_until(now, n.line.borrower.time_zone)
    if quiet is not None:
        n.held_until, n.held_reason = quiet, HeldReason.QUIET_HOURS
    elif n.kind in BUDGETED and len(spent) >= settings.NOTIFICATION_DAILY_MAX:
        n.held_until = sorted(spent)[-settings.NOTIFICATION_DAILY_MAX] + BUDGET_WINDOW
        n.held_reason = HeldReason.DAILY_MAX
    else:
        return False
    behind[n.line_id] = n.held_until  # the borrower's later messages keep their order
    return True


def notifications_send_pending(*, limit: int = 500) -> int:
    """Send up to `limit` unsent notifications; safe to run on many workers at once.

    Each borrower's budget holds: at most NOTIFICATION_DAILY_MAX texts in any 24 hours and none in the quiet hours
    of their time zone. A message over the budget is held (`held_until`, `held_reason`) and goes out once it fits,
    in the order it was written; nothing is dropped."""
    sender = import_string(settings.NOTIFICATION_SENDER)()
    sent = 0
    now = timezone.now()
    with transaction.atomic():
        pending = list(
            # Lock only the outbox rows: the joined line and borrower stay free for the engine.
            Notification.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(sent_at__isnull=True, attempts__lt=10)
            .filter(Q(held_until__isnull=True) | Q(held_until__lte=now))
            .select_related("line__borrower")
            .order_by("created_at", "id")[:limit]
        )
        if not pending:
            return 0
        first: dict[int, Notification] = {}
        for n in pending:
            first.setdefault(n.line_id, n)
        mine, spent, behind = _lines_to_send(first, now)
        changed = []
        for n in pending:
            if n.line_id not in mine:
                continue  # another worker is sending this borrower's messages, or holds an older one of them
            changed.append(n)
            borrower = n.line.borrower
            if _held(n, now, spent[n.line_id], behind):
                continue
            budgeted = n.kind in BUDGETED
            n.attempts += 1
            try:
                sender.send(n, borrower.phone)
            except Exception as exc:  # noqa: BLE001 - a gateway error must not lose the others
                n.last_error = str(exc)[:500]
                logger.warning("notification %s to %s failed: %s", n.pk, mask_phone(borrower.phone), exc)
            else:
                n.sent_at = timezone.now()
                if budgeted:
                    spent[n.line_id].append(n.sent_at)
                sent += 1
        if changed:
            # One UPDATE from arrays: bulk_update builds a CASE per row and field, which for 500 rows took PostgreSQL
            # longer to plan than the sends took.
            with connection.cursor() as cur:
                cur.execute(
                    """
                    UPDATE accounts_notification n
                    SET attempts = v.attempts, sent_at = v.sent_at, last_error = v.last_error,
                        held_until = v.held_until, held_reason = v.held_reason
                    FROM unnest(%s::bigint[], %s::smallint[], %s::timestamptz[], %s::text[], %s::timestamptz[],
                                %s::text[])
                         AS v(id, attempts, sent_at, last_error, held_until, held_reason)
                    WHERE n.id = v.id
                    """,
                    [
                        [n.pk for n in changed],
                        [n.attempts for n in changed],
                        [n.sent_at for n in changed],
                        [n.last_error for n in changed],
                        [n.held_until for n in changed],
                        [n.held_reason for n in changed],
                    ],
                )
    return sent


# A message's signed link opens the borrower's page (their data, their appeal) for APPEAL_LINK_DAYS: a bearer token
# that logs and files must not keep.
_SIGNED_LINK = re.compile(r"(/a/(?:more/)?)[^/\s]+/")


def without_links(body: str) -> str:
    """The message with each signed link's token cut out, for logs."""
    return _SIGNED_LINK.sub(r"\1…/", body)


class ConsoleSender:
    """Logs each message with the phone number masked and the link's token cut out."""

    def send(self, notification: Notification, phone: str) -> None:
        logger.info("SMS to %s [%s]: %s", mask_phone(phone), notification.kind, without_links(notification.body))


class FileSender:
    """Appends one JSON line per message to NOTIFICATION_FILE_PATH (phone masked): the development stand-in for the
    borrower's phone, so the message is kept as delivered, link and all (`make run`: open a borrower's page from it).
    Never a production sender: the file holds working links."""

    def send(self, notification: Notification, phone: str) -> None:
        path = Path(settings.NOTIFICATION_FILE_PATH)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "id": notification.pk,
            "to": mask_phone(phone),
            "kind": notification.kind,
            "body": notification.body,
            "at": timezone.now().isoformat(),
        }
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
