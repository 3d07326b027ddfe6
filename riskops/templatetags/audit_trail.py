"""`{% load audit_trail %}`: whether the user reads the audit trail (the navigation's link)."""

from typing import Any

from django import template

from riskops.audit_trail.access import reads_audit as _reads_audit

register = template.Library()


@register.filter
def reads_audit(user: Any) -> bool:
    return _reads_audit(user)
