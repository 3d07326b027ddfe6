"""What the console stores in its own words, shown in the reader's: the reasons of line changes and audit events,
who acted, what an audit event is about, a rule family's name.

The engine, jobs and services write these reasons in English with ids in them ("MULTI_HEAD signal #7 (ruleset v1)",
"evidence_confirmed: <note>", "job #3: bulk unfreeze"); a reader of either language sees them translated, and what a
person typed (a note, a reply to a borrower) as it was typed, marked translate="no".
"""

from __future__ import annotations

import re

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from accounts.models import RULE_SHORT_LABELS, ReasonCode, RuleCode
from riskops.templatetags.riskops import typed

register = template.Library()

# Reasons the code writes (and nothing else): each pattern, and the message it becomes.
_SIGNAL = re.compile(r"^(?P<code>[A-Z_]+) signal #(?P<id>\d+) \(ruleset v(?P<version>\d+)\)$")
_PROPOSAL = re.compile(r"^approved proposal #(?P<id>\d+) \((?P<code>[a-z_]+)\)(?:: (?P<note>.*))?$", re.S)
_JOB = re.compile(r"^job #(?P<id>\d+): (?P<kind>.+)$")
_CODED = re.compile(r"^(?P<code>[a-z_]+)(?:: (?P<note>.*))?$", re.S)
_UPSTREAM = re.compile(r"^upstream(?:: (?P<note>.*))?$", re.S)
_FIXED = {
    gettext_noop("risk signals fired"),
    gettext_noop("condition no longer holds"),
    gettext_noop("nightly re-evaluation"),
    gettext_noop("idle"),
}
_ACTORS = {
    gettext_noop("engine"),
    gettext_noop("system"),
    gettext_noop("schedule"),
    gettext_noop("claim expiry"),
    gettext_noop("appeal SLA aging"),
    gettext_noop("borrower (signed link)"),
    gettext_noop("login page"),
}
_OBJECTS = {
    "credit_line": gettext_noop("credit line"),
    "signal": gettext_noop("signal"),
    "case": gettext_noop("case"),
    "decision": gettext_noop("decision"),
    "note": gettext_noop("note"),
    "appeal": gettext_noop("appeal"),
    "appeal_document": gettext_noop("appeal document"),
    "borrower": gettext_noop("borrower"),
    "job": gettext_noop("job"),
    "ingest_batch": gettext_noop("ingestion batch"),
    "ruleset": gettext_noop("ruleset"),
    "user": gettext_noop("user"),
    "audit_event": gettext_noop("audit event"),
}


def _typed(note: str | None) -> SafeString | str:
    """What a person typed, kept as typed (never machine-translated)."""
    return typed(note)


def _with_note(head: str, note: str | None) -> SafeString:
    return format_html("{}: {}", head, _typed(note)) if note else format_html("{}", head)


@register.filter
def reason_text(reason: str | None) -> SafeString | str:
    """A stored reason in the reader's language; "" for none."""
    reason = reason or ""
    if not reason:
        return ""
    if reason in _FIXED:
        return _(reason)
    if m := _SIGNAL.match(reason):
        return _("%(rule)s, signal #%(id)s (ruleset v%(version)s)") % {
            "rule": rule_label(m["code"]),
            "id": m["id"],
            "version": m["version"],
        }
    if m := _PROPOSAL.match(reason):
        head = _("approved proposal #%(id)s (%(reason)s)") % {"id": m["id"], "reason": _reason_code(m["code"])}
        return _with_note(head, m["note"])
    if m := _JOB.match(reason):
        return _("job #%(id)s: %(kind)s") % {"id": m["id"], "kind": _(m["kind"])}
    if (m := _CODED.match(reason)) and m["code"] in ReasonCode.values:
        return _with_note(_reason_code(m["code"]), m["note"])
    if m := _UPSTREAM.match(reason):
        return _with_note(_("upstream"), m["note"])
    return _typed(reason)


def _reason_code(code: str) -> str:
    return str(dict(ReasonCode.choices).get(code, code))


@register.filter
def actor_text(label: str | None) -> str:
    """Who acted: an operator's name as it is, the engine, a job, the system's parts in the reader's language."""
    label = label or ""
    if label in _ACTORS:
        return _(label)
    if m := re.match(r"^job #(\d+)$", label):
        return _("job #%(id)s") % {"id": m[1]}
    return label


@register.filter
def object_text(object_type: str | None) -> str:
    """What an audit event is about, in the reader's language."""
    return _(_OBJECTS[object_type]) if object_type in _OBJECTS else (object_type or "")


@register.filter
def rule_label(code: str | None) -> str:
    """A rule family's short name (MULTI_HEAD: "multi-head", "多头借贷")."""
    return str(RULE_SHORT_LABELS.get(RuleCode(code), code)) if code in RuleCode.values else (code or "")
