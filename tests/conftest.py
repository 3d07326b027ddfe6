import pytest

from riskops.celery import app as celery_app
from tests.factories import make_role_operator


@pytest.fixture(autouse=True)
def _celery_eager():
    """Tasks run in-process in tests; `make run` uses a real worker."""
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True


def pytest_configure(config):
    """Translations are compiled from the committed .po files (pure Python, no gettext needed)."""
    from scripts.compilemessages import compile_all

    if compile_all():
        # Django may have loaded the catalogs before they existed; load them afresh.
        from django.utils.translation import trans_real

        trans_real._translations.clear()
        trans_real._default = None


@pytest.fixture(autouse=True)
def _appeal_documents_in_tmp(settings, tmp_path):
    """Appeal documents go to a fresh directory per test (never the checkout's var/)."""
    settings.APPEAL_DOCUMENTS_DIR = tmp_path / "appeal-documents"


@pytest.fixture(autouse=True)
def _english_by_default():
    """Service messages are translated; tests read them in English unless a request asks for Chinese."""
    from django.conf import settings
    from django.utils import translation
    from django.utils.translation import trans_real

    previous = settings.LANGUAGE_CODE
    # What LocaleMiddleware falls back to when a request names no language, and what threads without an active
    # language use (Django caches that default catalog, hence the resets).
    settings.LANGUAGE_CODE = "en"
    trans_real._default = None
    try:
        with translation.override("en"):
            yield
    finally:
        settings.LANGUAGE_CODE = previous
        trans_real._default = None


# Operators in each role, shared by the case-review tests (the groups come from riskops.roles).
@pytest.fixture
def analyst():
    return make_role_operator("analyst", "ana")


@pytest.fixture
def analyst2():
    return make_role_operator("analyst", "bo")


@pytest.fixture
def senior():
    return make_role_operator("senior_reviewer", "sen")


@pytest.fixture
def senior2():
    return make_role_operator("senior_reviewer", "sue")


@pytest.fixture
def auditor():
    return make_role_operator("auditor", "aud")


@pytest.fixture
def integration():
    """The lending app's API user: not an operator (the `integration` group may only submit and read appeals)."""
    return make_role_operator("integration", "lending-app")
