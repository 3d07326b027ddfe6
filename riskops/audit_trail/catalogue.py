"""The audit actions the code writes, each with its name in the reader's language (the page's action filter offers
these). A writer that adds an action adds it here; an action missing here is still shown, as its code."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from riskops.models import ActorKind

EXPORT_ACTION = "audit.export"

ACTION_LABELS = {
    "line.freeze": _("line frozen"),
    "line.unfreeze": _("line unfrozen"),
    "line.cut_available": _("available amount cut"),
    "line.restore_available": _("cut amount restored"),
    "line.limit_change": _("limit changed"),
    "signal.fire": _("signal fired"),
    "signal.clear": _("signal cleared"),
    "signal.overturn": _("signal overturned"),
    "case.open": _("case opened"),
    "case.update": _("case updated"),
    "case.claim": _("case claimed"),
    "case.assign": _("case assigned"),
    "case.release": _("case released"),
    "note.add": _("note added"),
    "decision.propose": _("decision proposed"),
    "decision.approve": _("decision approved"),
    "decision.reject": _("decision rejected"),
    "decision.apply": _("decision applied"),
    "borrower.reveal": _("personal data revealed"),
    "borrower.status_view": _("borrower read the explanation"),
    "borrower.profile_update": _("borrower updated the profile"),
    "guidance.publish": _("borrower guidance published"),
    "ruleset.draft": _("rules drafted"),
    "rule.change": _("rule of a draft changed"),
    "ruleset.discard": _("draft of rules discarded"),
    "ruleset.activate": _("draft of rules activated"),
    "ruleset.shadow": _("draft of rules run in shadow"),
    "ruleset.shadow_stop": _("shadow of a draft stopped"),
    "exemption.grant": _("account exempted from a rule"),
    "appeal.submit": _("appeal submitted"),
    "appeal.review": _("appeal reviewed"),
    "appeal.decide": _("appeal decided"),
    "appeal.sla_breach": _("appeal past its SLA"),
    "appeal.more_info_received": _("more information received"),
    "appeal.more_info_unanswered": _("more information not received in time"),
    "document.view": _("document viewed"),
    "job.request": _("job requested"),
    "job.approve": _("job approved"),
    "job.cancel": _("job cancelled"),
    "job.fail": _("job failed"),
    "job.export_errors": _("import errors exported"),
    "auth.login": _("logged in"),
    "auth.logout": _("logged out"),
    "auth.login_failed": _("login failed"),
    "auth.locked_out": _("locked out after failed logins"),
    "auth.second_factor_enrolled": _("second factor set up"),
    "auth.second_factor_verified": _("second factor code given"),
    "auth.second_factor_failed": _("wrong second factor code"),
    "auth.second_factor_removed": _("second factor removed"),
    "ingest.batch": _("events ingested"),
    "operator.create": _("operator created"),
    "operator.change": _("operator changed"),
    "operator.password_set": _("operator's password set"),
    "token.issue": _("API token issued"),
    "token.revoke": _("API token revoked"),
    EXPORT_ACTION: _("audit trail exported"),
}

# The actors a filter can name by kind (an operator is named by user name).
ACTOR_KINDS = [(k.value, k.label) for k in ActorKind]


def action_label(action: str) -> str:
    label = ACTION_LABELS.get(action)
    return str(label) if label is not None else action
