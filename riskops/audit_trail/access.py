"""Who reads the audit trail: the holders of VIEW_AUDIT in GRANTS (auditors and admins), and superusers."""

from __future__ import annotations

from typing import Any

from riskops.core.roles import VIEW_AUDIT


def reads_audit(user: Any) -> bool:
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return bool(user.has_perm(VIEW_AUDIT))
