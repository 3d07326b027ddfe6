"""The case page's section about the borrower's side (`accounts.hooks.case_panels`): what the borrower saw and did,
and the documents of their profile updates."""

from __future__ import annotations

from typing import Any

from accounts.hooks import CasePanel
from accounts.selectors.borrower import borrower_side
from portal.models import ProfileDocument


def case_panels(detail: Any) -> list[CasePanel]:
    """Three queries: the borrower's audited views and updates, the messages, the profile documents."""
    documents = list(ProfileDocument.objects.filter(line=detail.line).order_by("-uploaded_at")[:10])
    return [
        CasePanel(
            "history",
            "portal/_case_borrower_side.html",
            {"items": borrower_side(detail.line.pk), "documents": documents},
        )
    ]
