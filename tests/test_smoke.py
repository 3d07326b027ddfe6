"""End-to-end checks of the two README commands' promises; also run against the embedded default."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import ROOT, free_port

pytestmark = pytest.mark.smoke


def _env_without_database(**extra: str) -> dict[str, str]:
    """The embedded database always; the broker is the machine's when CELERY_BROKER_URL is set (CI's Redis)."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(extra)
    return env


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DEBUG", "maybe", "DEBUG='maybe' is not a boolean"),
        ("TIME_ZONE", "Mars/Olympus", "TIME_ZONE='Mars/Olympus' is not a known time zone"),
        ("LANGUAGE_CODE", "fr", "LANGUAGE_CODE='fr' is not supported"),
        ("DATABASE_URL", "mysql://root@localhost/riskops", "DATABASE_URL must be a PostgreSQL URL"),
        ("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/", "DATABASE_URL has no database name"),
        ("CELERY_BROKER_URL", "sqs://queue", "CELERY_BROKER_URL has an unsupported scheme 'sqs'"),
        ("ENGINE_BATCH_SIZE", "lots", "ENGINE_BATCH_SIZE='lots' is not an integer"),
        ("ENGINE_BATCH_SIZE", "0", "ENGINE_BATCH_SIZE='0' must be at least 1"),
    ],
)
def test_a_bad_setting_stops_start_up_naming_the_variable(name: str, value: str, message: str) -> None:
    env = dict(os.environ, **{name: value})
    if name != "DATABASE_URL":
        env.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/unused")
    proc = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert "ImproperlyConfigured" in proc.stderr
    assert message in proc.stderr


def test_secret_key_is_required_when_debug_is_off() -> None:
    env = dict(os.environ, DEBUG="false", DATABASE_URL="postgresql://postgres@127.0.0.1:5432/unused")
    env.pop("SECRET_KEY", None)
    proc = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is false" in proc.stderr


class Browser:
    """A cookie-keeping HTTP client, like a person's browser session (no JavaScript needed here)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> tuple[int, str]:
        with self.opener.open(self.base + path, timeout=30) as resp:
            return resp.status, resp.read().decode()

    def post(self, path: str, data: dict[str, str]) -> tuple[int, str, str]:
        body = urllib.parse.urlencode(data).encode()
        req = urllib.request.Request(self.base + path, data=body, headers={"Referer": self.base + path})
        with self.opener.open(req, timeout=30) as resp:
            return resp.status, resp.geturl(), resp.read().decode()

    def post_multipart(
        self, path: str, fields: dict[str, str], files: list[tuple[str, str, bytes]]
    ) -> tuple[int, str, str]:
        boundary = "----riskops-smoke-boundary"
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
            for k, v in fields.items()
        ]
        for field, name, data in files:
            head = f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n\r\n'
            parts.append(head.encode() + data + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers = {"Referer": self.base + path, "Content-Type": f"multipart/form-data; boundary={boundary}"}
        req = urllib.request.Request(self.base + path, data=body, headers=headers)
        with self.opener.open(req, timeout=30) as resp:
            return resp.status, resp.geturl(), resp.read().decode()


def test_make_run_serves_the_console_with_demo_data_and_a_real_worker(tmp_path: Path) -> None:
    """`scripts/run.py` (what `make run` runs) on an empty embedded database, end to end."""
    port = free_port()
    pgdata = tmp_path / "pg"
    notifications = tmp_path / "notifications.log"
    env = _env_without_database(
        RISKOPS_PGDATA=str(pgdata),
        RISKOPS_VAR_DIR=str(tmp_path / "var"),
        NOTIFICATION_SENDER="accounts.notifications.FileSender",
        NOTIFICATION_FILE_PATH=str(notifications),
        # The freeze messages below go out at any hour (the outbox holds them 21:00-08:00 in the borrower's zone,
        # which tests/test_outbox_budget.py covers).
        NOTIFICATION_QUIET_HOURS="off",
    )
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "scripts/run.py", "--port", str(port), "--accounts", "400"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        browser = Browser(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 240
        while True:
            try:
                status, page = browser.get("/login/")
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "run.log").read_text()
                assert time.monotonic() < deadline, "the console did not come up in 240 s"
                time.sleep(0.5)
        assert status == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token
        status, url, home = browser.post(
            "/login/", {"username": "analyst", "password": "analyst-demo", "csrfmiddlewaretoken": token.group(1)}
        )
        assert status == 200
        assert url.endswith(f":{port}/queue/")
        assert 'class="case sev-' in home
        assert re.search(r"JB\d{10}", home)
        assert 'class="badge sev-high' in home
        output = (tmp_path / "run.log").read_text()
        assert "analyst          analyst-demo" in output
        # The console runs as the least-privileged runtime role, not as the owner (docs/AUDIT.md).
        assert "the worker, beat and web server connect as the runtime role" in output

        # The real worker sends what the engine queued while loading the demo data.
        deadline = time.monotonic() + 120
        while not (notifications.exists() and notifications.read_text().count("\n") > 0):
            assert time.monotonic() < deadline, "the Celery worker sent no notification in 120 s"
            time.sleep(1)
        assert re.search(r'"to": "1\d\d\*\*\*\*\d{4}"', notifications.read_text())

        # Demo appeals are in the inbox, and a frozen borrower appeals through the link their freeze message carries.
        status, inbox = browser.get("/appeals/")
        assert status == 200
        assert 'class="appeal prio-' in inbox
        links = re.findall(rf"http://127\.0\.0\.1:{port}(/a/[^/ ]+/)", notifications.read_text())
        assert links
        borrower = Browser(f"http://127.0.0.1:{port}")
        for link in links:
            status, form = borrower.get(link)
            if 'id="appeal-form"' in form:
                break
        else:
            raise AssertionError("every frozen demo borrower already appealed")
        assert '<html lang="zh-hans">' in form
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
        assert csrf
        from appeals.demo import demo_pdf

        status, _url, done = borrower.post_multipart(
            link,
            {"csrfmiddlewaretoken": csrf.group(1), "reason": "repaid", "statement": "已还清逾期款项"},
            [("documents", "receipt.pdf", demo_pdf("receipt"))],
        )
        assert status == 200
        assert 'id="appeal-status"' in done
        deadline = time.monotonic() + 120
        while '"kind": "appeal_received"' not in notifications.read_text():
            assert time.monotonic() < deadline, "the worker did not send the appeal confirmation in 120 s"
            time.sleep(1)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        log.close()
    assert proc.returncode == 0, (tmp_path / "run.log").read_text()
    assert not (pgdata / "postmaster.pid").exists(), "Ctrl-C left the embedded PostgreSQL running"
