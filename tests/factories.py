"""Small factories for tests: real rows in the real database, nothing mocked."""

from __future__ import annotations

import itertools
import socket
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

from django.contrib.auth.models import User
from django.utils import timezone

from accounts.models import (
    Borrower,
    Case,
    CreditInquiry,
    CreditLine,
    Drawdown,
    ExternalIncomeRecord,
    Installment,
    ProfileUpdate,
    Transfer,
)

_seq = itertools.count(1)

# A fixed "now" keeps boundary tests exact: noon in Shanghai.
NOW = datetime(2026, 6, 15, 4, 0, tzinfo=UTC)


def uid(prefix: str) -> str:
    return f"{prefix}-{next(_seq)}"


def make_line(
    *,
    limit: str = "20000.00",
    available: str | None = None,
    outstanding: str = "5000.00",
    status: str = "active",
    income: str = "10000.00",
    employer: str = "杭州云栖科技有限公司",
    name: str = "王小明",
    phone: str = "13812345678",
    national_id: str = "330102199001011234",
    profile_updated_at: datetime | None = None,
) -> CreditLine:
    n = next(_seq)
    borrower = Borrower.objects.create(
        name=name,
        phone=phone,
        national_id=national_id,
        city="杭州",
        occupation="软件工程师",
        employer=employer,
        declared_monthly_income=Decimal(income),
        profile_updated_at=profile_updated_at or NOW - timedelta(days=400),
        created_at=NOW - timedelta(days=500),
    )
    return CreditLine.objects.create(
        account_no=f"JB{n:010d}",
        borrower=borrower,
        limit=Decimal(limit),
        available=Decimal(available if available is not None else limit),
        outstanding=Decimal(outstanding),
        status=status,
        frozen_since=NOW - timedelta(days=1) if status == "frozen" else None,
        opened_at=NOW - timedelta(days=500),
        updated_at=NOW - timedelta(days=1),
    )


def inquiry(line: CreditLine, at: datetime, institution: str) -> CreditInquiry:
    return CreditInquiry.objects.create(line=line, upstream_id=uid("inq"), occurred_at=at, institution=institution)


def drawdown(line: CreditLine, at: datetime, amount: str, term: int = 12) -> Drawdown:
    return Drawdown.objects.create(
        line=line, upstream_id=uid("dd"), occurred_at=at, amount=Decimal(amount), term_months=term
    )


def installment(line: CreditLine, due: date, amount: str = "1000.00", paid_at: datetime | None = None) -> Installment:
    return Installment.objects.create(
        line=line,
        upstream_id=uid("ins"),
        occurred_at=datetime.combine(due, datetime.min.time(), tzinfo=UTC) - timedelta(days=30),
        due_date=due,
        amount=Decimal(amount),
        paid_at=paid_at,
        paid_amount=Decimal(amount) if paid_at else Decimal("0"),
    )


def transfer(line: CreditLine, at: datetime, amount: str, category: str) -> Transfer:
    return Transfer.objects.create(
        line=line,
        upstream_id=uid("tr"),
        occurred_at=at,
        amount=Decimal(amount),
        counterparty=f"{category} counterparty",
        counterparty_category=category,
    )


def income_record(line: CreditLine, at: datetime, income: str, employer: str | None = None) -> ExternalIncomeRecord:
    return ExternalIncomeRecord.objects.create(
        line=line,
        upstream_id=uid("inc"),
        occurred_at=at,
        source="社保",
        employer=employer if employer is not None else line.borrower.employer,
        monthly_income=Decimal(income),
    )


def profile_update(line: CreditLine, at: datetime) -> ProfileUpdate:
    return ProfileUpdate.objects.create(line=line, upstream_id=uid("pu"), occurred_at=at)


def default_ruleset():
    """The active ruleset, recreated from DEFAULT_RULES when a transactional test has flushed the migration's rows."""
    from accounts.models import Rule, RuleSet
    from accounts.rules_default import DEFAULT_RULES

    active = RuleSet.objects.filter(is_active=True).first()
    if active is not None:
        return active
    # Written as a draft, then activated: an active version's rules cannot be added (migration 0025's trigger).
    ruleset = RuleSet.objects.create(version=1, note="DESIGN.md defaults", created_at=NOW)
    for r in DEFAULT_RULES:
        Rule.objects.create(ruleset=ruleset, **r)
    RuleSet.objects.filter(pk=ruleset.pk).update(is_active=True, activated_at=NOW)
    ruleset.refresh_from_db()
    return ruleset


