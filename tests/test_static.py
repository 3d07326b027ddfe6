"""Static files (issue 13, "Plotly weight"): the case page's 4.8 MB plotly.min.js travels compressed, under a hashed
name cached for a year, once collectstatic has run; without it (development, the tests) every file is still served."""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import TYPE_CHECKING

import brotli
import pytest
from django.conf import settings as django_settings
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client, override_settings

from tests.factories import frozen_multi_head_case
from tests.helpers import logged_in

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from pytest_django import Settings

pytestmark = pytest.mark.django_db

PLOTLY = Path(str(finders.find("vendor/plotly/plotly.min.js")))  # the plotly package's own file
ONE_YEAR = 365 * 24 * 60 * 60

# What STATIC_COLLECTED=true (production's default) sets in riskops/settings.py.
COLLECTED = {
    "STORAGES": {
        **django_settings.STORAGES,
        "staticfiles": {"BACKEND": "riskops.staticfiles.CollectedStaticFilesStorage"},
    },
    "WHITENOISE_USE_FINDERS": False,
    "WHITENOISE_AUTOREFRESH": False,
}


@pytest.fixture(scope="module")
def collected_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """collectstatic run for real, as a deploy runs it, into a STATIC_ROOT of the module's own (about 20 s)."""
    root = tmp_path_factory.mktemp("static_root")
    with override_settings(STATIC_ROOT=root, **COLLECTED):
        call_command("collectstatic", interactive=False, verbosity=0)
    return root


@pytest.fixture
def collected(settings: Settings, collected_root: Path) -> Path:
    assert settings.DEBUG is False  # as in production (pytest-django's default): the hashed names are linked
    settings.STATIC_ROOT = collected_root
    for name, value in COLLECTED.items():
        setattr(settings, name, value)
    return collected_root


def case_page(user: User) -> str:
    case = frozen_multi_head_case()
    response = logged_in(user).get(f"/cases/{case.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def fetch(url: str, accept_encoding: str | None = None) -> tuple[dict[str, str], bytes]:
    """Headers and body as a browser receives them (through WhiteNoise, in front of the whole middleware stack)."""
    response = Client().get(url, headers={"accept-encoding": accept_encoding} if accept_encoding else {})
    assert response.status_code == 200, (url, response.status_code)
    return dict(response.headers), response.getvalue()


def max_age(cache_control: str) -> int:
    match = re.search(r"max-age=(\d+)", cache_control)
    assert match, cache_control
    return int(match[1])


def test_the_case_page_links_a_hashed_plotly_served_gzipped_and_cached_for_a_year(analyst, collected):
    body = case_page(analyst)

    match = re.search(r'<script src="(/static/vendor/plotly/plotly\.min\.[0-9a-f]{12}\.js)" defer>', body)
    assert match, "the case page links plotly by its hashed name"
    assert "/static/vendor/plotly/plotly.min.js" not in body
    headers, data = fetch(match[1], "gzip, deflate")
    assert headers["Content-Encoding"] == "gzip"
    assert len(data) < 1_600_000 < 4_800_000 < PLOTLY.stat().st_size
    assert gzip.decompress(data) == PLOTLY.read_bytes()
    assert max_age(headers["Cache-Control"]) >= ONE_YEAR
    assert "immutable" in headers["Cache-Control"]
    assert "Accept-Encoding" in headers["Vary"]  # a shared cache keeps one copy per encoding


def test_browsers_that_accept_brotli_get_plotly_smaller_still_and_others_the_whole_file(analyst, collected):
    plotly = re.search(r'src="(/static/vendor/plotly/plotly\.min\.[0-9a-f]{12}\.js)"', case_page(analyst))
    assert plotly
    url = plotly[1]

    br_headers, br_data = fetch(url, "gzip, deflate, br")
    _, gz_data = fetch(url, "gzip")
    plain_headers, plain_data = fetch(url)

    assert br_headers["Content-Encoding"] == "br"
    assert len(br_data) < len(gz_data) < 1_600_000
    assert brotli.decompress(br_data) == PLOTLY.read_bytes()
    assert "Content-Encoding" not in plain_headers
    assert plain_data == PLOTLY.read_bytes()


def test_every_static_file_the_case_page_links_is_served_hashed_and_immutable(analyst, collected):
    body = case_page(analyst)
    urls = set(re.findall(r'(?:src|href)="(/static/[^"]+)"', body))

    assert {re.sub(r"\.[0-9a-f]{12}\.", ".", u) for u in urls} >= {
        "/static/riskops/favicon.svg",
        "/static/riskops/base.css",
        "/static/vendor/plotly/plotly.min.js",
        "/static/accounts/timeline.js",
        "/static/accounts/keys.js",
    }
    for url in urls:
        headers, _ = fetch(url, "gzip, br")
        assert "immutable" in headers["Cache-Control"], url


def test_the_favicon_still_resolves_when_static_files_are_collected(analyst, collected):
    favicon = re.search(r'<link rel="icon" href="(/static/riskops/favicon\.[0-9a-f]{12}\.svg)"', case_page(analyst))
    assert favicon

    headers, data = fetch(favicon[1])
    assert headers["Content-Type"].startswith("image/svg+xml") and data.startswith(b"<svg")
    redirected = Client().get("/favicon.ico", follow=True)
    assert redirected.status_code == 200
    assert redirected.redirect_chain and redirected.redirect_chain[0][1] == 301


def test_pages_link_plain_names_until_collectstatic_has_written_a_manifest(analyst, settings, tmp_path):
    settings.STATIC_ROOT = tmp_path / "never-collected"
    settings.STATIC_ROOT.mkdir()
    for name, value in COLLECTED.items():
        setattr(settings, name, value)

    body = case_page(analyst)

    assert '<script src="/static/vendor/plotly/plotly.min.js" defer>' in body


def test_without_collectstatic_the_static_files_are_served_from_their_folders(analyst, client):
    assert django_settings.STORAGES["staticfiles"]["BACKEND"].endswith(".StaticFilesStorage")
    body = case_page(analyst)
    assert '<script src="/static/vendor/plotly/plotly.min.js" defer>' in body

    headers, data = fetch("/static/vendor/plotly/plotly.min.js", "gzip, br")
    assert data == PLOTLY.read_bytes()
    assert "Content-Encoding" not in headers  # nothing compressed them: collectstatic does
    assert (
        fetch("/static/riskops/base.css")[1]
        == (Path(django_settings.BASE_DIR) / "static/riskops/base.css").read_bytes()
    )
