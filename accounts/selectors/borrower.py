"""What the borrower is told about their own line: its state, each reason as facts about their own data (never a
rule's threshold), what they can do about it, and what they have seen and done since (for the case page).

PIPL art. 24: a person affected by an automated decision may ask for an explanation. The page behind every
message's signed link (`portal`) shows `borrower_status`; the case page shows `borrower_side`, so an operator sees
what the borrower saw.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from accounts.models import (
    RULE_SHORT_LABELS,
    CounterpartyCategory,
    CreditInquiry,
    CreditLine,
    Drawdown,
    ExternalIncomeRecord,
    Guidance,
    HeldReason,
    Installment,
    LineChange,
    LineChangeKind,
    LineStatus,
    Notification,
    NotificationKind,
    RuleAction,
    RuleCode,
    Signal,
    SignalStatus,
)
from riskops.core.formats import money
from riskops.models import AuditEvent

# The audit actions of the borrower's side, as the case page lists them.
STATUS_VIEW = "borrower.status_view"
PROFILE_UPDATE = "borrower.profile_update"


@dataclass
class Reason:
    code: str
    family: str  # the family's name ("overdue repayment")
    facts: str  # what the borrower's own data shows, in the reader's language
    action: str  # freeze, cut or remind
    holds: bool  # False: it held when the line was frozen or cut, and no longer does
    since: datetime
    guidance: str = ""
    overdue_amount: Decimal | None = None


@dataclass
class BorrowerStatus:
    line: CreditLine
    state: str  # "frozen", "cut", "active" or "closed"
    decided_at: datetime | None  # when the line was frozen or cut
    reasons: list[Reason] = field(default_factory=list)

    @property
    def holding(self) -> list[Reason]:
        return [r for r in self.reasons if r.holds]

    @property
    def lifted(self) -> list[Reason]:
        return [r for r in self.reasons if not r.holds]

    @property
    def waiting_for_review(self) -> bool:
        """Frozen (or cut), and none of the reasons that did it holds any more: a person (or a job) lifts it."""
        action = {"frozen": RuleAction.FREEZE, "cut": RuleAction.CUT}.get(self.state)
        deciding = [r for r in self.reasons if r.action == action]
        return bool(deciding) and not any(r.holds for r in deciding)


def _day(value: datetime | date) -> str:
    d = timezone.localdate(value) if isinstance(value, datetime) else value
    return date_format(d, "DATE_FORMAT")


def guidance_current(codes: Iterable[str] | None = None) -> dict[str, Guidance]:
    """The newest version of each reason's guidance (one query)."""
    qs = Guidance.objects.order_by("code", "-version").distinct("code")
    if codes is not None:
        qs = qs.filter(code__in=list(codes))
    return {g.code: g for g in qs}


def borrower_status(line: CreditLine) -> BorrowerStatus:
    """The line's state and its reasons: the active signals, and those that froze or cut it and have cleared since.
    A fixed number of queries whatever the history (signals, the last change of the amounts, each kind of evidence
    once, what is overdue now, the guidance)."""
    cut_at = None
    state = {LineStatus.FROZEN.value: "frozen", LineStatus.CLOSED.value: "closed"}.get(line.status, "active")
    signals = list(Signal.objects.filter(line=line).exclude(status=SignalStatus.OVERTURNED).order_by("fired_at", "id"))
    active = [s for s in signals if s.status == SignalStatus.ACTIVE]
    if state == "active":
        # Cut: the line's last change of its amounts was a cut, and it has not been given back since (a cut whose
        # signal cleared without a restore is still a cut: the borrower is told it no longer holds).
        last = (
            LineChange.objects.filter(
                line=line,
                kind__in=[
                    LineChangeKind.CUT_AVAILABLE,
                    LineChangeKind.RESTORE_AVAILABLE,
                    LineChangeKind.UNFREEZE,
                    LineChangeKind.LIMIT_CHANGE,
                ],
            )
            .order_by("-at", "-id")
            .values_list("kind", "at")
            .first()
        )
        if (
            last is not None
            and last[0] == LineChangeKind.CUT_AVAILABLE
            and line.available < line.limit - line.outstanding
        ):
            state, cut_at = "cut", last[1]
    decided_at = line.frozen_since if state == "frozen" else cut_at
    shown = list(active)
    if decided_at is not None:
        # What froze or cut the line and no longer holds (cleared by new data, not overturned by a person).
        shown += [
            s
            for s in signals
            if s.status == SignalStatus.CLEARED
            and s.action in (RuleAction.FREEZE, RuleAction.CUT)
            and s.cleared_at is not None
            and s.cleared_at >= decided_at
        ]
    status = BorrowerStatus(line, state, decided_at)
    if not shown:
        return status
    facts = _Facts(shown)
    guidance = guidance_current({s.code for s in shown})
    language = get_language() or "zh-hans"
    for s in sorted(shown, key=lambda s: (s.status != SignalStatus.ACTIVE, s.fired_at, s.pk)):
        text, overdue = facts.of(s, line)
        g = guidance.get(s.code)
        status.reasons.append(
            Reason(
                code=s.code,
                family=str(RULE_SHORT_LABELS.get(RuleCode(s.code), s.code)),
                facts=text,
                action=s.action,
                holds=s.status == SignalStatus.ACTIVE,
                since=s.fired_at,
                guidance=g.text(language) if g else "",
                overdue_amount=overdue,
            )
        )
    return status


