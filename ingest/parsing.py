"""What an ingested item may hold, kind by kind, and the checks every item passes before anything is stored.

One definition serves the API, `import_events` and the upload page (CSV cells arrive as text, JSON values as
JSON: both go through the same parsers). A parser returns the value or raises `Invalid` with the message the
caller sees; `parse_item` returns the item's values or its errors, one per field. docs/IMPORT.md documents the
same fields (a test checks that the two agree).
"""

from __future__ import annotations

import functools
import time
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy, gettext_noop

from accounts.models import CounterpartyCategory
from accounts.validation import ACCOUNT_REF, normal_phone, valid_national_id

MAX_AMOUNT = Decimal("999999999999.99")  # NUMERIC(14, 2)
CENT = Decimal("0.01")
# An event may not be dated later than this ahead of the server's clock (upstream clocks drift a little).
FUTURE_SLACK = timedelta(minutes=5)


class Invalid(ValueError):
    """A value that cannot be stored: the message's template (English, marked for translation) and its values."""

    def __init__(self, template: str, **params: Any) -> None:
        super().__init__(template % params if params else template)
        self.template, self.params = template, params


@dataclass(frozen=True)
class RowError:
    index: int  # the item's position in the batch (0-based), or its line in a file (1-based, the header is 1)
    field: str  # the field at fault, or "" for the item as a whole
    template: str  # the message, in English (the API's), marked for translation (the console's pages)
    params: dict[str, Any] = dataclass_field(default_factory=dict)

    @property
    def message(self) -> str:
        return self.template % self.params if self.params else self.template

    def as_dict(self) -> dict[str, object]:
        """As the API answers it."""
        return {"index": self.index, "field": self.field, "message": self.message}

    def as_record(self) -> dict[str, object]:
        """As a batch keeps it: with the template and values, so a page shows it in the reader's language."""
        return {**self.as_dict(), "template": self.template, "params": self.params}


def translated(error: dict[str, Any]) -> str:
    """A kept error's message in the active language."""
    template = error.get("template")
    if not template:
        return str(error["message"])
    return gettext(template) % error["params"] if error.get("params") else gettext(template)


Parser = Callable[[Any], Any]


def text(max_length: int) -> Parser:
    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid(gettext_noop("must be text"))
        value = value.strip()
        if not value:
            raise Invalid(gettext_noop("must not be empty"))
        if len(value) > max_length:
            raise Invalid(gettext_noop("must be at most %(n)s characters"), n=max_length)
        return value

    return parse


def reference(value: Any) -> str:
    if not isinstance(value, str) or not ACCOUNT_REF.fullmatch(value.strip()):
        raise Invalid(gettext_noop("must be 1 to 64 letters, digits or . _ : / - (starting with a letter or digit)"))
    return value.strip()


def _amount(value: Any, *, positive: bool) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise Invalid(gettext_noop("must be an amount in yuan, e.g. 1200.50"))
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise Invalid(gettext_noop("must be an amount in yuan, e.g. 1200.50")) from None
    if not amount.is_finite() or amount != amount.quantize(CENT, rounding="ROUND_DOWN"):
        raise Invalid(gettext_noop("must be an amount in yuan with at most 2 decimals, e.g. 1200.50"))
    if amount < 0 or (positive and amount == 0):
        raise Invalid(gettext_noop("must be more than 0") if positive else gettext_noop("must not be negative"))
    if amount > MAX_AMOUNT:
        raise Invalid(gettext_noop("must be at most 999999999999.99"))
    return amount.quantize(CENT)


def amount(value: Any) -> Decimal:
    return _amount(value, positive=True)


def amount_or_zero(value: Any) -> Decimal:
    return _amount(value, positive=False)


def months(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 360:
        raise Invalid(gettext_noop("must be a whole number of months from 1 to 360"))
    return value


def moment(value: Any) -> datetime:
    """ISO 8601; without an offset, the console's time zone (TIME_ZONE)."""
    message = gettext_noop("must be a date and time in ISO 8601, e.g. 2026-11-30T14:05:00+08:00")
    if not isinstance(value, str):
        raise Invalid(message)
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Invalid(message) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=ZoneInfo(settings.TIME_ZONE))
    # Past the cached bound: checked again with the clock now (the bound may be a second old).
    if at > _latest() and at > timezone.now() + FUTURE_SLACK:
        raise Invalid(gettext_noop("is in the future"))
    return at


_bound: list[Any] = [-10.0, None]


def _latest() -> datetime:
    """The latest time an event may have, from a clock read once a second (timezone.now() per item cost a tenth
    of parsing). A bound up to a second old is only ever earlier: it never lets a future time through."""
    now = time.monotonic()
    if now - _bound[0] > 1:
        _bound[0], _bound[1] = now, timezone.now() + FUTURE_SLACK
    bound: datetime = _bound[1]
    return bound


def day(value: Any) -> date:
    if not isinstance(value, str):
        raise Invalid(gettext_noop("must be a date in ISO 8601, e.g. 2026-12-15"))
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise Invalid(gettext_noop("must be a date in ISO 8601, e.g. 2026-12-15")) from None


def choice(values: list[str]) -> Parser:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or value.strip() not in values:
            raise Invalid(gettext_noop("must be one of: %(values)s"), values=", ".join(values))
        return value.strip()

    return parse


def time_zone(value: Any) -> str:
    """An IANA time zone name (Asia/Shanghai): the borrower's, for the quiet hours of their messages."""
    if not isinstance(value, str) or value.strip() not in _ZONES:
        raise Invalid(gettext_noop("must be a time zone name such as Asia/Shanghai"))
    return value.strip()


