"""Who reads the audit trail: auditors and admins (and superusers)."""

from __future__ import annotations

from typing import Any

from riskops.core.auth import user_roles
from riskops.core.roles import ADMIN, AUDITOR

AUDIT_READERS = frozenset({AUDITOR, ADMIN})


def reads_audit(user: Any) -> bool:
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return bool(user.is_superuser or user_roles(user) & AUDIT_READERS)
