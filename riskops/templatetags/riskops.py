from datetime import datetime

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from riskops.core import formats

register = template.Library()


@register.filter
def money(value: object) -> str:
    """Decimal -> ¥12,345.00 (never through float)."""
    return formats.money(value)


@register.simple_tag
def sla(due: datetime | None, due_soon_hours: int | None = None) -> SafeString | str:
    return formats.sla(due, due_soon_hours)


@register.filter
def get_item(mapping: dict, key: object) -> object:
    return mapping.get(key) if mapping else None


@register.filter
def typed(value: object) -> SafeString | str:
    """What a person or an upstream typed (a file name, a note, a reply), marked translate="no": shown as typed,
    in whatever language, never machine-translated (and the page-language test leaves it alone)."""
    return format_html('<span translate="no">{}</span>', value) if value not in (None, "") else ""
