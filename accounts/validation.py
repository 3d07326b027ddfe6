"""Checks of a borrower's personal fields where the upstream sends them (empty means the upstream does not have it).

Used by ingestion (`ingest.parsing`) and by the outbox (a message goes only to a valid mobile number).
"""

from __future__ import annotations

import re
from datetime import date

# An account reference as upstreams write them (the demo's are JB + 10 digits): what ingestion and the queue's
# search accept.
ACCOUNT_REF = re.compile(r"[0-9A-Za-z][0-9A-Za-z._:/-]{0,63}")
# A mainland China mobile number: 11 digits, 1 then 3-9 (what the SMS gateway accepts).
MOBILE = re.compile(r"1[3-9]\d{9}")
MOBILE_SQL = f"^{MOBILE.pattern}$"  # the same, for PostgreSQL's ~ (its regular expressions know \d too)
_ID = re.compile(r"\d{17}[\dX]")
# GB 11643-1999: the weights of the first 17 digits, and the check character by the weighted sum modulo 11.
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def national_id_check(first17: str) -> str:
    """GB 11643 checksum (ISO 7064 MOD 11-2) of the first 17 digits."""
    return _CHECK[sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def normal_phone(raw: str) -> str | None:
    """The number as stored (11 digits), from the forms upstreams send (+86, spaces, dashes); None if not one."""
    digits = raw.replace(" ", "").replace("-", "")
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    return digits if MOBILE.fullmatch(digits) else None


def valid_national_id(value: str) -> bool:
    """An 18-character resident identity number with a real birth date and the right check character."""
    value = value.upper()
    if not _ID.fullmatch(value):
        return False
    try:
        date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    return national_id_check(value[:17]) == value[17]