def live_version(changes: dict[str, dict]) -> object:
    """A new active version of the rules: the active one's rules with `changes` (per rule code, the fields to set,
    params merged), as activating a draft makes it; the previous version is kept, inactive."""
    from accounts.models import Rule, RuleSet

    current = default_ruleset()
    at = timezone.now()
    draft = RuleSet.objects.create(
        version=(RuleSet.objects.order_by("-version").values_list("version", flat=True).first() or 0) + 1,
        note="test",
        created_at=at,
        based_on=current,
    )
    for rule in Rule.objects.filter(ruleset=current).order_by("id"):
        fields = dict(changes.get(rule.code, {}))
        params = {**rule.params, **fields.pop("params", {})}
        Rule.objects.create(
            ruleset=draft,
            code=rule.code,
            params=params,
            severity=fields.pop("severity", rule.severity),
            action=fields.pop("action", rule.action),
            enabled=fields.pop("enabled", rule.enabled),
            restore_on_clear=fields.pop("restore_on_clear", rule.restore_on_clear),
        )
    RuleSet.objects.filter(pk=current.pk).update(is_active=False)
    RuleSet.objects.filter(pk=draft.pk).update(is_active=True, activated_at=at)
    draft.refresh_from_db()
    return draft


def make_operator(username: str | None = None, password: str | None = None) -> User:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(username=username or uid("operator"), password=password or uid("pw"))


# The platform's calendar day at NOW (TIME_ZONE, Asia/Shanghai by default): days past due count from it.
TODAY = timezone.localdate(NOW)


# --- Case review: operators with a role, and lines flagged by the real engine.

INSTITUTIONS = ["招商银行", "平安普惠", "微众银行", "京东金融", "度小满"]


def make_role_operator(role: str, username: str | None = None, password: str | None = None) -> User:
    """An operator in one of riskops.roles.ROLES (the groups and their permissions come from the migrations)."""
    from django.contrib.auth.models import Group

    from riskops.core.roles import ensure_roles

    ensure_roles()  # a transactional test's flush empties the groups the migrations made
    user = make_operator(username, password)
    user.groups.add(Group.objects.get(name=role))
    return user


def flag(
    line: CreditLine,
    *codes: str,
    now: datetime | None = None,
    inquiries: int = 5,
    overdue_days: int = 31,
):
    """Give `line` the events that fire each signal family in `codes` and let the engine evaluate it.

    Evaluated at `now` (default: the real clock, as the pages' services use it). MULTI_HEAD cites
    `inquiries` inquiries from 4 institutions; OVERDUE one installment `overdue_days` past due (under
    30 it is a low reminder and opens no case). Returns the line's unresolved case, if any.
    """
    from accounts.engine import evaluate_lines
    from accounts.models import Case

    now = now or timezone.now()
    for code in codes:
        if code == "MULTI_HEAD":
            for i in range(inquiries):
                inquiry(line, now - timedelta(days=1, hours=i), INSTITUTIONS[i % 4])
        elif code == "OVERDUE":
            installment(line, timezone.localdate(now) - timedelta(days=overdue_days))
        elif code == "ABNORMAL_USE":
            d = drawdown(line, now - timedelta(days=5), "10000.00")
            transfer(line, d.occurred_at + timedelta(days=1), "6000.00", "securities")
        elif code == "PROFILE_STALE":
            income_record(line, now - timedelta(days=90), f"{(line.borrower.declared_monthly_income or 0) / 2:.2f}")
        else:
            raise ValueError(f"unknown signal family {code!r}")
    evaluate_lines([line.pk], now=now)
    return Case.objects.filter(line=line).exclude(status="resolved").first()


def frozen_multi_head_case(**line_kwargs: Any) -> Case:
    """A MULTI_HEAD freeze (high severity): its unfreeze, or approving its appeal, always needs four eyes."""
    line_kwargs = {"limit": "20000.00", "available": "15000.00", "outstanding": "5000.00", **line_kwargs}
    return flag(make_line(**line_kwargs), "MULTI_HEAD")


def frozen_medium_only_case(limit: str = "20000.00") -> Case:
    """A line frozen by hand earlier whose only signal is a medium PROFILE_STALE (no high signal): one reviewer
    may unfreeze it."""
    return flag(make_line(limit=limit, available=limit, outstanding="5000.00", status="frozen"), "PROFILE_STALE")


def port_open(url: str) -> bool:
    """Whether a server (Redis, RabbitMQ) answers at the host and port of `url`."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=1):
            return True
    except OSError:
        return False
