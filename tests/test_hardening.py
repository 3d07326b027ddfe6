"""Production hardening: `check --deploy` passes with production values; console pages carry a Content-Security-
Policy without inline script, and the other security headers; no template holds an inline script or handler."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import default_ruleset, flag, make_line, make_role_operator
from tests.helpers import current_database_url, logged_in

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "risk.example.com",
    "PUBLIC_BASE_URL": "https://risk.example.com",
    "AUDIT_CHECKPOINT_KEY": secrets.token_urlsafe(40),
    "CLAMD_SOCKET": "/run/clamav/clamd.ctl",  # the check reads the setting; it does not connect
}


def _check_deploy(**extra: str) -> subprocess.CompletedProcess[str]:
    # Not the browser tests' DJANGO_ALLOW_ASYNC_UNSAFE (set in this process when they ran first): no deploy has it.
    inherited = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {**inherited, **PRODUCTION, "DATABASE_URL": current_database_url(), **extra}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.django_db
def test_check_deploy_passes_with_production_values():
    result = _check_deploy()
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("setting", "value", "warning"),
    [
        ("SECURE_HSTS_SECONDS", "0", "security.W004"),
        ("AUDIT_CHECKPOINT_KEY", "", "riskops.W001"),
        ("CLAMD_SOCKET", "", "riskops.W002"),
    ],
)
def test_check_deploy_fails_without_a_production_setting(setting, value, warning):
    """The check is not vacuous: the same command names what is missing (HSTS, the audit checkpoints' key, the document scanner)."""
    result = _check_deploy(**{setting: value})
    assert result.returncode == 1
    assert warning in result.stderr


@pytest.mark.django_db
def test_console_pages_carry_the_policy_and_the_security_headers():
    default_ruleset()
    case = flag(make_line(), "OVERDUE")
    client = logged_in(make_role_operator("senior_reviewer"))
    for url in ["/login/", "/queue/", f"/cases/{case.pk}/", "/appeals/", "/jobs/", "/api/docs/"]:
        response = client.get(url)
        assert response.status_code == 200, url
        directives = [d.strip().split(" ", 1) for d in response["Content-Security-Policy"].split(";")]
        policy = {d[0]: d[1] if len(d) > 1 else "" for d in directives}
        assert policy["script-src"] == "'self'", url
        assert policy["frame-ancestors"] == "'none'", url
        assert policy["object-src"] == "'none'", url
        assert response["X-Frame-Options"] == "DENY", url
        assert response["X-Content-Type-Options"] == "nosniff", url
        assert response["Referrer-Policy"] == "same-origin", url


INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.I)
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)


def test_no_template_has_an_inline_script_or_handler():
    found = []
    for path in sorted((ROOT / "templates").rglob("*.html")) + sorted(ROOT.glob("*/templates/**/*.html")):
        text = path.read_text()
        found += [f"{path.relative_to(ROOT)}: {m.group(0).strip()}" for m in INLINE_HANDLER.finditer(text)]
        found += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in INLINE_SCRIPT.finditer(text)]
    assert found == []
