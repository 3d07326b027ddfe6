from datetime import datetime

from django import template
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
