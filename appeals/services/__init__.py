"""Every state change of appeals, one function each:

- taking appeals and the borrower's answers (`appeal_submit`, `appeal_add_documents`, the one "may appeal" rule):
  `appeals.services.intake`
- deciding them, and following a second reviewer's verdict (`appeal_decide`, `appeal_follow_review`):
  `appeals.services.review`
- the SLA clock (`appeals_age`, `appeal_alerts_read`): `appeals.services.aging`
"""

from appeals.services.aging import appeal_alerts_read, appeals_age
from appeals.services.intake import (
    MAX_DOCUMENTS_PER_APPEAL,
    STATEMENT_MAX,
    Eligibility,
    SubmitOutcome,
    appeal_add_documents,
    appeal_eligibility,
    appeal_submit,
    documents_root,
)
from appeals.services.review import REASON_CODES, REPLY_MAX, appeal_decide, appeal_follow_review

__all__ = [
    "MAX_DOCUMENTS_PER_APPEAL",
    "REASON_CODES",
    "REPLY_MAX",
    "STATEMENT_MAX",
    "Eligibility",
    "SubmitOutcome",
    "appeal_add_documents",
    "appeal_alerts_read",
    "appeal_decide",
    "appeal_eligibility",
    "appeal_follow_review",
    "appeal_submit",
    "appeals_age",
    "documents_root",
]
