"""What the borrower does through the pages behind their messages' signed links, besides appealing (the appeals
app's): reading the explanation (audited) and updating the profile (an upstream event like any other, evaluated at
once)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.engine import evaluate_lines
from accounts.models import CreditLine, ExternalIncomeRecord, LineStatus, RuleCode, Signal, SignalStatus
from accounts.selectors.borrower import PROFILE_UPDATE, STATUS_VIEW, BorrowerStatus
from appeals.documents import StoredFiles, check_documents
from appeals.services import documents_root
from ingest.models import BatchSource, BatchStatus
from ingest.services import events_ingest
from portal.models import ProfileDocument
from riskops.core.audit import Actor, Change, audit_write
from riskops.core.errors import DomainError


def status_view(*, status: BorrowerStatus, actor: Actor, preview: bool = False) -> None:
    """The borrower read the explanation: one audit event per view, with the state and the reasons shown. A link
    preview (a messaging app or crawler fetching the link) is audited as such: nobody read anything."""
    audit_write(
        actor=actor,
        at=timezone.now(),
        changes=[
            Change(
                STATUS_VIEW,
                "credit_line",
                status.line.pk,
                status.line.pk,
                None,
                {
                    "state": status.state,
                    "reasons": [r.code for r in status.holding],
                    "no_longer_holding": [r.code for r in status.lifted],
                    **({"preview": True} if preview else {}),
                },
            )
        ],
    )


def _record_cited(line: CreditLine) -> ExternalIncomeRecord | None:
    """The newest external record that the line's active PROFILE_STALE signal cites, if one holds."""
    signal = Signal.objects.filter(line=line, code=RuleCode.PROFILE_STALE, status=SignalStatus.ACTIVE).first()
    ids = ((signal.evidence.get("events") or {}).get("income_record") or []) if signal else []
    return ExternalIncomeRecord.objects.filter(pk__in=ids).order_by("-occurred_at", "-id").first() if ids else None


@dataclass
class ProfileUpdated:
    restored: bool  # the cut amount came back (the rule restores on clear)
    cleared: int  # signals that stopped holding


def profile_update(
    *, line_id: int, employer: str, monthly_income: Decimal, files: list[tuple[str, bytes]], actor: Actor
) -> ProfileUpdated:
    """The borrower's own profile update: a proof of income is needed when the income differs from the declared
    one; the documents are checked like an appeal's, the update goes in as a ProfileUpdate event through the one
    ingestion path, and the line is evaluated at once (PROFILE_STALE clears; the cut comes back when its rule says
    so). Audited without the values (personal data): which fields changed, how many documents."""
    line = CreditLine.objects.select_related("borrower").filter(pk=line_id).first()
    if line is None or line.status == LineStatus.CLOSED:
        raise DomainError(_("This credit line is closed"))
    employer = " ".join(employer.split())
    declared = line.borrower.declared_monthly_income
    income_changed = declared is None or monthly_income != declared
    if income_changed and not files:
        raise DomainError(_("Your income changed: attach a proof of income (a payslip or a bank statement)"))
    record = _record_cited(line)
    if record is not None and not files and (monthly_income > record.monthly_income or employer != record.employer):
        # Saying again what the external record contradicts would clear the signal (and give back the cut) on the
        # borrower's word alone.
        raise DomainError(
            _("Our records show other work or income details: attach a proof of income (a payslip or a bank statement)")
        )
    docs = check_documents(files)
    at = timezone.now()
    upstream_id = f"portal-{uuid.uuid4().hex}"
    stored = StoredFiles(documents_root())
    try:
        with transaction.atomic():
            batch = events_ingest(
                items=[
                    {
                        "kind": "profile_update",
                        "upstream_id": upstream_id,
                        "account": line.account_no,
                        "occurred_at": at.isoformat(),
                        "employer": employer,
                        "monthly_income": str(monthly_income),
                    }
                ],
                actor=actor,
                source=BatchSource.PORTAL,
            )
            if batch.status != BatchStatus.STORED:
                raise DomainError(_("Your update could not be saved; please check it and try again"))
            rows = [
                ProfileDocument(line=line, upstream_id=upstream_id, uploaded_at=at, **fields)
                for fields in stored.write(docs)
            ]
            ProfileDocument.objects.bulk_create(rows)
            audit_write(
                actor=actor,
                at=at,
                changes=[
                    Change(
                        PROFILE_UPDATE,
                        "credit_line",
                        line.pk,
                        line.pk,
                        None,
                        {
                            "employer_changed": employer != line.borrower.employer,
                            "income_changed": income_changed,
                            "documents": len(rows),
                            "upstream_id": upstream_id,
                        },
                    )
                ],
            )
    except BaseException:
        stored.discard()
        raise
    result = evaluate_lines([line.pk], actor=Actor.engine())  # the engine reacting to the borrower's new data
    return ProfileUpdated(restored=result.restored > 0, cleared=result.cleared)
