#!/usr/bin/env python
"""Static weight: what a browser downloads for one case page, static files served as they were against collected.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/riskops_static_bench .venv/bin/python bench/static_weight.py \
        [--accounts 2000] [--reset]

- Data: its own database (riskops_static_bench on the embedded server unless DATABASE_URL says otherwise; created
  and migrated when missing), seeded with `seed_demo --accounts N --seed 42` (engine included, so some lines have
  an open case) when it holds no open case; reseeding a database whose name does not contain "bench" needs --reset.
- The page: /cases/<id>/ of the first open case, rendered through Django's whole stack by the test client, logged
  in as an analyst, DEBUG off. Every file it links under STATIC_URL (`src=` and `href=`: scripts, style sheets,
  the favicon) is then fetched as a browser on a first visit would, through the same middleware, with
  `Accept-Encoding: gzip, deflate` (every browser) and `gzip, deflate, br` (current browsers); the figures are the
  bodies' bytes (headers, a few hundred bytes per response, are left out).
- Before: the files as they are in their folders, plain names, nothing compressed (runserver's static view served
  them so in development; in production nothing served them). After: `collectstatic` into a temporary STATIC_ROOT
  with the console's storage (riskops/settings.py, STATIC_COLLECTED=true: hashed names, gzip and brotli copies),
  served by WhiteNoise. The page's HTML itself is the same both ways (Django does not compress pages).
- `repeat_visit_bytes_after`: what a second visit downloads once every linked file is cached as immutable (the
  HTML alone); before, no file had a Cache-Control, so each was at best revalidated.

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ensure_database, setup

setup(default_database="riskops_static_bench")

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

from accounts.models import Case, CreditLine  # noqa: E402
from riskops.core.roles import ensure_roles  # noqa: E402

PLAIN = {
    "STORAGES": {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    },
    "WHITENOISE_USE_FINDERS": True,
    "WHITENOISE_AUTOREFRESH": True,
}
COLLECTED = {
    "STORAGES": {**settings.STORAGES, "staticfiles": {"BACKEND": "riskops.staticfiles.CollectedStaticFilesStorage"}},
    "WHITENOISE_USE_FINDERS": False,
    "WHITENOISE_AUTOREFRESH": False,
}
ENCODINGS = {"identity": None, "gzip": "gzip, deflate", "br": "gzip, deflate, br"}


def static_urls(html: str) -> list[str]:
    prefix = "/" + settings.STATIC_URL.lstrip("/")
    return sorted({url for url in re.findall(r'(?:src|href)="([^"]+)"', html) if url.startswith(prefix)})


def case_page(user: User, case_id: int) -> tuple[str, list[str]]:
    client = Client()
    client.force_login(user)
    response = client.get(f"/cases/{case_id}/")
    assert response.status_code == 200, response.status_code
    html = response.content.decode()
    return html, static_urls(html)


def fetch(url: str, accept_encoding: str | None) -> tuple[int, str, str]:
    """Body bytes, Content-Encoding and Cache-Control of one static file, as a browser gets it."""
    response = Client().get(url, headers={"accept-encoding": accept_encoding} if accept_encoding else {})
    assert response.status_code == 200, (url, response.status_code)
    return (
        len(response.getvalue()),
        response.headers.get("Content-Encoding", ""),
        response.headers.get("Cache-Control", ""),
    )


def weigh(urls: list[str]) -> dict[str, dict[str, tuple[int, str, str]]]:
    return {url: {name: fetch(url, accept) for name, accept in ENCODINGS.items()} for url in urls}


def unhashed(url: str) -> str:
    return re.sub(r"\.[0-9a-f]{12}(\.[^./]+)$", r"\1", url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--reset", action="store_true")
    args = parser.parse_args()
    if args.accounts < 100:
        parser.error("--accounts must be at least 100")

    name = str(settings.DATABASES["default"]["NAME"])
    ensure_database()
    open_cases = Case.objects.exclude(status="resolved").order_by("id")
    if not open_cases.exists():
        have = CreditLine.objects.count()
        if have and not (args.reset or "bench" in name):
            sys.exit(f"database {name} holds {have:,} accounts and no open case; pass --reset to reseed it")
        call_command("seed_demo", accounts=str(args.accounts), seed="42", reset=True)
    case_id = open_cases.values_list("id", flat=True).first()
    assert case_id is not None, "seed_demo opened no case"
    ensure_roles()
    analyst, _ = User.objects.get_or_create(username="bench-analyst")
    analyst.groups.add(Group.objects.get(name="analyst"))
    print(f"database {name}; case page /cases/{case_id}/")

    with override_settings(**PLAIN):
        html_before, urls_before = case_page(analyst, case_id)
        before = weigh(urls_before)
    with tempfile.TemporaryDirectory(prefix="static-weight-") as root, override_settings(STATIC_ROOT=root, **COLLECTED):
        started = time.monotonic()
        call_command("collectstatic", interactive=False, verbosity=0)
        collect_seconds = round(time.monotonic() - started, 1)
        html_after, urls_after = case_page(analyst, case_id)
        after = weigh(urls_after)

    assert sorted(map(unhashed, urls_after)) == urls_before, (urls_before, urls_after)
    assert all(unhashed(u) != u for u in urls_after), "after collectstatic every linked file has a hashed name"
    print(f"{'file':48} {'before':>10} {'gzip':>10} {'br':>10}  after: Cache-Control")
    for url in urls_after:
        plain = before[unhashed(url)]["identity"][0]
        gz, br = after[url]["gzip"], after[url]["br"]
        print(f"{unhashed(url):48} {plain:>10,} {gz[0]:>10,} {br[0]:>10,}  {gz[2]}")
    html_bytes = len(html_after.encode())
    static_before = sum(w["gzip"][0] for w in before.values())  # nothing compressed, whatever the browser accepts
    static_gzip = sum(w["gzip"][0] for w in after.values())
    static_br = sum(w["br"][0] for w in after.values())
    immutable = sum("immutable" in w["gzip"][2] for w in after.values())
    max_ages = [int(m[1]) for w in after.values() if (m := re.search(r"max-age=(\d+)", w["gzip"][2]))]
    plotly = next(u for u in urls_after if "plotly" in u)
    figures = {
        "case_page_transfer_bytes_before": len(html_before.encode()) + static_before,
        "case_page_transfer_bytes_after_gzip": html_bytes + static_gzip,
        "case_page_transfer_bytes_after_br": html_bytes + static_br,
        "ratio": round((len(html_before.encode()) + static_before) / (html_bytes + static_gzip), 2),
        "ratio_br": round((len(html_before.encode()) + static_before) / (html_bytes + static_br), 2),
        "html_bytes": html_bytes,
        "static_files": len(urls_after),
        "static_bytes_before": static_before,
        "static_bytes_after_gzip": static_gzip,
        "static_bytes_after_br": static_br,
        "static_bytes_after_identity": sum(w["identity"][0] for w in after.values()),
        "plotly_bytes_before": before[unhashed(plotly)]["gzip"][0],
        "plotly_bytes_after_gzip": after[plotly]["gzip"][0],
        "plotly_bytes_after_br": after[plotly]["br"][0],
        "compressed_before": sum(bool(w["br"][1]) for w in before.values()),
        "immutable_after": immutable,
        "min_max_age_s_after": min(max_ages, default=0),
        "repeat_visit_bytes_after": html_bytes if immutable == len(urls_after) else None,
        "collectstatic_seconds": collect_seconds,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