class _Facts:
    """The events the signals cite, read once per kind, and each signal in the borrower's own terms."""

    def __init__(self, signals: list[Signal]) -> None:
        wanted: dict[str, set[int]] = {}
        for s in signals:
            for kind, ids in (s.evidence.get("events") or {}).items():
                wanted.setdefault(kind, set()).update(int(i) for i in ids)
        models: dict[str, Any] = {
            "inquiry": CreditInquiry,
            "installment": Installment,
            "drawdown": Drawdown,
            "income_record": ExternalIncomeRecord,
        }
        self._overdue: list[Installment] | None = None
        self.rows: dict[str, dict[int, Any]] = {
            kind: {row.pk: row for row in models[kind].objects.filter(pk__in=ids)}
            for kind, ids in wanted.items()
            if kind in models and ids
        }

    def overdue_now(self, line: CreditLine) -> list[Installment]:
        """The line's installments past their due date and not paid in full, oldest first (one query, once)."""
        if self._overdue is None:
            self._overdue = list(
                Installment.objects.filter(line=line, paid_at__isnull=True, due_date__lt=timezone.localdate()).order_by(
                    "due_date", "id"
                )
            )
        return self._overdue

    def _cited(self, s: Signal, kind: str) -> list[Any]:
        rows = self.rows.get(kind, {})
        return [rows[int(i)] for i in (s.evidence.get("events") or {}).get(kind, []) if int(i) in rows]

    def of(self, s: Signal, line: CreditLine) -> tuple[str, Decimal | None]:
        """The signal in the borrower's own terms, and for an overdue the amount owed."""
        explain = {
            RuleCode.MULTI_HEAD.value: self._multi_head,
            RuleCode.OVERDUE.value: self._overdue_facts,
            RuleCode.ABNORMAL_USE.value: self._abnormal_use,
            RuleCode.PROFILE_STALE.value: self._profile_stale,
        }.get(s.code)
        return explain(s, line) if explain else (s.code, None)

    def _multi_head(self, s: Signal, line: CreditLine) -> tuple[str, Decimal | None]:
        inquiries = self._cited(s, "inquiry")
        if not inquiries:
            return _("Several applications to other lenders in a short time"), None
        first = min(i.occurred_at for i in inquiries)
        return _("%(n)s applications to %(k)s other lenders since %(day)s") % {
            "n": len(inquiries),
            "k": len({i.institution for i in inquiries}),
            "day": _day(first),
        }, None

    def _overdue_facts(self, s: Signal, line: CreditLine) -> tuple[str, Decimal | None]:
        if all(i.paid_at is not None for i in self._cited(s, "installment")):
            return _("The overdue installments have been repaid"), None
        # What is overdue now, all of it: the signal cites only the installments past its rule's threshold, and
        # the borrower is told what they owe, not where the threshold lies.
        unpaid = self.overdue_now(line)
        owed = sum((i.amount - i.paid_amount for i in unpaid), Decimal("0"))
        if not unpaid:
            return _("The overdue installments have been repaid"), None
        if len(unpaid) == 1:
            text = _("The installment due %(day)s is unpaid: %(amount)s outstanding") % {
                "day": _day(unpaid[0].due_date),
                "amount": money(owed),
            }
        else:
            text = _("%(n)s installments are unpaid, the first due %(day)s: %(amount)s outstanding") % {
                "n": len(unpaid),
                "day": _day(unpaid[0].due_date),
                "amount": money(owed),
            }
        references = sorted({i.payment_reference for i in unpaid if i.payment_reference})
        if references:
            text += _("; payment reference %(ref)s") % {"ref": ", ".join(references)}
        return text, owed

    def _abnormal_use(self, s: Signal, line: CreditLine) -> tuple[str, Decimal | None]:
        values = s.evidence.get("values") or {}
        drawn = {d.pk: d for d in self._cited(s, "drawdown")}
        parts = []
        for d in values.get("drawdowns") or []:
            row = drawn.get(int(d["drawdown_id"]))
            labels = [
                str(CounterpartyCategory(c).label) for c in d.get("categories", []) if c in CounterpartyCategory.values
            ]
            parts.append(
                _("of the %(amount)s you drew on %(day)s, %(risky)s went to %(where)s soon after")
                % {
                    "amount": money(d["amount"]),
                    "day": _day(row.occurred_at) if row else "—",
                    "risky": money(d["risky_transfers"]),
                    "where": _(", ").join(labels) or "—",
                }
            )
        text = _("; ").join(parts) or _("Borrowed money went to investment or gambling accounts")
        return text[:1].upper() + text[1:], None

    def _profile_stale(self, s: Signal, line: CreditLine) -> tuple[str, Decimal | None]:
        values = s.evidence.get("values") or {}
        records = sorted(self._cited(s, "income_record"), key=lambda r: (r.occurred_at, r.pk))
        record = records[-1] if records else None
        updated = _day(line.borrower.profile_updated_at)
        if record is None:
            return _("Your work or income may have changed; your profile was last updated on %(updated)s") % {
                "updated": updated
            }, None
        if values.get("employer_changed"):
            return _("A record from %(day)s shows a new employer; your profile was last updated on %(updated)s") % {
                "day": _day(record.occurred_at),
                "updated": updated,
            }, None
        return _(
            "A record from %(day)s shows a monthly income of %(income)s, while your profile says %(declared)s;"
            " your profile was last updated on %(updated)s"
        ) % {
            "day": _day(record.occurred_at),
            "income": money(record.monthly_income),
            "declared": money(values.get("declared_income")),
            "updated": updated,
        }, None


