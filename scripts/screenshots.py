"""`make screenshots`: the console as a reviewer sees it, in both languages, written to docs/screenshots/.

A database of its own (SCREENSHOTS_DATABASE_URL, else `riskops_screenshots` on the embedded PostgreSQL), loaded
with the demo data afresh each time; the dev server on a free port; Debian's Chromium driven by Playwright. Pages:
the queue, "my work", a frozen case, a cut case, an open appeal, the appeals inbox and the jobs page (as a senior
reviewer), the dashboard (its first 2400 px), the audit trail, the borrower guidance, the rules, a draft of them,
its simulation, its backtest and its approval page, and the admin panel's operators and API tokens (as an
administrator), the borrower's status page of a frozen and of a cut line (a phone's width), each in Chinese and
English, 1400 px wide (the first 2400 px of a case page, 1500 of a list). Needs `apt-get install chromium fonts-wqy-microhei`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from scripts.run import wait_until_serving  # noqa: E402 - after the path is set

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LANGUAGES = {"zh": "zh-hans", "en": "en"}
MAX_HEIGHT = 2400  # a case page; lists are cut shorter
LIST_HEIGHT = 1500


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def database_url() -> str:
    url = os.environ.get("SCREENSHOTS_DATABASE_URL", "")
    if url:
        return url
    from riskops.embedded_db import ensure_running

    return ensure_running("riskops_screenshots")


def prepare(manage: list[str], env: dict[str, str], accounts: int) -> None:
    """The demo data afresh (seed_demo --reset keeps the migrations' rows: roles, the default ruleset)."""
    subprocess.run([*manage, "migrate", "--no-input", "-v", "0"], env=env, check=True)
    subprocess.run([*manage, "create_demo_operators"], env=env, check=True, stdout=subprocess.DEVNULL)
    seed = [*manage, "seed_demo", "--accounts", str(accounts), "--seed", "42", "--appeals", "40", "--reset"]
    subprocess.run(seed, env=env, check=True, stdout=subprocess.DEVNULL)


# Pages an administrator sees (a senior reviewer may not): name -> path.
ADMIN_PAGES = {
    "dashboard": "/dashboard/",
    "audit": "/audit/",
    "guidance": "/guidance/",
    "rules": "/rules/",
    "admin-operators": "/admin/auth/user/",
    "admin-tokens": "/admin/riskops/apitoken/",
}
PHONE_WIDTH = 390  # the borrower's pages, on a phone


def targets(manage: list[str], env: dict[str, str]) -> dict[str, str]:
    """The pages to take, found in the demo data (ids differ with the seed)."""
    code = """
from accounts.models import Case, Signal
from appeals.models import Appeal, OPEN_STATES
frozen = Case.objects.filter(line__status="frozen").exclude(status="resolved").order_by("-risk_tier", "pk").first()
cut_line = Signal.objects.filter(status="active", action="cut", line__status="active").values_list("line_id", flat=True).first()
cut = Case.objects.filter(line_id=cut_line).exclude(status="resolved").first()
appeal = Appeal.objects.filter(status__in=OPEN_STATES).order_by("pk").first()
# Two jobs for the jobs page: a re-evaluation of the overdue queue (runs in this process), a bulk unfreeze waiting
# for a second senior reviewer's approval.
from django.contrib.auth.models import User
from riskops import jobs
from riskops.core.audit import Actor
from riskops.models import Job
Job.objects.all().delete()  # seed_demo --reset keeps jobs; these are the only ones shown
senior = Actor.operator(User.objects.get(username="senior_reviewer"))
jobs.job_request(kind="reevaluate", selection_kind="filter", selection={"family": "OVERDUE"}, actor=senior,
                 reason="weekly re-evaluation of the overdue queue")
ids = list(Case.objects.filter(line__status="frozen").exclude(status="resolved").values_list("line_id", flat=True)[:30])
jobs.job_request(kind="bulk_unfreeze", selection_kind="ids", selection={"line_ids": ids}, actor=senior,
                 reason="upstream data error in the bureau feed")
from urllib.parse import urlparse
from appeals.links import appeal_link
def link(case):
    return urlparse(appeal_link(case.line_id)).path if case else "-"
# A draft of the rules (seed_demo keeps rulesets: earlier drafts go first), MULTI_HEAD's threshold raised.
from accounts.models import RuleSet
from accounts.services.rulesets import rule_change, ruleset_discard, ruleset_draft
manager = Actor.operator(User.objects.get(username="risk_manager"))
for old in RuleSet.objects.filter(activated_at__isnull=True):
    ruleset_discard(ruleset_id=old.pk, actor=manager)
draft = ruleset_draft(source=RuleSet.objects.get(is_active=True), actor=manager, note="fewer multi-head freezes")
rule = draft.rules.get(code="MULTI_HEAD")
rule_change(rule_id=rule.pk, actor=manager, params={**rule.params, "min_inquiries": 6}, severity=rule.severity,
            action=rule.action, enabled=True, restore_on_clear=None)
from riskops.tuning.services import backtest_request, simulation_request
simulation = simulation_request(version=draft.version, actor=manager)  # eager: its batches run as it commits
backtest = backtest_request(version=draft.version, actor=manager)
print(frozen.pk if frozen else "-", cut.pk if cut else "-", appeal.pk if appeal else "-", link(frozen), link(cut),
      draft.version, simulation.pk, backtest.pk)
"""
    out = subprocess.run([*manage, "shell", "-c", code], env=env, capture_output=True, text=True)
    if out.returncode:
        sys.exit(out.stderr)
    # The last line: Django's shell prints how many objects it imported first.
    last = [*out.stdout.strip().splitlines()[-1].split(), *[""] * 8][:8]
    frozen, cut, appeal, frozen_link, cut_link, draft, simulation, backtest = last
    if draft.isdigit():
        ADMIN_PAGES["rules-draft"] = f"/rules/v{draft}/"
        ADMIN_PAGES["rules-activate"] = f"/rules/v{draft}/activate/"  # the admin did not make it: may approve it
    if simulation.isdigit():
        ADMIN_PAGES["rules-simulation"] = f"/rules/simulations/{simulation}/"
    if backtest.isdigit():
        ADMIN_PAGES["rules-backtest"] = f"/rules/backtests/{backtest}/"
    pages = {"queue": "/queue/", "my-work": "/my-work/", "inbox": "/appeals/", "jobs": "/jobs/"}
    if frozen.isdigit():
        pages["case-frozen"] = f"/cases/{frozen}/"
    if cut.isdigit():
        pages["case-cut"] = f"/cases/{cut}/"
    if appeal.isdigit():
        pages["appeal"] = f"/appeals/{appeal}/"
    if frozen_link.startswith("/a/"):
        pages["borrower-frozen"] = frozen_link
    if cut_link.startswith("/a/"):
        pages["borrower-cut"] = cut_link
    missing = {"case-frozen", "case-cut", "appeal"} - set(pages)
    if missing:
        print(f"The demo data has no page for: {', '.join(sorted(missing))}", file=sys.stderr)
    return pages


def shoot(base: str, pages: dict[str, str], out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        for short, code in LANGUAGES.items():
            # The borrower's pages: no login, a phone's width, Chinese unless the page's own switch says English.
            phone = browser.new_context(viewport={"width": PHONE_WIDTH, "height": 844}, locale=code, is_mobile=True)
            tab = phone.new_page()
            for name, path in pages.items():
                if not name.startswith("borrower"):
                    continue
                tab.goto(base + path + ("?lang=en" if short == "en" else ""))
                tab.wait_for_load_state("networkidle")
                height = min(MAX_HEIGHT, tab.evaluate("() => document.documentElement.scrollHeight"))
                target = out / f"{name}-{short}.png"
                clip: Any = {"x": 0, "y": 0, "width": PHONE_WIDTH, "height": height}
                tab.screenshot(path=str(target), clip=clip, full_page=True)
                written.append(target)
            phone.close()
            console = {name: path for name, path in pages.items() if not name.startswith("borrower")}
            for operator, its_pages in (("senior_reviewer", console), ("admin", ADMIN_PAGES)):
                context = browser.new_context(viewport={"width": 1400, "height": 900}, locale=code)
                context.add_cookies([{"name": "django_language", "value": code, "url": base}])
                tab = context.new_page()
                tab.goto(f"{base}/login/")
                tab.fill("#id_username", operator)
                tab.fill("#id_password", f"{operator}-demo")
                tab.click(".login button[type=submit]")
                tab.wait_for_load_state("networkidle")
                for name, path in its_pages.items():
                    tab.goto(base + path)
                    tab.wait_for_load_state("networkidle")
                    if name.startswith("case"):
                        tab.wait_for_selector("#timeline .main-svg", timeout=15_000)
                    if name == "dashboard":
                        tab.wait_for_selector("#plot-freezes .main-svg", timeout=15_000)
                    limit = MAX_HEIGHT if name.startswith(("case", "appeal", "dashboard")) else LIST_HEIGHT
                    height = min(limit, tab.evaluate("() => document.documentElement.scrollHeight"))
                    target = out / f"{name}-{short}.png"
                    clip = {"x": 0, "y": 0, "width": 1400, "height": height}
                    tab.screenshot(path=str(target), clip=clip, full_page=True)
                    written.append(target)
                context.close()
        browser.close()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=3000, help="demo accounts (default 3000)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print("Chromium is missing: apt-get install chromium fonts-wqy-microhei", file=sys.stderr)
        return 2
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "riskops.settings",
        "DEBUG": "true",
        "NOTIFICATION_SENDER": "accounts.notifications.FileSender",
        "NOTIFICATION_FILE_PATH": os.devnull,
        "CELERY_TASK_ALWAYS_EAGER": "true",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    prepare(manage, env, args.accounts)
    pages = targets(manage, env)
    port = free_port()
    server = subprocess.Popen([*manage, "runserver", "--noreload", f"127.0.0.1:{port}"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_serving(base + "/"):
            print("The console did not start", file=sys.stderr)
            return 1
        args.out.mkdir(parents=True, exist_ok=True)
        written = shoot(base, pages, args.out)
    finally:
        server.terminate()
        server.wait(timeout=15)
    for path in written:
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}  {path.stat().st_size // 1024} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
