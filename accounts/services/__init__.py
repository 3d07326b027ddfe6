"""Every state change of lines, signals and cases, one function each, named `<entity>_<verb>`.

Pages, the API, the admin, Celery tasks, commands and the other apps call these, never `.save()` on what they
change. Each locks its rows, checks the current state, writes its audit events in the same transaction and queues
side effects (borrowers' messages) for after commit. Where to look:

- a line's status or limits (freeze, cut, unfreeze, limit change, reminders): `accounts.services.lines`
- signals (fire, clear, overturn and suppress): `accounts.services.signals`
- cases (open, raise, claim, assign, release, notes, locking): `accounts.services.cases`
- decisions and four-eyes approvals, an operator's re-evaluation: `accounts.services.decisions`
- revealing personal data: `accounts.services.borrowers`
"""

from accounts.services.borrowers import REVEALABLE, borrower_reveal, borrower_revealed, reveal_token
from accounts.services.cases import (
    case_claim,
    case_claim_next,
    case_lock,
    cases_assign,
    cases_open_or_raise,
    cases_release_idle_claims,
    note_add,
)
from accounts.services.decisions import (
    SETTLING_KINDS,
    DecisionOutcome,
    case_decide,
    case_reevaluate,
    decision_review,
    needs_second_reviewer,
)
from accounts.services.lines import (
    account_freeze,
    lines_change_limit,
    lines_cut_available,
    lines_freeze,
    lines_remind,
    lines_remind_due,
    lines_restore_available,
    lines_unfreeze,
)
from accounts.services.signals import NewSignal, evidence_event_keys, signal_overturn, signals_clear, signals_fire

__all__ = [
    "REVEALABLE",
    "SETTLING_KINDS",
    "DecisionOutcome",
    "NewSignal",
    "account_freeze",
    "borrower_reveal",
    "borrower_revealed",
    "case_claim",
    "case_claim_next",
    "case_decide",
    "case_lock",
    "case_reevaluate",
    "cases_assign",
    "cases_open_or_raise",
    "cases_release_idle_claims",
    "decision_review",
    "evidence_event_keys",
    "lines_change_limit",
    "lines_cut_available",
    "lines_freeze",
    "lines_remind",
    "lines_remind_due",
    "lines_restore_available",
    "lines_unfreeze",
    "needs_second_reviewer",
    "note_add",
    "reveal_token",
    "signal_overturn",
    "signals_clear",
    "signals_fire",
]
