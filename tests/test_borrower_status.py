"""The borrower's side: the status page behind every message's link (why, what to do, the appeal's progress), each
view audited; the profile update through the page (PROFILE_STALE clears, the cut comes back when the rule says so);
the guidance texts risk managers keep; what the case page shows of it all."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from accounts.engine import evaluate_lines
from accounts.models import (
    Case,
    CaseStatus,
    ClearCause,
    CreditLine,
    Guidance,
    LiftCause,
    LineChange,
    LineStatus,
    Notification,
    NotificationKind,
    ProfileUpdate,
    Signal,
    SignalStatus,
)
from appeals.links import appeal_link, read_link
from portal.models import ProfileDocument
from riskops.models import AuditEvent
from tests.factories import (
    INSTITUTIONS,
    drawdown,
    income_record,
    inquiry,
    installment,
    live_version,
    make_line,
    make_role_operator,
)
from tests.helpers import logged_in, messages_of, page, pdf, png, token_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ruleset")]


def now() -> Any:
    return timezone.now()


def status_path(line: CreditLine) -> str:
    return appeal_link(line.pk).removeprefix(settings.PUBLIC_BASE_URL)


def multi_head(line: CreditLine) -> None:
    for i in range(5):
        inquiry(line, now() - timedelta(days=3, hours=i), INSTITUTIONS[i % 3])


def overdue(line: CreditLine, days: int = 40, amount: str = "1234.50") -> Any:
    return installment(line, timezone.localdate() - timedelta(days=days), amount)


def abnormal(line: CreditLine) -> None:
    from tests.factories import transfer

    d = drawdown(line, now() - timedelta(days=5), "10000.00")
    transfer(line, d.occurred_at + timedelta(days=1), "6000.00", "securities")


def stale(line: CreditLine) -> None:
    income_record(line, now() - timedelta(days=90), "5000.00")


FAMILIES = {
    # family: (events, what the Chinese page must say, what the English one must say)
    "MULTI_HEAD": (multi_head, ["向 3 家其他机构申请借款 5 次"], ["5 applications to 3 other lenders since"]),
    "OVERDUE": (overdue, ["到期的一期还款尚未还清：待还 ¥1,234.50"], ["is unpaid: ¥1,234.50 outstanding"]),
    "ABNORMAL_USE": (
        abnormal,
        ["借出的 ¥10,000.00 中，有 ¥6,000.00 随即转入证券"],
        ["Of the ¥10,000.00 you drew on", "¥6,000.00 went to securities soon after"],
    ),
    "PROFILE_STALE": (
        stale,
        ["显示您的月收入为 ¥5,000.00，而您资料中填写的是 ¥10,000.00"],
        ["shows a monthly income of ¥5,000.00, while your profile says ¥10,000.00"],
    ),
}
# The default rules' thresholds, as a page would write them: none may appear.
THRESHOLDS = [
    "30 天",
    "30 days",
    "4 次",
    "50%",
    "50.0%",
    "30%",
    "30.0%",
    "60 天",
    "60 days",
    "阈值",
    "threshold",
    "7 天",
    "7 days",
]


def flagged(family: str, **line_kwargs: Any) -> CreditLine:
    line = make_line(**line_kwargs)
    FAMILIES[family][0](line)
    evaluate_lines([line.pk])
    return CreditLine.objects.select_related("borrower").get(pk=line.pk)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_reason_is_stated_as_facts_about_the_borrowers_own_data_never_a_threshold(family):
    line = flagged(family)
    assert Signal.objects.filter(line=line, code=family, status=SignalStatus.ACTIVE).exists()
    client = Client()

    zh = page(client.get(status_path(line)))
    en = page(client.get(status_path(line) + "?lang=en"))

    for text in FAMILIES[family][1]:
        assert text in zh, zh
    for text in FAMILIES[family][2]:
        assert text in en, en
    for text in THRESHOLDS:
        assert text not in zh and text not in en, text
    assert f'id="reason-{family}"' in zh
    assert "每一份申诉都由专人审核" in zh and "a person reviews every appeal" in en
    guidance = Guidance.objects.filter(code=family).order_by("-version").first()
    assert guidance is not None and guidance.text_zh in zh and guidance.text_en in en


def test_the_page_says_when_it_was_decided_and_shows_the_open_appeals_progress():
    line = flagged("MULTI_HEAD")
    from tests.helpers import submit

    appeal = submit(line.cases.get(), [("proof.png", png())])
    text = page(Client().get(status_path(line) + "?lang=en"))
    assert "Your credit line is frozen" in text
    day = timezone.localdate(CreditLine.objects.get(pk=line.pk).frozen_since)
    assert f"Decided on {day:%B} {day.day}, {day.year}" in text or f"Decided on {day:%b}. {day.day}, {day.year}" in text
    assert f"Your appeal no. {appeal.pk} has been received" in text
    assert 'id="appeal-progress"' in text and "A person reviews it" in text


def test_every_view_is_audited_with_the_state_and_reasons_shown():
    line = flagged("OVERDUE")
    client = Client()
    before = AuditEvent.objects.filter(action="borrower.status_view").count()

    client.get(status_path(line))
    client.get(status_path(line) + "?lang=en")

    views = list(AuditEvent.objects.filter(action="borrower.status_view", account_id=line.pk).order_by("id"))
    assert len(views) == before + 2
    assert views[-1].actor_kind == "borrower" and views[-1].object_type == "credit_line"
    assert views[-1].after == {"state": "frozen", "reasons": ["OVERDUE"], "no_longer_holding": []}


def test_a_message_renews_the_link_and_every_message_carries_one():
    line = flagged("PROFILE_STALE")
    bodies = dict(Notification.objects.filter(line=line).values_list("kind", "body"))
    for kind in (NotificationKind.LIMIT_CUT, NotificationKind.PROFILE_UPDATE_REQUEST):
        token = re.search(r"/a/([^/\s]+)/", bodies[kind])
        assert token, bodies[kind]
        assert read_link(token[1], "l") == line.pk  # signed when the message was written: a new message, a new expiry
    overdue_line = flagged("OVERDUE", status="active")
    assert "/a/" in Notification.objects.get(line=overdue_line, kind=NotificationKind.FREEZE).body


# --- The profile update


def profile_post(line: CreditLine, files: list[tuple[str, bytes]] | None = None, **fields: str) -> Any:
    data: dict[str, Any] = {"employer": "杭州新公司有限公司", "monthly_income": "5000.00", **fields}
    if files:
        from django.core.files.uploadedfile import SimpleUploadedFile

        data["documents"] = [SimpleUploadedFile(name, body) for name, body in files]
    return Client().post(status_path(line) + "profile/", data)


def test_a_profile_update_with_an_income_document_clears_stale_profile_and_restores_the_cut():
    line = flagged("PROFILE_STALE")
    assert line.available == Decimal("10000.00")  # half of the 20,000 available
    case = Case.objects.get(line=line)

    response = profile_post(line, [("工资流水.pdf", pdf())])

    assert response.status_code == 302 and response["Location"].endswith("?updated=1")
    line.refresh_from_db()
    assert line.available == Decimal("15000.00")
    signal = Signal.objects.get(line=line, code="PROFILE_STALE")
    assert (signal.status, signal.clear_cause) == (SignalStatus.CLEARED, ClearCause.PROFILE_UPDATE)
    restore = LineChange.objects.get(line=line, kind="restore_available")
    assert restore.cause == LiftCause.BORROWER and restore.actor_kind == "engine"
    assert Notification.objects.filter(line=line, kind=NotificationKind.LIMIT_RESTORED_AUTO).count() == 1
    assert Case.objects.get(pk=case.pk).status == CaseStatus.RESOLVED
    update = ProfileUpdate.objects.get(line=line)
    assert (update.employer, update.monthly_income) == ("杭州新公司有限公司", Decimal("5000.00"))
    [document] = ProfileDocument.objects.filter(line=line)
    assert document.upstream_id == update.upstream_id and document.content_type == "application/pdf"
    assert document.original_name == "工资流水.pdf"
    [audit] = AuditEvent.objects.filter(action="borrower.profile_update", account_id=line.pk)
    assert audit.after == {
        "employer_changed": True,
        "income_changed": True,
        "documents": 1,
        "upstream_id": update.upstream_id,
    }
    shown = page(Client().get(response["Location"]))
    assert "谢谢，您的资料已更新" in shown and "您的额度可正常使用" in shown and "¥15,000.00" in shown


def test_the_cut_stays_when_the_rule_does_not_restore_on_clear():
    live_version({"PROFILE_STALE": {"restore_on_clear": False}})
    line = flagged("PROFILE_STALE")

    assert profile_post(line, [("payslip.png", png())]).status_code == 302

    line.refresh_from_db()
    assert Signal.objects.get(line=line, code="PROFILE_STALE").status == SignalStatus.CLEARED
    assert line.available == Decimal("10000.00")
    assert not LineChange.objects.filter(line=line, kind="restore_available").exists()


def test_a_freeze_is_never_lifted_by_a_cleared_reason_even_when_the_rule_restores_cuts():
    live_version({"MULTI_HEAD": {"restore_on_clear": True}})
    line = flagged("MULTI_HEAD")
    Signal.objects.filter(line=line).update(fired_at=now() - timedelta(days=60))
    evaluate_lines([line.pk], now=now() + timedelta(days=40))  # the inquiries have left the window
    line.refresh_from_db()
    assert Signal.objects.get(line=line, code="MULTI_HEAD").status == SignalStatus.CLEARED
    assert line.status == LineStatus.FROZEN


@pytest.mark.parametrize(
    ("fields", "files", "error"),
    [
        ({}, None, "您的收入有变化：请上传收入证明（工资单或银行流水）"),
        ({"monthly_income": "-1"}, None, "确保该值大于或等于0。"),
        ({"monthly_income": "20000000"}, None, "确保该值小于或等于10000000。"),
        ({"monthly_income": "很多"}, None, "输入一个数字。"),
        ({"employer": "x"}, None, "确保该变量至少包含 2 字符(目前字符数 1)。"),
        (
            {},
            [("payslip.html", b"<html><script>alert(1)</script></html>")],
            "payslip.html 不是完整的 PDF、PNG 或 JPEG 文件",
        ),
    ],
)
def test_a_bad_profile_update_is_refused_with_its_message_and_changes_nothing(fields, files, error):
    line = flagged("PROFILE_STALE")
    before = (Signal.objects.filter(line=line, status="active").count(), ProfileUpdate.objects.count())

    response = profile_post(line, files, **fields)

    assert response.status_code == 400
    assert error in page(response), page(response)
    line.refresh_from_db()
    assert line.available == Decimal("10000.00")
    assert (Signal.objects.filter(line=line, status="active").count(), ProfileUpdate.objects.count()) == before
    assert not ProfileDocument.objects.exists()


def test_saying_again_what_the_external_record_contradicts_needs_a_document():
    # Before, the declared ¥10,000 sent again needed no proof: it cleared the signal and gave back the cut on the
    # borrower's word against the record's ¥5,000.
    line = flagged("PROFILE_STALE")

    refused = profile_post(line, monthly_income="10000.00", employer=line.borrower.employer)

    assert refused.status_code == 400
    assert "我们的记录显示您的工作或收入信息有所不同：请上传收入证明（工资单或银行流水）" in page(refused)
    assert Signal.objects.get(line=line, code="PROFILE_STALE").status == SignalStatus.ACTIVE
    assert not ProfileUpdate.objects.filter(line=line).exists()
    proved = profile_post(line, [("payslip.png", png())], monthly_income="10000.00", employer=line.borrower.employer)
    assert proved.status_code == 302
    assert Signal.objects.get(line=line, code="PROFILE_STALE").status == SignalStatus.CLEARED


def test_an_update_that_agrees_with_the_record_and_keeps_the_income_needs_no_document():
    line = make_line(income="10000.00")
    income_record(line, now() - timedelta(days=90), "10000.00", employer="杭州另一家公司")  # a new employer
    evaluate_lines([line.pk])
    assert Signal.objects.get(line=line, code="PROFILE_STALE").status == SignalStatus.ACTIVE

    assert profile_post(line, monthly_income="10000.00", employer="杭州另一家公司").status_code == 302

    assert Signal.objects.get(line=line, code="PROFILE_STALE").status == SignalStatus.CLEARED


def test_a_repayment_through_the_api_makes_the_page_say_the_reason_no_longer_holds_and_a_person_reviews(
    django_capture_on_commit_callbacks,
):
    line = flagged("OVERDUE")
    owed = Signal.objects.get(line=line).evidence["events"]["installment"][0]
    from accounts.models import Installment

    installment_ = Installment.objects.get(pk=owed)
    feed = make_role_operator("integration", "ledger")
    with django_capture_on_commit_callbacks(execute=True):
        response = token_client(feed).post(
            "/api/v1/events/",
            {
                "items": [
                    {
                        "kind": "repayment",
                        "upstream_id": "pay-1",
                        "account": line.account_no,
                        "occurred_at": now().isoformat(),
                        "installment": installment_.upstream_id,
                        "amount": "1234.50",
                    }
                ]
            },
            format="json",
        )
    assert response.status_code == 201, response.content
    signal = Signal.objects.get(line=line, code="OVERDUE")
    assert (signal.status, signal.clear_cause) == (SignalStatus.CLEARED, ClearCause.REPAYMENT)

    text = page(Client().get(status_path(line)))

    assert CreditLine.objects.get(pk=line.pk).status == LineStatus.FROZEN
    assert 'id="lifted-OVERDUE"' in text and "逾期款项已还清" in text
    assert 'id="review-note"' in text and "会有专人复核您的额度" in text
    assert 'id="reason-OVERDUE"' not in text


# --- Guidance, kept by risk managers


def guidance_post(client: Client, code: str, zh: str, en: str) -> Any:
    return client.post(f"/guidance/{code}/", {f"{code}-text_zh": zh, f"{code}-text_en": en})


def test_a_risk_manager_publishes_a_new_version_that_the_page_shows_and_a_double_submit_publishes_once():
    manager = logged_in(make_role_operator("risk_manager", "rm"))
    line = flagged("OVERDUE")
    v1 = Guidance.objects.filter(code="OVERDUE").order_by("-version").get()  # the migration's first version

    for _ in range(2):
        response = guidance_post(manager, "OVERDUE", "请在本周内还清逾期款项。", "Please repay this week.")
        assert response.status_code == 302

    versions = list(Guidance.objects.filter(code="OVERDUE").order_by("version"))
    assert [g.version for g in versions] == [v1.version, v1.version + 1]
    assert "请在本周内还清逾期款项。" in page(Client().get(status_path(line)))
    assert "Please repay this week." in page(Client().get(status_path(line) + "?lang=en"))
    [audit] = AuditEvent.objects.filter(action="guidance.publish")
    assert (audit.before or {})["version"] == v1.version and (audit.after or {})["version"] == v1.version + 1
    assert "version 2 is what borrowers read now" in " ".join(
        messages_of(manager.get("/guidance/", headers={"accept-language": "en"}))
    )


def test_guidance_refuses_an_empty_or_too_long_text_and_an_analyst():
    manager = logged_in(make_role_operator("risk_manager", "rm"))
    before = Guidance.objects.count()
    empty = guidance_post(manager, "OVERDUE", "  ", "Please repay.")
    long = guidance_post(manager, "OVERDUE", "还" * 501, "Please repay.")
    analyst = guidance_post(logged_in(make_role_operator("analyst", "an")), "OVERDUE", "还款", "Repay")
    unknown = guidance_post(manager, "NOPE", "还款", "Repay")

    assert empty.status_code == 400 and "This field is required." in page(empty)
    assert long.status_code == 400 and "Ensure this value has at most 500 characters (it has 501)." in page(long)
    assert analyst.status_code == 403
    assert unknown.status_code == 302 and "Unknown reason: NOPE" in " ".join(messages_of(manager.get("/guidance/")))
    assert Guidance.objects.count() == before


# --- What the case page shows


def test_the_case_page_shows_what_the_borrower_saw_and_did():
    line = flagged("PROFILE_STALE")
    case = Case.objects.get(line=line)
    Client().get(status_path(line))
    profile_post(line, [("payslip.png", png())])
    senior = logged_in(make_role_operator("senior_reviewer", "sr"))

    text = page(senior.get(f"/cases/{case.pk}/", headers={"accept-language": "en"}))

    side = text[text.index('id="case-borrower-side"') :]
    assert "Read the explanation" in side and "Updated the profile" in side
    assert (
        "Message: available limit cut" in side
        and "Message: available limit restored: the reason no longer holds" in side
    )
    document = ProfileDocument.objects.get(line=line)
    assert (
        f'href="/portal/profile-documents/{document.pk}/?download=1"' in text
        or f'href="/profile-documents/{document.pk}/?download=1"' in text
    )
    download = senior.get(f"/profile-documents/{document.pk}/?download=1")
    assert download.status_code == 200 and download["Content-Type"] == "image/png"
    assert download["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert AuditEvent.objects.filter(action="document.view", object_type="profile_document").count() == 1


def _unfreeze_by_two_reviewers(line: CreditLine, reason_code: str) -> LineChange:
    from accounts.services import case_decide, decision_review
    from tests.helpers import op

    case = Case.objects.get(line=line)
    outcome = case_decide(
        case_id=case.pk,
        actor=op(make_role_operator("senior_reviewer", f"p{line.pk}")),
        kind="unfreeze",
        reason_code=reason_code,
        new_limit=line.limit,
        expected_version=None,
        idempotency_key=f"u{line.pk}",
    )
    if outcome.decision.status == "proposed":
        decision_review(
            decision_id=outcome.decision.pk,
            actor=op(make_role_operator("senior_reviewer", f"a{line.pk}")),
            approve=True,
        )
    assert CreditLine.objects.get(pk=line.pk).status == LineStatus.ACTIVE
    return LineChange.objects.get(line=line, kind="unfreeze")


def test_a_reviewers_unfreeze_after_the_borrower_repaid_is_recorded_as_the_borrowers_doing():
    repaid = flagged("OVERDUE")
    owed = Signal.objects.get(line=repaid).evidence["events"]["installment"][0]
    from accounts.models import Installment

    Installment.objects.filter(pk=owed).update(paid_amount=Decimal("1234.50"), paid_at=now())
    evaluate_lines([repaid.pk])
    assert Signal.objects.get(line=repaid).clear_cause == ClearCause.REPAYMENT
    overturned = flagged("MULTI_HEAD")  # still holds: the reviewers judge it wrong

    assert _unfreeze_by_two_reviewers(repaid, "repaid").cause == LiftCause.BORROWER
    assert _unfreeze_by_two_reviewers(overturned, "loans_closed").cause == ""


def test_the_overdue_reason_gives_the_upstreams_payment_reference_when_it_sent_one():
    line = make_line()
    due = overdue(line)
    from accounts.models import Installment

    Installment.objects.filter(pk=due.pk).update(payment_reference="PAY-2026-0042")
    evaluate_lines([line.pk])

    assert "还款编号 PAY-2026-0042" in page(Client().get(status_path(line)))
    assert "payment reference PAY-2026-0042" in page(Client().get(status_path(line) + "?lang=en"))


def test_a_link_preview_is_audited_as_such_not_as_the_borrower_reading():
    line = flagged("OVERDUE")

    Client().get(status_path(line), headers={"user-agent": "WhatsApp/2.23.20.0 A"})
    Client().get(status_path(line), headers={"user-agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile/15E148"})

    views = list(AuditEvent.objects.filter(action="borrower.status_view", account_id=line.pk).order_by("id"))
    assert [(v.after or {}).get("preview", False) for v in views] == [True, False]
    senior = logged_in(make_role_operator("senior_reviewer", "sr"))
    text = page(senior.get(f"/cases/{Case.objects.get(line=line).pk}/", headers={"accept-language": "en"}))
    assert "The link was fetched by a link preview, not read" in text and "Read the explanation" in text


def test_a_cut_whose_reason_cleared_without_a_restore_is_still_shown_as_a_cut_that_a_person_reviews():
    live_version({"PROFILE_STALE": {"restore_on_clear": False}})
    line = flagged("PROFILE_STALE")
    assert profile_post(line, [("payslip.png", png())]).status_code == 302

    text = page(Client().get(status_path(line)))

    # Before: "您的额度可正常使用" with half the amount missing, and no reason at all.
    assert "您的可用额度已下调" in text and "您的额度可正常使用" not in text
    assert 'id="lifted-PROFILE_STALE"' in text and 'id="review-note"' in text
    assert "下调可用额度的原因已不再成立" in text


def test_the_overdue_amount_is_everything_overdue_not_only_what_the_rule_cited():
    line = make_line()
    overdue(line, days=40, amount="1000.00")  # the freeze's evidence
    overdue(line, days=10, amount="234.50")  # overdue too, under the freeze's threshold
    evaluate_lines([line.pk])

    text = page(Client().get(status_path(line)))

    assert "2 期还款尚未还清" in text and "共待还 ¥1,234.50" in text


def test_a_restore_by_time_passing_thanks_nobody_for_an_update():
    line = flagged("PROFILE_STALE")
    evaluate_lines([line.pk], now=now() + timedelta(days=400))  # the record has left the lookback
    [restored] = Notification.objects.filter(line=line, kind=NotificationKind.LIMIT_RESTORED_AUTO)
    assert "下调额度的原因已不再成立" in restored.body and "感谢您及时更新信息" not in restored.body
    assert LineChange.objects.get(line=line, kind="restore_available").cause == ""
