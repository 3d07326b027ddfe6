"""Fixtures shared by the test modules (plain helpers are in helpers.py, rows in factories.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from riskops.celery import app as celery_app
from tests.factories import default_ruleset, make_role_operator
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, need_chromium

if TYPE_CHECKING:
    from pathlib import Path

    from django.contrib.auth.models import User
    from playwright.sync_api import Browser
    from pytest_django import Settings

    from accounts.models import RuleSet


def _forget_default_catalog() -> None:
    """Django caches the catalog of threads without an active language (LANGUAGE_CODE's); load it afresh."""
    from django.utils.translation import trans_real

    # django-stubs' trans_real.pyi leaves out the module's private caches (_default, _translations).
    trans_real._default = None  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _celery_eager() -> None:
    """Tasks run in-process in tests; `make run` uses a real worker."""
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True


@pytest.fixture(autouse=True)
def _any_hour(settings: Any) -> None:
    """The outbox's quiet hours would hold messages whenever the suite runs in the evening in Shanghai; the tests of
    the budget (tests/test_outbox_budget.py) set them, and everything else sends at any hour."""
    settings.NOTIFICATION_QUIET_HOURS = None


def pytest_configure(config: pytest.Config) -> None:
    """Translations are compiled from the committed .po files (pure Python, no gettext needed)."""
    from scripts.compilemessages import compile_all

    if compile_all():
        # Django may have loaded the catalogs before they existed; load them afresh.
        from django.utils.translation import trans_real

        trans_real._translations.clear()  # type: ignore[attr-defined]  # not in django-stubs (private cache)
        # Python's gettext caches catalogs by file too: without this, the first run after a .po change read the
        # catalog compiled before it.
        import gettext

        gettext._translations.clear()  # type: ignore[attr-defined]
        _forget_default_catalog()


@pytest.fixture(autouse=True)
def _appeal_documents_in_tmp(settings: Settings, tmp_path: Path) -> None:
    """Appeal documents go to a fresh directory per test (never the checkout's var/)."""
    settings.APPEAL_DOCUMENTS_DIR = tmp_path / "appeal-documents"


@pytest.fixture(autouse=True)
def _imports_in_tmp(settings: Settings, tmp_path: Path) -> None:
    """Files uploaded on the Import page go to a fresh directory per test."""
    settings.IMPORT_DIR = tmp_path / "imports"


@pytest.fixture(autouse=True)
def _english_by_default() -> Iterator[None]:
    """Service messages are translated; tests read them in English unless a request asks for Chinese."""
    from django.conf import settings
    from django.utils import translation

    previous = settings.LANGUAGE_CODE
    # What LocaleMiddleware falls back to when a request names no language, and what threads without an active
    # language use (Django caches that default catalog, hence the resets).
    settings.LANGUAGE_CODE = "en"
    _forget_default_catalog()
    try:
        with translation.override("en"):
            yield
    finally:
        settings.LANGUAGE_CODE = previous
        _forget_default_catalog()


# Operators in each role, shared by the case-review tests (the groups come from riskops.roles).
@pytest.fixture
def analyst() -> User:
    return make_role_operator("analyst", "ana")


@pytest.fixture
def analyst2() -> User:
    return make_role_operator("analyst", "bo")


@pytest.fixture
def senior() -> User:
    return make_role_operator("senior_reviewer", "sen")


@pytest.fixture
def senior2() -> User:
    return make_role_operator("senior_reviewer", "sue")


@pytest.fixture
def auditor() -> User:
    return make_role_operator("auditor", "aud")


@pytest.fixture
def integration() -> User:
    """The lending app's API user: not an operator (the `integration` group submits appeals and sends events)."""
    return make_role_operator("integration", "lending-app")


@pytest.fixture
def ruleset() -> RuleSet:
    """The active ruleset (DESIGN.md's defaults); modules whose tests all need it use it through `usefixtures`."""
    return default_ruleset()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright, one per browser test module."""
    need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def administrator():
    """An operator in the admin role: neither is_staff nor a superuser (the role decides)."""
    from tests.factories import make_role_operator

    return make_role_operator("admin", "adm")


@pytest.fixture
def as_admin(administrator):
    """The admin panel's client, logged in as `administrator`."""
    from tests.helpers import logged_in

    return logged_in(administrator)
