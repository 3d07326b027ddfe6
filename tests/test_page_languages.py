"""Every page, in Chinese and in English, says nothing in the other language and shows no raw code (issue 13).

The catalogue is the reference: a Chinese page that shows one of its English message ids (or the fixed part of
one with placeholders), or an English page that shows a piece of one of its Chinese translations, has a message
left untranslated. Visible text is what a reader sees: text nodes and the placeholder, title, aria-label, alt and
button values, outside <code>, <script>, <style> and elements marked translate="no" (a borrower's own words, names,
the texts sent to borrowers, which are Chinese by design).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import polib
import pytest
from django.test import Client, RequestFactory
from django.utils import translation

from tests.helpers import ROOT, logged_in, op

pytestmark = pytest.mark.django_db

ZH = {"accept-language": "zh-hans"}
EN = {"accept-language": "en"}

PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%[sd]|\{\w*\}")
CJK = re.compile(r"[\u3400-\u9fff]")
# Raw codes: ABNORMAL_USE, evidence_confirmed, cut_available.
RAW_CODE = re.compile(r"\b(?:[A-Z]{2,}(?:_[A-Z]+)+|[a-z]+(?:_[a-z]+)+)\b")
SKIPPED = {"script", "style", "code", "pre", "textarea"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
SHOWN_ATTRIBUTES = ("placeholder", "title", "aria-label", "alt")


class _Visible(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[bool] = []  # per open element: is what it holds hidden from this check
        self.texts: list[str] = []

    def _hidden(self) -> bool:
        return bool(self.stack) and self.stack[-1]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        hidden = self._hidden() or tag in SKIPPED or values.get("translate") == "no"
        if not hidden:
            self.texts += [v for k, v in attrs if k in SHOWN_ATTRIBUTES and v]
            if tag == "input" and values.get("type") in ("submit", "button") and values.get("value"):
                self.texts.append(values["value"] or "")
        if tag not in VOID:
            self.stack.append(hidden)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag not in VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        text = " ".join(data.split())
        if text and not self._hidden():
            self.texts.append(text)


def visible_texts(html: str) -> list[str]:
    parser = _Visible()
    parser.feed(html)
    return parser.texts


class Catalogue:
    def __init__(self) -> None:
        po = polib.pofile(str(ROOT / "locale/zh_Hans/LC_MESSAGES/django.po"))
        entries = [(e.msgid, e.msgstr) for e in po if e.msgstr and e.msgid != e.msgstr and not e.msgid_plural]
        # A whole message, or the fixed parts of one with placeholders (long enough to be that message's own).
        self.english = {m for m, _t in entries if not PLACEHOLDER.search(m)}
        self.english_parts = {p.strip() for m, _t in entries if PLACEHOLDER.search(m) for p in PLACEHOLDER.split(m)}
        self.english_parts = {p for p in self.english_parts if len(p) >= 16}
        self.chinese_parts = {
            p.strip(" ，。：:;；、·()（）") for _m, t in entries for p in PLACEHOLDER.split(t) if CJK.search(p)
        }
        self.chinese_parts = {p for p in self.chinese_parts if len(CJK.findall(p)) >= 2}

    def english_left(self, text: str) -> list[str]:
        fragments = {f.strip(" :：·—|()") for f in re.split(r"\s*(?:→|·|—|\||:|：|\(|\))\s*", text)}
        return sorted({f for f in fragments if f in self.english} | {p for p in self.english_parts if p in text})

    def chinese_left(self, text: str) -> list[str]:
        return sorted(p for p in self.chinese_parts if p in text)


def leftovers(html: str, language: str, catalogue: Catalogue) -> list[str]:
    found = []
    for text in visible_texts(html):
        left = catalogue.english_left(text) if language == "zh" else catalogue.chinese_left(text)
        found += [f"{language}: {piece!r} in {text!r}" for piece in left]
        found += [f"{language}: raw code {code!r} in {text!r}" for code in RAW_CODE.findall(text)]
    return found


@pytest.fixture
def console(analyst, senior, senior2, auditor, django_capture_on_commit_callbacks):
    """One of everything the console shows: frozen (every family), cut and resolved cases, decisions with reason
    codes, line changes of every kind, notes, an open and a decided appeal, a job with a held account (run in the
    worker's Chinese), an import with errors."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from accounts import services
    from accounts.models import Decision
    from appeals import services as appeal_services
    from appeals.links import appeal_link
    from riskops import jobs
    from riskops.models import Job
    from tests.factories import flag, make_line, make_role_operator
    from tests.helpers import submit

    frozen = flag(make_line(), "MULTI_HEAD", "OVERDUE", "ABNORMAL_USE")
    cut = flag(make_line(available="15000.00"), "PROFILE_STALE")
    kept = flag(make_line(), "OVERDUE")
    lifted = flag(make_line(limit="20000.00"), "ABNORMAL_USE")
    appealed = flag(make_line(), "MULTI_HEAD")
    decided = flag(make_line(), "OVERDUE")
    held = flag(make_line(), "OVERDUE")
    assert all(c is not None for c in (frozen, cut, kept, lifted, appealed, decided, held))
    services.note_add(case_id=frozen.pk, actor=op(analyst), text="Called the borrower; no answer.")

    def decide(case, kind, code, **extra):
        return services.case_decide(case_id=case.pk, actor=op(analyst), kind=kind, reason_code=code,
                                    expected_version=None, idempotency_key=f"{case.pk}-{kind}", **extra)  # fmt: skip

    decide(kept, "keep_frozen", "evidence_confirmed", note="Confirmed with the bureau")
    decide(lifted, "unfreeze", "data_error")
    decide(cut, "request_update", "profile_updated")
    open_appeal = submit(appealed)
    done = submit(decided, reason="repaid")
    appeal_services.appeal_decide(appeal_id=done.pk, actor=op(senior), outcome="reject", reply="经人工复核，暂不能确认。",
                                  expected_version=done.version)  # fmt: skip
    submit(held)
    with django_capture_on_commit_callbacks(execute=True), translation.override("zh-hans"):
        job = jobs.job_request(kind="bulk_unfreeze", selection_kind="ids", actor=op(senior), reason="weekly clean-up",
                               selection={"line_ids": [held.line_id, frozen.line_id]})  # fmt: skip
        jobs.job_approve(job_id=job.pk, actor=op(senior2))
    assert Decision.objects.count() >= 3
    manager = make_role_operator("risk_manager", "rim")
    rows = "upstream_id,account,occurred_at,institution\nq-1,NOPE,2026-11-30T14:05:00+08:00,招商银行\nq-2,X,yesterday,招商银行\n"
    with django_capture_on_commit_callbacks(execute=True), translation.override("zh-hans"):
        upload = SimpleUploadedFile("credit_inquiry.csv", rows.encode())
        logged_in(manager).post("/jobs/import/", {"file": upload})
    imported = Job.objects.get(kind="import")
    assert imported.failed == 2
    return {
        "cases": [frozen, cut, kept, lifted, appealed],
        "appeals": [open_appeal, done],
        "job": job,
        "import": imported,
        "link": appeal_link(appealed.line_id).rsplit("/a/", 1)[1].strip("/"),
        "users": {
            "analyst": analyst,
            "senior": senior,
            "auditor": auditor,
            "manager": manager,
        },
    }


def _pages(console) -> list[tuple[str, str]]:
    from accounts.models import CreditInquiry, Drawdown, Installment, Transfer

    pages = [("analyst", "/queue/"), ("analyst", "/queue/?family=OVERDUE"), ("auditor", "/queue/")]
    pages += [(role, f"/cases/{c.pk}/") for c in console["cases"] for role in ("analyst", "auditor")]
    for kind, model in (("inquiry", CreditInquiry), ("drawdown", Drawdown), ("installment", Installment),
                        ("transfer", Transfer)):  # fmt: skip
        event = model.objects.order_by("pk").first()
        if event is not None:
            pages.append(("analyst", f"/events/{kind}/{event.pk}/"))
    pages += [("senior", "/appeals/"), *(("senior", f"/appeals/{a.pk}/") for a in console["appeals"])]
    pages += [("senior", "/jobs/"), ("senior", f"/jobs/{console['job'].pk}/"), ("manager", "/jobs/import/")]
    pages.append(("manager", f"/jobs/{console['import'].pk}/"))
    pages.append(("analyst", "/login/code/setup/"))  # the second factor's enrolment
    return pages


@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_page_speaks_one_language_and_shows_no_raw_code(console, client, language):
    catalogue = Catalogue()
    headers = ZH if language == "zh" else EN
    found = []
    clients = {name: logged_in(user) for name, user in console["users"].items()}
    for role, url in _pages(console):
        response = clients[role].get(url, headers=headers)
        assert response.status_code == 200, url
        found += [f"{url} ({role}) {f}" for f in leftovers(response.content.decode(), language, catalogue)]
    for url in ("/login/", f"/a/{console['link']}/" + ("?lang=en" if language == "en" else "")):
        response = client.get(url, headers=headers)
        assert response.status_code == 200, url
        found += [f"{url} {f}" for f in leftovers(response.content.decode(), language, catalogue)]
    # The lockout page (a locked username and address) and the code page of an operator with a device.
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from riskops.core.logins import lockout_response

    request = RequestFactory(headers=headers).get("/login/")
    with translation.override("zh-hans" if language == "zh" else "en"):
        found += [f"lockout {f}" for f in leftovers(lockout_response(request).content.decode(), language, catalogue)]
    manager = console["users"]["manager"]
    TOTPDevice.objects.create(user=manager, name="authenticator", confirmed=True)
    with_device = Client(headers=headers)
    with_device.force_login(manager)
    assert with_device.get("/queue/")["Location"].startswith("/login/code/")
    response = with_device.get("/login/code/")
    assert response.status_code == 200
    found += [f"/login/code/ {f}" for f in leftovers(response.content.decode(), language, catalogue)]
    assert not found, "\n".join(found)


def test_the_check_finds_an_english_message_on_a_chinese_page_and_a_chinese_one_on_an_english_page():
    catalogue = Catalogue()
    assert leftovers("<td>active → frozen</td>", "zh", catalogue) == [
        "zh: 'active' in 'active → frozen'",
        "zh: 'frozen' in 'active → frozen'",
    ]
    assert leftovers('<span class="badge">ABNORMAL_USE</span>', "zh", catalogue) == [
        "zh: raw code 'ABNORMAL_USE' in 'ABNORMAL_USE'"
    ]
    with translation.override("zh-hans"):
        from django.utils.translation import gettext

        chinese = gettext("the borrower's appeal #%(id)s is open; decide it from the appeal page") % {"id": 7}
    assert leftovers(f"<td>{chinese}</td>", "en", catalogue)
    assert leftovers(f'<td translate="no">{chinese}</td><code>MULTI_HEAD</code>', "en", catalogue) == []
    assert leftovers('<input type="submit" value="Submit appeal">', "zh", catalogue) == [
        "zh: 'Submit appeal' in 'Submit appeal'"
    ]
