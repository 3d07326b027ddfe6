"""System checks of the project's own settings (`manage.py check --deploy`)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def audit_checkpoint_key_check(app_configs: Any, **kwargs: Any) -> list[Warning]:
    if getattr(settings, "AUDIT_CHECKPOINT_KEY_SET", False):
        return []
    return [
        Warning(
            "AUDIT_CHECKPOINT_KEY is not set: the audit chain's checkpoints are signed with a key derived from "
            "SECRET_KEY.",
            hint="Set AUDIT_CHECKPOINT_KEY to a random value of at least 32 characters (docs/AUDIT.md).",
            id="riskops.W001",
        )
    ]


@register(Tags.security, deploy=True)
def document_scanner_check(app_configs: Any, **kwargs: Any) -> list[Warning]:
    if getattr(settings, "CLAMD_SOCKET", ""):
        return []
    return [
        Warning(
            "CLAMD_SOCKET is not set: appeal documents are disarmed (appeals.documents) but not scanned for malware.",
            hint="Run clamd and set CLAMD_SOCKET to the absolute path of its unix socket (README, Settings).",
            id="riskops.W002",
        )
    ]