@dataclass
class BorrowerSideItem:
    at: datetime
    what: str  # in the operator's language
    detail: str = ""


def borrower_side(line_id: int, *, limit: int = 20) -> list[BorrowerSideItem]:
    """For the case page: what the borrower saw and did, newest first: the status page viewed, the profile updated,
    the messages sent (two queries, at most `limit` of each)."""
    items = []
    events = (
        AuditEvent.objects.filter(account_id=line_id, action__in=[STATUS_VIEW, PROFILE_UPDATE])
        .order_by("-at")
        .values("at", "action", "after")[:limit]
    )
    for e in events:
        after = e["after"] or {}
        if e["action"] == STATUS_VIEW and after.get("preview"):
            items.append(BorrowerSideItem(e["at"], _("The link was fetched by a link preview, not read")))
        elif e["action"] == STATUS_VIEW:
            codes = ", ".join(
                str(RULE_SHORT_LABELS.get(RuleCode(c), c)) for c in after.get("reasons", []) if c in RuleCode.values
            )
            items.append(BorrowerSideItem(e["at"], _("Read the explanation"), codes))
        else:
            detail = _("%(n)s document(s)") % {"n": after.get("documents", 0)}
            items.append(BorrowerSideItem(e["at"], _("Updated the profile"), detail))
    sent = (
        Notification.objects.filter(line_id=line_id)
        .order_by("-created_at")
        .values("created_at", "sent_at", "kind", "last_error", "held_until", "held_reason")[:limit]
    )
    for n in sent:
        label = str(NotificationKind(n["kind"]).label) if n["kind"] in NotificationKind.values else n["kind"]
        if n["sent_at"] and not n["last_error"]:
            state = _("sent")
        elif n["sent_at"]:
            state = n["last_error"]
        elif n["held_until"]:
            state = _("held back (%(why)s) until %(at)s") % {
                "why": HeldReason(n["held_reason"]).label
                if n["held_reason"] in HeldReason.values
                else n["held_reason"],
                "at": date_format(timezone.localtime(n["held_until"]), "Y-m-d H:i"),
            }
        else:
            state = n["last_error"] or _("waiting to be sent")
        items.append(BorrowerSideItem(n["sent_at"] or n["created_at"], _("Message: %(kind)s") % {"kind": label}, state))
    items.sort(key=lambda i: i.at, reverse=True)
    return items[:limit]
