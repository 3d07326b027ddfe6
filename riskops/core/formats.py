"""How pages show money and SLA clocks (the template tags of `riskops.templatetags.riskops` call these)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _


def money(value: object) -> str:
    """Decimal -> ¥12,345.00 (never through float)."""
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    sign = "-" if amount < 0 else ""
    return f"{sign}¥{abs(amount):,.2f}"


def sla(due: datetime | None, due_soon_hours: int | None = None) -> SafeString | str:
    """An SLA clock: time left, or how long ago it was breached ("due soon" after cases' threshold by default)."""
    if due is None:
        return ""
    left = due - timezone.now()
    hours = int(abs(left.total_seconds()) // 3600)
    minutes = int(abs(left.total_seconds()) % 3600 // 60)
    if left.total_seconds() < 0:
        return format_html(
            '<span class="sla breached">{}</span>', _("breached %(h)dh %(m)02dm ago") % {"h": hours, "m": minutes}
        )
    # The same threshold as the queue's "due soon" filter.
    soon = settings.CASE_DUE_SOON_HOURS if due_soon_hours is None else due_soon_hours
    css = "due-soon" if left < timedelta(hours=soon) else "ok"
    return format_html('<span class="sla {}">{}</span>', css, _("%(h)dh %(m)02dm left") % {"h": hours, "m": minutes})