_ZONES = zoneinfo.available_timezones()


def phone(value: Any) -> str:
    number = normal_phone(value) if isinstance(value, str) else None
    if number is None:
        raise Invalid(
            gettext_noop("must be a mainland China mobile number: 11 digits starting with 1, e.g. 13812345678")
        )
    return number


def national_id(value: Any) -> str:
    if not isinstance(value, str) or not valid_national_id(value.strip()):
        raise Invalid(
            gettext_noop("must be an 18-character resident id number with a valid birth date and check digit")
        )
    return value.strip().upper()


@dataclass(frozen=True)
class Kind:
    """An item kind: its fields (name -> parser, required or not). Every kind but `account` is an event, kept by
    its upstream id."""

    name: str
    required: Mapping[str, Parser]
    optional: Mapping[str, Parser]

    @functools.cached_property
    def parsers(self) -> dict[str, Parser]:
        return {**self.required, **self.optional}

    @property
    def is_event(self) -> bool:
        return "upstream_id" in self.required

    @property
    def fields(self) -> list[str]:
        return ["kind", *self.required, *self.optional]


def _event(name: str, required: dict[str, Parser], optional: dict[str, Parser] | None = None) -> Kind:
    return Kind(
        name, {"upstream_id": text(64), "account": reference, "occurred_at": moment, **required}, optional or {}
    )


PERSONAL = {
    "name": text(50),
    "phone": phone,
    "national_id": national_id,
    "city": text(30),
    "occupation": text(40),
    "employer": text(80),
    "monthly_income": amount_or_zero,
    "time_zone": time_zone,
}

KINDS: dict[str, Kind] = {
    k.name: k
    for k in [
        Kind("account", {"account": reference, "occurred_at": moment}, {"limit": amount_or_zero, **PERSONAL}),
        _event("profile_update", {}, {"employer": text(80), "monthly_income": amount_or_zero}),
        _event("credit_inquiry", {"institution": text(80)}),
        _event("drawdown", {"amount": amount, "term_months": months}),
        _event(
            "installment", {"due_date": day, "amount": amount}, {"drawdown": text(64), "payment_reference": text(64)}
        ),
        _event(
            "transfer",
            {
                "amount": amount,
                "counterparty": text(80),
                "counterparty_category": choice([c.value for c in CounterpartyCategory]),
            },
        ),
        _event("income_record", {"source": text(40), "employer": text(80), "monthly_income": amount_or_zero}),
        _event("repayment", {"installment": text(64), "amount": amount}),
        _event("limit_change", {"limit": amount_or_zero}, {"reason": text(200)}),
    ]
}

# Each kind as a reader names it (the import page's choice); the name itself is what files and the API use.
KIND_LABELS = {
    "account": gettext_lazy("accounts"),
    "profile_update": gettext_lazy("profile updates"),
    "credit_inquiry": gettext_lazy("credit inquiries"),
    "drawdown": gettext_lazy("drawdowns"),
    "installment": gettext_lazy("installments"),
    "transfer": gettext_lazy("transfers"),
    "income_record": gettext_lazy("income records"),
    "repayment": gettext_lazy("repayments"),
    "limit_change": gettext_lazy("limit changes"),
}
# The order a batch is stored in: what an item refers to is stored before it (accounts, drawdowns, installments).
ORDER = list(KINDS)
REQUIRED = gettext_noop("this field is required")


@dataclass
class Item:
    index: int
    kind: Kind
    values: dict[str, Any]


def _kind(index: int, raw: Any) -> tuple[Kind | None, RowError | None]:
    if not isinstance(raw, dict):
        return None, RowError(index, "", gettext_noop("must be an object with a kind and its fields"))
    if "_invalid_json" in raw:  # a line of a JSON-lines file (`ingest.files`)
        return None, RowError(index, "", gettext_noop("is not valid JSON: %(error)s"), {"error": raw["_invalid_json"]})
    if "_extra" in raw:  # a CSV row with more cells than the header
        return None, RowError(index, "", gettext_noop("has more cells than the header has columns"))
    kind = KINDS.get(raw["kind"]) if isinstance(raw.get("kind"), str) else None
    if kind is None:
        if not raw.get("kind"):
            return None, RowError(index, "kind", REQUIRED)
        return None, RowError(
            index, "kind", gettext_noop("unknown kind; one of: %(kinds)s"), {"kinds": ", ".join(KINDS)}
        )
    return kind, None


def parse_item(index: int, raw: Any) -> tuple[Item | None, list[RowError]]:
    """The item's values by field, or the errors that keep it out (every field at fault, not only the first).
    Absent, null and empty values are the same: not given."""
    kind, refused = _kind(index, raw)
    if kind is None:
        return None, [refused] if refused else []
    values: dict[str, Any] = {}
    errors: list[RowError] = []
    for name, value in raw.items():  # type: ignore[union-attr]  # a dict: _kind said so
        if name == "kind":
            continue
        parse = kind.parsers.get(name)
        if parse is None:
            errors.append(RowError(index, name, gettext_noop("unknown field for kind %(kind)s"), {"kind": kind.name}))
        elif value is not None and value != "":
            try:
                values[name] = parse(value)
            except Invalid as exc:
                errors.append(RowError(index, name, exc.template, exc.params))
    for name in kind.required:
        if name not in values and not any(e.field == name for e in errors):
            errors.append(RowError(index, name, REQUIRED))
    if kind.name == "profile_update" and not errors and not {"employer", "monthly_income"} & values.keys():
        errors.append(RowError(index, "", gettext_noop("a profile update needs an employer, a monthly income or both")))
    return (None, errors) if errors else (Item(index, kind, values), [])
