"""Where the apps above accounts plug into it, so that accounts never imports them (apps depend one way).

Each hook is filled by the app that provides it, in its `AppConfig.ready()`; accounts calls whatever is there:
- `proposal_reviewed` (appeals): `decision_review` calls it in its transaction, with the reviewed decision; the
  case's open appeal follows the second reviewer's verdict.
- `case_panels` (appeals): extra sections of the case page (the open appeal, the account's appeals), each a slot,
  a template name and its context.
- `borrower_link` (appeals): the signed link a freeze message carries, where the borrower can appeal.
- `queue_actions` (riskops.jobs): bulk actions of the queue that other apps carry out ("re-evaluate now", a job).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Hook(Generic[T]):
    """A list of callables that another app adds to (once each)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.callbacks: list[T] = []

    def register(self, callback: T) -> T:
        if callback not in self.callbacks:
            self.callbacks.append(callback)
        return callback


@dataclass(frozen=True)
class ProposalReviewed:
    decision: Any  # accounts.models.Decision, approved or rejected, saved
    limit_before: Decimal  # the line's limit before an approved unfreeze applied
    actor: Any  # riskops.core.audit.Actor, the second reviewer
    at: datetime


@dataclass(frozen=True)
class CasePanel:
    """A section another app adds to the case page: `slot` is "top" (under the header) or "history"."""

    slot: str
    template: str
    context: dict[str, Any]


proposal_reviewed: Hook[Callable[[ProposalReviewed], None]] = Hook("proposal_reviewed")
case_panels: Hook[Callable[[Any], list[CasePanel]]] = Hook("case_panels")  # called with the CaseDetail
borrower_link: Hook[Callable[[int], str]] = Hook("borrower_link")  # called with a line id
# name -> (label, callable(case_ids, actor) -> message for the operator)
queue_actions: dict[str, tuple[Any, Callable[[list[int], Any], str]]] = {}


def link_for_borrower(line_id: int) -> str:
    """The first registered borrower link for this line, or "" when no app provides one."""
    return next((make(line_id) for make in borrower_link.callbacks), "")


def links_for_borrowers(line_ids: list[int]) -> dict[int, str]:
    """The borrower links of many lines (a bulk unfreeze's messages): about 7 µs each."""
    if not borrower_link.callbacks:
        return {}
    make = borrower_link.callbacks[0]
    return {i: make(i) for i in line_ids}
