"""Borrower appeals: intake (API and signed link), hostile documents, review, decisions, SLA aging, pages.

Lines are frozen by the real engine at the real clock; the API is called with a real token and a real multipart
body; the concurrency tests run real transactions on their own connections against PostgreSQL.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.core import signing
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import FileResponse
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services as case_services
from accounts.engine import evaluate_lines
from accounts.models import Case, CaseStatus, Decision, DecisionStatus, LineStatus, Notification, Signal
from appeals import links, services
from appeals.documents import MAX_BYTES, check_document
from appeals.models import Appeal, AppealAlert, AppealRuleOutcome
from riskops.core.audit import Actor
from riskops.core.errors import ConflictError, DomainError, NotAllowed
from riskops.models import AuditEvent
from tests.factories import (
    default_ruleset,
    flag,
    frozen_medium_only_case,
    frozen_multi_head_case,
    inquiry,
    make_line,
    make_operator,
    make_role_operator,
)
from tests.helpers import (
    BORROWER,
    NOTHING,
    OWN_PROPOSAL,
    STATEMENT,
    fresh,
    in_threads,
    jpeg,
    linked,
    logged_in,
    page,
    pdf,
    png,
    post_api,
    stored,
    submit,
    token_client,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ruleset")]

REPLY = "经人工复核您提交的其他借款结清证明，确认相关风险已解除，您的额度已恢复使用。"
HTML_BEHIND_PNG = b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>"
OPEN_APPEAL = "The borrower has an open appeal on this case; decide it from the appeal page"


# --- helpers


def decide_appeal(appeal: Appeal, user, outcome: str, reply: str = REPLY, **kwargs) -> Appeal:
    """Decide with the version the reviewer's form was rendered with (the appeal's current one)."""
    kwargs.setdefault("expected_version", Appeal.objects.get(pk=appeal.pk).version)
    return services.appeal_decide(
        appeal_id=appeal.pk, actor=Actor.operator(user), outcome=outcome, reply=reply, **kwargs
    )


def path_of(url: str) -> str:
    assert url.startswith(settings.PUBLIC_BASE_URL + "/a/"), url
    return url.removeprefix(settings.PUBLIC_BASE_URL)


def aged_token(kind: str, object_id: int, age_seconds: int) -> str:
    """A link token signed `age_seconds` ago, as links.py signs it."""

    class Aged(signing.TimestampSigner):
        def timestamp(self) -> str:
            return signing.b62_encode(int(time.time()) - age_seconds)

    return Aged(salt=links._SALT).sign(f"{kind}{object_id}")


def notice(line_id: int, kind: str) -> Notification:
    [n] = Notification.objects.filter(line_id=line_id, kind=kind)
    return n


# --- 1. idempotent intake over the API


def test_a_retried_request_with_the_same_idempotency_key_creates_exactly_one_appeal(integration):
    case = frozen_multi_head_case()
    client = token_client(integration)
    files = [("结清证明.pdf", pdf()), ("photo.png", png())]
    assert stored() == NOTHING

    first = post_api(client, case.line.account_no, files, key="req-1")
    second = post_api(client, case.line.account_no, files, key="req-1")

    assert (first.status_code, first.get("Idempotent-Replayed")) == (201, None)
    assert (second.status_code, second["Idempotent-Replayed"]) == (200, "true")
    assert second.json() == first.json()
    appeal = Appeal.objects.get()
    assert (first.json()["id"], appeal.case_id, appeal.channel, appeal.status, appeal.reason, appeal.statement) == (
        appeal.pk,
        case.pk,
        "api",
        "open",
        "loans_closed",
        STATEMENT,
    )
    assert appeal.idempotency_key == f"{integration.pk}:req-1"
    assert appeal.sla_due_at == appeal.submitted_at + timedelta(hours=72)
    docs = list(appeal.documents.order_by("pk").values_list("original_name", "content_type", "round"))
    assert docs == [("结清证明.pdf", "application/pdf", 0), ("photo.png", "image/png", 0)]
    assert stored()[1:] == (2, sorted(appeal.documents.values_list("stored_name", flat=True)), 1, 1)
    event = AuditEvent.objects.get(action="appeal.submit")
    assert (event.object_id, event.account_id, event.actor_user_id, event.after) == (
        appeal.pk,
        case.line_id,
        integration.pk,
        {"reason": "loans_closed", "channel": "api", "documents": 2, "case_id": case.pk},
    )
    received = notice(case.line_id, "appeal_received")
    assert linked(received.body, received.line_id) == (
        f"【借呗】我们已收到您的申诉（编号 {appeal.pk}），将在 72 小时内处理并告知结果。查看进度："
    )
    assert (fresh(case).appeal_state, fresh(case).appeal_due_at) == ("open", appeal.sla_due_at)


@pytest.mark.parametrize(
    "change", [{"statement": "另一份说明"}, {"files": [("photo.png", png())]}, {"reason": "income_proof"}]
)
def test_the_same_idempotency_key_with_a_different_request_is_a_conflict(integration, change):
    case = frozen_multi_head_case()
    client = token_client(integration)
    assert post_api(client, case.line.account_no, [("结清证明.pdf", pdf())], key="req-1").status_code == 201
    before = stored()

    response = post_api(client, case.line.account_no, **{"files": [("结清证明.pdf", pdf())], "key": "req-1", **change})

    assert response.status_code == 409
    assert response.json() == {"detail": "This Idempotency-Key was already used for a different appeal"}
    assert stored() == before


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("keys", "statuses"), [(("same", "same"), [200, 201]), (("one", "two"), [201, 409])])
def test_two_requests_posted_at_the_same_moment_create_one_appeal(keys, statuses):
    default_ruleset()
    integration = make_role_operator("integration", "lending-app")
    clients = [token_client(integration), token_client(integration)]
    for i in range(3):
        case = frozen_multi_head_case()
        account = case.line.account_no

        responses = in_threads(
            *(
                lambda c=c, account=account, key=f"{k}-{i}": post_api(c, account, [("a.pdf", pdf())], key=key)
                for c, k in zip(clients, keys, strict=True)
            )
        )

        assert sorted(r.status_code for r in responses) == statuses, [r.content for r in responses]
        [appeal] = Appeal.objects.filter(case=case)
        assert appeal.documents.count() == 1
        assert AuditEvent.objects.filter(action="appeal.submit", object_id=appeal.pk).count() == 1
        assert Notification.objects.filter(line=case.line, kind="appeal_received").count() == 1
    assert len(stored()[2]) == 3  # one file per appeal, none left over from the loser


# --- 2. documents are hostile until proven otherwise


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([("evil.png", HTML_BEHIND_PNG)], "evil.png is not a complete PDF, PNG or JPEG file"),
        ([("setup.pdf", b"MZ\x90\x00\x03" + b"\x00" * 200)], "setup.pdf is not a complete PDF, PNG or JPEG file"),
        ([("empty.pdf", b"")], "empty.pdf is empty"),
        ([("cut.pdf", pdf()[:-8])], "cut.pdf is not a complete PDF, PNG or JPEG file"),
        ([(f"{i}.png", png()) for i in range(5)], "at most 5 documents at a time (6 sent)"),
        ([("big.pdf", b"%PDF-1.4\n" + b"0" * MAX_BYTES + b"\n%%EOF\n")], "big.pdf is larger than 10 MB"),
        # Django cuts "../../" off before any view sees the name; appeals.middleware keeps it for this check.
        ([("../../x.pdf", pdf())], "the file name '../../x.pdf' contains a path; send the file itself"),
    ],
    ids=["png-header-html", "exe-as-pdf", "empty", "truncated-pdf", "six-files", "over-10-mb", "path-in-name"],
)
def test_a_hostile_file_over_the_api_is_refused_and_nothing_is_stored(integration, files, message):
    case = frozen_multi_head_case()

    # A good file first: one bad file refuses the whole upload.
    response = post_api(token_client(integration), case.line.account_no, [("good.pdf", pdf()), *files])

    assert (response.status_code, response.json()) == (400, {"detail": message})
    assert stored() == NOTHING
    assert fresh(case).appeal_state == ""


def test_a_hostile_file_on_the_borrower_page_is_refused_and_nothing_is_stored():
    case = frozen_multi_head_case()
    path = path_of(links.appeal_link(case.line_id)) + "?lang=en"
    upload = [SimpleUploadedFile("good.pdf", pdf()), SimpleUploadedFile("evil.png", HTML_BEHIND_PNG)]

    response = Client().post(path, {"reason": "repaid", "statement": STATEMENT, "documents": upload})

    assert response.status_code == 400
    assert '<p class="error" role="alert" id="error">evil.png is not a complete PDF, PNG or JPEG file</p>' in page(
        response
    )
    assert 'id="appeal-form"' in page(response)
    assert stored() == NOTHING


# --- 3. intake refusals


@pytest.mark.parametrize(
    ("line_kind", "message"),
    [
        ("unknown", "No account with this reference"),
        ("closed", "This account is closed; it cannot be appealed"),
        ("active", "This account is not frozen; there is nothing to appeal"),
        (
            "frozen_without_case",
            "No review of this account is open, so it cannot be appealed now; please contact customer service",
        ),
    ],
)
def test_an_appeal_for_an_account_that_cannot_be_appealed_is_refused(integration, line_kind, message):
    account = {
        "unknown": lambda: "JB9999999999",
        "closed": lambda: make_line(status="closed").account_no,
        "active": lambda: make_line().account_no,
        "frozen_without_case": lambda: make_line(status="frozen").account_no,
    }[line_kind]()

    response = post_api(token_client(integration), account, [("a.pdf", pdf())], key="k1")

    assert (response.status_code, response.json()) == (400, {"detail": message})
    assert stored() == NOTHING


def test_a_second_appeal_while_one_is_open_is_a_conflict(integration):
    case = frozen_multi_head_case()
    client = token_client(integration)
    first = post_api(client, case.line.account_no, key="k1").json()["id"]
    before = stored()

    response = post_api(client, case.line.account_no, key="k2", statement="再说一遍")

    assert response.status_code == 409
    assert response.json() == {
        "detail": f"An appeal for this account (no. {first}) is already being reviewed; we will reply to it"
    }
    assert stored() == before


@pytest.mark.parametrize(
    ("reason", "statement", "message"),
    [
        (
            "bribe",
            STATEMENT,
            "Choose a reason for the appeal (one of: repaid, loans_closed, income_proof, transfer_explained, "
            "profile_updated, other)",
        ),
        ("repaid", "  \n ", "Write a statement: what happened, and why the freeze should be lifted"),
        ("repaid", "长" * 2001, "The statement is too long (at most 2000 characters)"),
    ],
)
def test_a_bad_reason_or_statement_is_refused_with_a_clear_message(reason, statement, message):
    case = frozen_multi_head_case()

    with pytest.raises(DomainError) as excinfo:
        services.appeal_submit(
            line_id=case.line_id, reason=reason, statement=statement, files=[], channel="link", actor=BORROWER
        )

    assert str(excinfo.value) == message
    assert stored() == NOTHING


@pytest.mark.parametrize(
    ("reason", "statement", "body"),
    [
        (
            "bribe",
            STATEMENT,
            {
                "detail": 'reason: "bribe" is not a valid choice.',
                "errors": [{"field": "reason", "message": '"bribe" is not a valid choice.'}],
            },
        ),
        (
            "repaid",
            "",
            {
                "detail": "statement: This field may not be blank.",
                "errors": [{"field": "statement", "message": "This field may not be blank."}],
            },
        ),
    ],
)
def test_the_api_refuses_a_bad_reason_or_an_empty_statement(integration, reason, statement, body):
    case = frozen_multi_head_case()

    response = post_api(token_client(integration), case.line.account_no, reason=reason, statement=statement)

    assert (response.status_code, response.json()) == (400, body)
    assert stored() == NOTHING


@pytest.mark.parametrize(
    ("who", "status", "detail"),
    [
        ("nobody", 401, "Authentication credentials were not provided."),
        ("bad-token", 401, "Invalid token."),
        ("analyst", 403, "This token may not submit or read appeals"),
    ],
)
def test_the_api_needs_the_token_of_the_integration(who, status, detail):
    case = frozen_multi_head_case()
    client = APIClient()
    if who == "bad-token":
        client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    elif who == "analyst":
        client = token_client(make_role_operator("analyst"))

    response = post_api(client, case.line.account_no, [("a.pdf", pdf())])

    assert (response.status_code, response.json()) == (status, {"detail": detail})
    assert stored() == NOTHING


# --- 4. the borrower's signed link


def test_the_link_shows_the_form_in_chinese_by_default_and_in_english_on_request():
    case = frozen_multi_head_case()
    path = path_of(links.appeal_link(case.line_id))

    chinese, english = Client().get(path), Client().get(path + "?lang=en")

    assert (chinese.status_code, english.status_code) == (200, 200)
    assert '<html lang="zh-hans">' in page(chinese)
    assert '<html lang="en">' in page(english)
    for body in (page(chinese), page(english)):
        assert 'id="appeal-form"' in body
        assert case.line.account_no[-4:] in body
        assert case.line.account_no not in body
    assert ("申请解除冻结" in page(chinese), "Ask us to lift the freeze" in page(chinese)) == (True, False)
    assert "Ask us to lift the freeze" in page(english)


@pytest.mark.parametrize("how", ["tampered", "other-kind", "garbage"])
def test_a_tampered_link_is_a_404_page(how):
    case = frozen_multi_head_case()
    token = path_of(links.appeal_link(case.line_id)).split("/")[2]
    token = {
        "tampered": token[:-1] + ("A" if token[-1] != "A" else "B"),
        "other-kind": path_of(links.more_info_link(case.line_id)).split("/")[3],  # an appeal id, not a line
        "garbage": "not-a-token",
    }[how]

    response = Client().get(f"/a/{token}/?lang=en")

    assert response.status_code == 404
    assert "This link is not valid" in page(response)
    assert 'id="appeal-form"' not in page(response)


def test_an_expired_link_is_410_and_one_just_inside_its_validity_still_opens(settings):
    settings.APPEAL_LINK_DAYS = 3
    case = frozen_multi_head_case()

    expired = Client().get(f"/a/{aged_token('l', case.line_id, 3 * 86400 + 60)}/?lang=en")
    valid = Client().get(f"/a/{aged_token('l', case.line_id, 3 * 86400 - 60)}/?lang=en")

    assert expired.status_code == 410
    assert "This link has expired" in page(expired)
    assert (valid.status_code, 'id="appeal-form"' in page(valid)) == (200, True)


def test_after_appealing_on_the_page_the_borrower_sees_the_status_instead_of_the_form():
    case = frozen_multi_head_case()
    path = path_of(links.appeal_link(case.line_id)) + "?lang=en"
    client = Client()
    upload = [SimpleUploadedFile("银行流水.pdf", pdf()), SimpleUploadedFile("IMG_0001.JPG", jpeg())]

    response = client.post(path, {"reason": "repaid", "statement": STATEMENT, "documents": upload})

    assert (response.status_code, response["Location"]) == (302, path)
    appeal = Appeal.objects.get()
    assert (appeal.case_id, appeal.channel, appeal.reason, appeal.idempotency_key) == (case.pk, "link", "repaid", None)
    assert list(appeal.documents.order_by("pk").values_list("content_type", flat=True)) == [
        "application/pdf",
        "image/jpeg",
    ]
    assert AuditEvent.objects.get(action="appeal.submit").actor_kind == "borrower"
    body = page(client.get(path))
    assert f"Your appeal no. {appeal.pk} has been received" in body
    assert 'id="appeal-form"' not in body
    # Posting the form again does nothing.
    assert client.post(path, {"reason": "repaid", "statement": STATEMENT}).status_code == 200
    assert Appeal.objects.count() == 1


def test_the_freeze_message_carries_a_link_that_opens_that_lines_appeal_page():
    case = frozen_multi_head_case()
    body = notice(case.line_id, "freeze").body

    [url] = re.findall(r"https?://\S+/a/[^/\s]+/", body)
    response = Client().get(path_of(url))

    assert response.status_code == 200
    assert 'id="appeal-form"' in page(response)
    assert response.context["line"].pk == case.line_id


# --- 5. request more information


def test_requesting_more_information_pauses_the_sla_until_the_borrower_answers(analyst):
    case = frozen_multi_head_case()
    appeal = submit(case, [("结清证明.pdf", pdf())])
    due = appeal.sla_due_at

    decide_appeal(appeal, analyst, "request_info", reply="请补充其他机构出具的借款结清证明。")

    appeal = fresh(appeal)
    assert (appeal.status, appeal.info_request, appeal.sla_due_at, appeal.version) == (
        "awaiting_info",
        "请补充其他机构出具的借款结清证明。",
        due,
        2,
    )
    assert appeal.sla_paused_at == appeal.updated_at
    assert fresh(case).appeal_state == "awaiting_info"
    body = notice(case.line_id, "appeal_more_info").body
    head = f"【借呗】关于您的申诉（编号 {appeal.pk}）：请补充其他机构出具的借款结清证明。 请通过此链接补充材料："
    assert body.startswith(head)
    path = path_of(body.removeprefix(head))
    assert path.startswith("/a/more/")
    client = Client()
    assert "请补充其他机构出具的借款结清证明。" in page(client.get(path))

    # The borrower answers five hours later.
    paused_at = timezone.now() - timedelta(hours=5)
    Appeal.objects.filter(pk=appeal.pk).update(sla_paused_at=paused_at)
    upload = [SimpleUploadedFile("招商银行结清证明.png", png())]
    response = client.post(path, {"note": "已补充结清证明", "documents": upload})

    assert (response.status_code, response["Location"]) == (302, path)
    appeal = fresh(appeal)
    added = appeal.documents.get(round=1)
    waited = added.uploaded_at - paused_at
    assert timedelta(hours=5) < waited < timedelta(hours=5, minutes=1)
    assert (appeal.status, appeal.sla_paused_at, appeal.sla_due_at, appeal.info_reply) == (
        "open",
        None,
        due + waited,
        "已补充结清证明",
    )
    assert sorted(appeal.documents.values_list("round", flat=True)) == [0, 1]
    assert (fresh(case).appeal_state, fresh(case).appeal_due_at) == ("open", due + waited)
    event = AuditEvent.objects.get(action="appeal.more_info_received")
    assert (event.actor_kind, event.after) == (
        "borrower",
        {"status": "open", "documents": 1, "sla_paused_seconds": int(waited.total_seconds())},
    )
    assert 'id="more-info-form"' not in page(client.get(path))


def test_documents_are_not_added_to_an_appeal_that_is_not_waiting_for_them():
    case = frozen_multi_head_case()
    appeal = submit(case)
    path = path_of(links.more_info_link(appeal.pk))
    before = (stored(), fresh(appeal).version)

    with pytest.raises(ConflictError) as excinfo:
        services.appeal_add_documents(appeal_id=appeal.pk, files=[("a.pdf", pdf())], note="补充", actor=BORROWER)
    response = Client().post(path, {"note": "补充", "documents": [SimpleUploadedFile("a.pdf", pdf())]})

    assert str(excinfo.value) == "This appeal is not waiting for more information"
    assert response.status_code == 200
    assert 'id="more-info-form"' not in page(response)
    assert (stored(), fresh(appeal).version) == before


# --- 6. SLA aging


@pytest.mark.parametrize(("hours_left", "priority"), [(13, 0), (11, 1), (-0.01, 2)])
def test_aging_raises_the_priority_as_the_deadline_nears(senior, hours_left, priority):
    appeal = submit(frozen_multi_head_case())

    services.appeals_age(now=appeal.sla_due_at - timedelta(hours=hours_left))

    assert fresh(appeal).priority == priority
    assert AppealAlert.objects.exists() == (priority == 2)


def test_a_breach_alerts_each_senior_reviewer_and_risk_manager_once(senior, senior2, analyst):
    manager = make_role_operator("risk_manager", "rim")
    retired = make_role_operator("senior_reviewer", "old")
    retired.is_active = False
    retired.save()
    appeal = submit(frozen_multi_head_case())
    later = submit(frozen_multi_head_case())
    Appeal.objects.filter(pk=later.pk).update(sla_due_at=appeal.sla_due_at + timedelta(days=1))

    result = services.appeals_age(now=appeal.sla_due_at + timedelta(minutes=1))

    assert result == {"priority_changed": 1, "breached": 1, "unanswered": 0}
    alerts = set(AppealAlert.objects.values_list("appeal_id", "recipient_id", "read_at"))
    assert alerts == {(appeal.pk, u.pk, None) for u in (senior, senior2, manager)}
    [event] = AuditEvent.objects.filter(action="appeal.sla_breach")
    assert (event.object_id, event.actor_kind, event.after) == (
        appeal.pk,
        "system",
        {"sla_due_at": appeal.sla_due_at.isoformat(), "seniors_alerted": 3},
    )
    assert (fresh(appeal).priority, fresh(later).priority) == (2, 0)

    again = services.appeals_age(now=appeal.sla_due_at + timedelta(hours=2))

    assert again == {"priority_changed": 0, "breached": 0, "unanswered": 0}
    assert AppealAlert.objects.count() == 3
    assert AuditEvent.objects.filter(action="appeal.sla_breach").count() == 1


def test_a_breach_with_no_senior_to_tell_waits_and_alerts_the_first_senior_there_is(analyst):
    appeal = submit(frozen_multi_head_case())
    breached = appeal.sla_due_at + timedelta(minutes=1)

    alone = services.appeals_age(now=breached)

    assert alone["breached"] == 1  # seen, but nobody to tell: not marked alerted
    assert fresh(appeal).breach_notified_at is None and not AppealAlert.objects.exists()
    assert not AuditEvent.objects.filter(action="appeal.sla_breach").exists()
    senior = make_role_operator("senior_reviewer", "new")
    services.appeals_age(now=breached + timedelta(minutes=10))
    assert list(AppealAlert.objects.values_list("appeal_id", "recipient_id")) == [(appeal.pk, senior.pk)]
    assert fresh(appeal).breach_notified_at == breached + timedelta(minutes=10)


def test_an_appeal_waiting_for_the_borrower_is_neither_aged_nor_breached(senior, analyst):
    appeal = submit(frozen_multi_head_case())
    decide_appeal(appeal, analyst, "request_info", reply="请补充材料。")

    result = services.appeals_age(now=appeal.sla_due_at + timedelta(days=2))

    assert result == {"priority_changed": 0, "breached": 0, "unanswered": 0}
    appeal = fresh(appeal)
    assert (appeal.status, appeal.priority, appeal.breach_notified_at) == ("awaiting_info", 0, None)
    assert not AppealAlert.objects.exists()
    assert not AuditEvent.objects.filter(action="appeal.sla_breach").exists()


def test_an_unanswered_request_for_information_returns_the_appeal_to_review_when_its_link_expires(settings, analyst):
    case = frozen_multi_head_case()
    appeal = submit(case)
    decide_appeal(appeal, analyst, "request_info", reply="请补充材料。")
    appeal = fresh(appeal)
    paused_at, due = appeal.sla_paused_at, appeal.sla_due_at
    assert paused_at is not None and due is not None
    expiry = paused_at + timedelta(days=settings.APPEAL_LINK_DAYS)

    # One minute before the link expires nothing moves; the borrower may still answer.
    assert services.appeals_age(now=expiry - timedelta(minutes=1))["unanswered"] == 0
    assert fresh(appeal).status == "awaiting_info"

    now = expiry + timedelta(minutes=1)
    result = services.appeals_age(now=now)

    assert result["unanswered"] == 1
    appeal = fresh(appeal)
    assert (appeal.status, appeal.sla_paused_at, appeal.sla_due_at, appeal.version) == (
        "open",
        None,
        due + (now - paused_at),
        3,
    )
    assert (fresh(case).appeal_state, fresh(case).appeal_due_at) == ("open", appeal.sla_due_at)
    event = AuditEvent.objects.get(action="appeal.more_info_unanswered")
    assert event.before is not None and event.after is not None
    assert (event.actor_kind, event.object_id, event.before["status"], event.after["status"]) == (
        "system",
        appeal.pk,
        "awaiting_info",
        "open",
    )
    # The reviewer sees why it is back, and can decide it now.
    body = page(logged_in(analyst).get(f"/appeals/{appeal.pk}/"))
    assert f"The borrower did not answer within {settings.APPEAL_LINK_DAYS} days" in body
    decide_appeal(appeal, analyst, "reject", reply="未收到补充材料，维持原决定。")
    assert fresh(appeal).status in ("rejected", "awaiting_approval")
    # A second run finds nothing more to do.
    assert services.appeals_age(now=now + timedelta(minutes=5))["unanswered"] == 0


def test_the_inbox_shows_a_senior_their_breach_alerts_until_marked_read(senior, analyst):
    appeal = submit(frozen_multi_head_case())
    services.appeals_age(now=appeal.sla_due_at + timedelta(minutes=1))
    client = logged_in(senior)
    alert = f"Appeal #{appeal.pk} ({appeal.line.account_no}) passed its deadline"

    assert alert in page(client.get("/appeals/"))
    assert 'id="alerts"' not in page(logged_in(analyst).get("/appeals/"))

    response = client.post("/appeals/alerts/read/")

    assert (response.status_code, response["Location"]) == (302, "/appeals/")
    assert AppealAlert.objects.get(recipient=senior).read_at is not None
    assert alert not in page(client.get("/appeals/"))


# --- 7. decisions


def test_approving_an_appeal_against_a_high_severity_freeze_waits_for_a_second_senior_reviewer(analyst, senior):
    case = frozen_multi_head_case()
    line = case.line
    signal = Signal.objects.get(line=line, code="MULTI_HEAD")
    appeal = submit(case)

    proposed = decide_appeal(appeal, analyst, "approve")

    assert proposed.status == "awaiting_approval"
    assert proposed.decision is not None
    decision = fresh(proposed.decision)
    assert (decision.status, decision.kind, decision.proposed_by_id) == (
        DecisionStatus.PROPOSED,
        "unfreeze",
        analyst.pk,
    )
    assert fresh(line).status == LineStatus.FROZEN
    assert (fresh(case).status, fresh(case).appeal_state) == (CaseStatus.AWAITING_APPROVAL, "awaiting_approval")
    assert not Notification.objects.filter(line=line, kind__in=["appeal_approved", "appeal_rejected"]).exists()
    assert not AppealRuleOutcome.objects.exists()

    case_services.decision_review(decision_id=decision.pk, actor=Actor.operator(senior), approve=True)

    appeal = fresh(appeal)
    assert (appeal.status, appeal.reply, appeal.decided_at is not None) == ("approved", REPLY, True)
    assert (fresh(line).status, fresh(line).limit) == (LineStatus.ACTIVE, Decimal("20000.00"))
    assert (fresh(case).status, fresh(case).outcome, fresh(case).appeal_state) == ("resolved", "unfrozen", "")
    assert (
        linked(notice(line.pk, "appeal_approved").body, line.pk)
        == f"【借呗】您的申诉（编号 {appeal.pk}）已通过。{REPLY} 详情："
    )
    outcomes = list(AppealRuleOutcome.objects.values_list("appeal_id", "signal_id", "code", "outcome"))
    assert outcomes == [(appeal.pk, signal.pk, "MULTI_HEAD", "overturned")]
    assert list(
        AuditEvent.objects.filter(object_type="appeal").order_by("pk").values_list("action", "actor_user_id")
    ) == [("appeal.submit", None), ("appeal.decide", analyst.pk), ("appeal.review", senior.pk)]


def test_an_approved_appeal_is_not_refrozen_on_the_same_events_but_is_on_a_new_one(analyst, senior):
    case = frozen_multi_head_case()
    line = case.line
    decision = decide_appeal(submit(case), analyst, "approve").decision
    assert decision is not None
    case_services.decision_review(decision_id=decision.pk, actor=Actor.operator(senior), approve=True)
    assert fresh(line).status == LineStatus.ACTIVE

    evaluate_lines([line.pk])

    assert fresh(line).status == LineStatus.ACTIVE
    assert not Case.objects.filter(line=line).exclude(status="resolved").exists()

    inquiry(line, timezone.now() - timedelta(hours=1), "度小满")
    evaluate_lines([line.pk])

    assert fresh(line).status == LineStatus.FROZEN
    assert Case.objects.filter(line=line).exclude(status="resolved").count() == 1


def test_the_proposer_of_an_appeal_approval_cannot_approve_it_themselves(senior):
    case = frozen_multi_head_case()
    appeal = decide_appeal(submit(case), senior, "approve")
    assert appeal.decision_id is not None

    with pytest.raises(NotAllowed) as excinfo:
        case_services.decision_review(decision_id=appeal.decision_id, actor=Actor.operator(senior), approve=True)

    assert str(excinfo.value) == OWN_PROPOSAL
    assert (fresh(appeal).status, fresh(case.line).status) == ("awaiting_approval", LineStatus.FROZEN)


def test_a_second_reviewer_rejecting_the_proposal_puts_the_appeal_back_in_review(analyst, senior):
    case = frozen_multi_head_case()
    appeal = decide_appeal(submit(case), analyst, "approve")
    decision_id = appeal.decision_id
    assert decision_id is not None

    case_services.decision_review(decision_id=decision_id, actor=Actor.operator(senior), approve=False)

    appeal = fresh(appeal)
    assert (appeal.status, appeal.decision_id, appeal.reply) == ("open", None, REPLY)
    assert Decision.objects.get(pk=decision_id).status == DecisionStatus.REJECTED
    assert (fresh(case).status, fresh(case).appeal_state, fresh(case.line).status) == ("open", "open", "frozen")
    assert not Notification.objects.filter(kind__in=["appeal_approved", "appeal_rejected"]).exists()

    # It can be decided again.
    assert decide_appeal(appeal, analyst, "reject").status == "rejected"


def test_approving_a_proposal_made_before_the_appeal_arrived_does_not_leave_the_appeal_open(analyst, senior):
    case = frozen_multi_head_case()
    proposal = case_services.case_decide(
        case_id=case.pk,
        actor=Actor.operator(analyst),
        kind="unfreeze",
        reason_code="income_verified",
        expected_version=None,
        idempotency_key=uuid.uuid4().hex,
    ).decision
    appeal = submit(case)  # the case awaits approval, it is not resolved: the borrower may appeal

    case_services.decision_review(decision_id=proposal.pk, actor=Actor.operator(senior), approve=True)

    assert (fresh(case.line).status, fresh(case).status) == (LineStatus.ACTIVE, CaseStatus.RESOLVED)
    # The appeal is settled with the proposal: approved, the template reply for its reason, the borrower told.
    assert (fresh(appeal).is_open, fresh(case).appeal_state) == (False, "")
    assert (fresh(appeal).status, fresh(appeal).decision_id) == ("approved", proposal.pk)
    assert notice(case.line_id, "appeal_approved").body.startswith(
        f"【借呗】您的申诉（编号 {appeal.pk}）已通过。经人工复核"
    )


@pytest.mark.parametrize(
    ("outcome", "new_limit", "status", "limit"),
    [
        ("approve", None, "approved", Decimal("20000.00")),
        ("approve_in_part", Decimal("12000.00"), "approved_in_part", Decimal("12000.00")),
    ],
)
def test_without_a_high_signal_an_approval_applies_at_once(analyst, outcome, new_limit, status, limit):
    case = frozen_medium_only_case()
    appeal = submit(case, reason="profile_updated")
    reply = "您的额度已恢复使用，额度调整为 ¥{limit}。" if new_limit else REPLY

    decided = decide_appeal(appeal, analyst, outcome, reply=reply, new_limit=new_limit)

    assert decided.decision is not None
    assert (decided.status, decided.decided_by_id, decided.decision.status) == (status, analyst.pk, "applied")
    assert (fresh(case.line).status, fresh(case.line).limit) == (LineStatus.ACTIVE, limit)
    assert (fresh(case).status, fresh(case).appeal_state) == ("resolved", "")
    expected = "您的额度已恢复使用，额度调整为 ¥12,000.00。" if new_limit else REPLY
    assert (
        linked(notice(case.line_id, "appeal_approved").body, case.line_id)
        == f"【借呗】您的申诉（编号 {appeal.pk}）已通过。{expected} 详情："
    )
    # A PROFILE_STALE cut does not freeze, so unfreezing overturns nothing.
    assert list(AppealRuleOutcome.objects.values_list("code", "outcome")) == [("PROFILE_STALE", "upheld")]


@pytest.mark.parametrize("new_limit", [None, Decimal("0.00"), Decimal("20000.00"), Decimal("25000.00")])
def test_approving_in_part_needs_a_limit_below_the_current_one(analyst, new_limit):
    case = frozen_medium_only_case()
    appeal = submit(case)
    before = (stored(), fresh(appeal).version, fresh(case.line).status)

    with pytest.raises(DomainError) as excinfo:
        decide_appeal(appeal, analyst, "approve_in_part", new_limit=new_limit)

    assert str(excinfo.value) == "Approving in part needs a new limit above ¥0.00 and below the current ¥20,000.00"
    assert (stored(), fresh(appeal).version, fresh(case.line).status) == before
    assert not Decision.objects.exists()


def test_rejecting_keeps_the_line_frozen_resolves_the_case_and_tells_the_borrower(analyst):
    case = frozen_multi_head_case()
    appeal = submit(case)
    reply = "经人工复核，暂不能确认相关风险已解除，额度将继续冻结。"

    decided = decide_appeal(appeal, analyst, "reject", reply=reply)

    assert decided.decision is not None
    assert (decided.status, decided.decision.kind, decided.decision.status) == ("rejected", "keep_frozen", "applied")
    assert fresh(case.line).status == LineStatus.FROZEN
    assert (fresh(case).status, fresh(case).outcome, fresh(case).appeal_state) == ("resolved", "kept_frozen", "")
    assert (
        linked(notice(case.line_id, "appeal_rejected").body, case.line_id)
        == f"【借呗】您的申诉（编号 {appeal.pk}）未获通过。{reply} 详情："
    )
    assert list(AppealRuleOutcome.objects.values_list("code", "outcome")) == [("MULTI_HEAD", "upheld")]


def test_a_reviewer_decides_on_the_appeal_page_and_a_stale_form_changes_nothing(analyst, auditor):
    case = frozen_medium_only_case()
    appeal = submit(case)
    url = f"/appeals/{appeal.pk}/decide/"
    form = {"outcome": "reject", "reply": "暂不能确认相关风险已解除。", "version": appeal.version}
    client = logged_in(analyst)

    decided = client.post(url, form, headers={"accept-language": "en"})
    stale = client.post(url, {**form, "outcome": "approve"}, headers={"accept-language": "en"}, follow=True)
    denied = logged_in(auditor).post(url, form, headers={"accept-language": "en"})

    assert (decided.status_code, decided["Location"]) == (302, f"/appeals/{appeal.pk}/")
    assert (fresh(appeal).status, fresh(appeal).reply) == ("rejected", "暂不能确认相关风险已解除。")
    assert "This appeal was already decided: rejected" in page(stale)
    assert (denied.status_code, "Your role cannot decide appeals" in page(denied)) == (403, True)
    assert Decision.objects.filter(case=case).count() == 1
    assert fresh(case.line).status == LineStatus.FROZEN


# --- 8. two reviewers at once


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_deciding_the_same_appeal_at_once_make_one_decision():
    default_ruleset()
    ana, bo = make_role_operator("analyst", "ana"), make_role_operator("analyst", "bo")
    for _ in range(3):
        case = frozen_medium_only_case()
        appeal = submit(case)

        results = in_threads(
            lambda appeal=appeal: decide_appeal(appeal, ana, "reject", expected_version=1),
            lambda appeal=appeal: decide_appeal(appeal, bo, "approve", expected_version=1),
        )

        [winner] = [r for r in results if isinstance(r, Appeal)]
        [loser] = [r for r in results if isinstance(r, ConflictError)]
        assert str(loser) == f"This appeal was already decided: {winner.status}"
        [decision] = Decision.objects.filter(case=case)
        assert fresh(appeal).decision_id == decision.pk
        assert AuditEvent.objects.filter(action="appeal.decide", object_id=appeal.pk).count() == 1
        assert Notification.objects.filter(line=case.line, kind__in=["appeal_approved", "appeal_rejected"]).count() == 1
        assert fresh(case.line).status == (LineStatus.ACTIVE if winner.status == "approved" else LineStatus.FROZEN)


# --- 9. the case page does not settle what the appeal asks


@pytest.mark.parametrize(("kind", "new_limit"), [("keep_frozen", None), ("unfreeze", None), ("cut_limit", "10000.00")])
def test_a_case_with_an_open_appeal_is_settled_only_from_the_appeal(analyst, kind, new_limit):
    case = flag(make_line(), "MULTI_HEAD", "OVERDUE", overdue_days=10)  # the overdue part is a low reminder
    submit(case)
    before = (fresh(case).status, fresh(case).version, fresh(case.line).status)

    def case_decide(kind, new_limit=None):
        return case_services.case_decide(
            case_id=case.pk,
            actor=Actor.operator(analyst),
            kind=kind,
            reason_code="other",
            new_limit=new_limit,
            expected_version=None,
            idempotency_key=uuid.uuid4().hex,
        )

    with pytest.raises(DomainError) as excinfo:
        case_decide(kind, Decimal(new_limit) if new_limit else None)

    assert str(excinfo.value) == OPEN_APPEAL
    assert (fresh(case).status, fresh(case).version, fresh(case.line).status) == before
    assert not Decision.objects.exists()
    assert case_decide("remind").applied
    assert Appeal.objects.get().status == "open"


# --- 10. documents served to operators only


def test_an_operator_gets_a_document_with_safe_headers_and_each_view_is_audited(analyst):
    appeal = submit(frozen_multi_head_case(), [("payslip.pdf", pdf()), ("photo.png", png())])
    doc_pdf, doc_png = appeal.documents.order_by("pk")
    client = logged_in(analyst)

    def get(doc, query=""):
        response = client.get(f"/appeals/documents/{doc.pk}/{query}")
        assert isinstance(response, FileResponse)
        return response, response.getvalue()  # read to the end: the client closes the file

    (inline, inline_body), (download, _), (image, image_body) = get(doc_pdf), get(doc_pdf, "?download=1"), get(doc_png)

    assert (inline.status_code, inline_body, image_body) == (200, pdf(), check_document("photo.png", png()).data)
    for response in (inline, download, image):
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Security-Policy"].startswith("default-src 'none'")
    # A PDF always downloads (sandboxed, as images are: Chrome would not show it inline anyway).
    assert (inline["Content-Type"], inline["Content-Disposition"]) == (
        "application/pdf",
        "attachment; filename=\"payslip.pdf\"; filename*=UTF-8''payslip.pdf",
    )
    assert download["Content-Disposition"] == inline["Content-Disposition"]
    assert inline["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert (image["Content-Type"], image["Content-Security-Policy"]) == ("image/png", "default-src 'none'; sandbox")
    assert image["Content-Disposition"] == "inline; filename=\"photo.png\"; filename*=UTF-8''photo.png"
    views = AuditEvent.objects.filter(action="document.view").order_by("pk")
    assert [(e.object_id, e.actor_user_id, e.account_id) for e in views] == [
        (doc.pk, analyst.pk, appeal.line_id) for doc in (doc_pdf, doc_pdf, doc_png)
    ]


def test_documents_are_not_served_to_visitors_without_an_operator_role(integration):
    appeal = submit(frozen_multi_head_case(), [("payslip.pdf", pdf())])
    url = f"/appeals/documents/{appeal.documents.get().pk}/"

    anonymous = Client().get(url)
    no_role = logged_in(make_operator()).get(url)
    api_user = logged_in(integration).get(url)

    assert (anonymous.status_code, anonymous["Location"]) == (302, f"/login/?next={url}")
    assert (no_role.status_code, api_user.status_code) == (403, 403)
    assert not AuditEvent.objects.filter(action="document.view").exists()


def test_the_appeal_page_previews_images_and_links_pdfs(auditor):
    appeal = submit(frozen_multi_head_case(), [("payslip.pdf", pdf()), ("photo.png", png())])
    doc_pdf, doc_png = appeal.documents.order_by("pk")

    body = page(logged_in(auditor).get(f"/appeals/{appeal.pk}/"))

    assert f'<img src="/appeals/documents/{doc_png.pk}/" alt="photo.png"' in body
    # A PDF always downloads (the document view sends it as an attachment): the link says so and names the file.
    assert (
        f'<a href="/appeals/documents/{doc_pdf.pk}/" download class="pdf-link">PDF · payslip.pdf · download</a>' in body
    )
    assert f'<img src="/appeals/documents/{doc_pdf.pk}/"' not in body
    assert STATEMENT in body


# --- 11. query counts

# The user; roles and permissions (one query); the operators who decide (the assign list and the assignee
# filter); the page of appeals with line, borrower and assignee; the open counts; the senior's unread alerts; the
# overturn rates.
INBOX_QUERIES = 7
# The user; roles; the appeal (with its decision and reviewers); its documents; and beside them the case page's
# own reads for a MULTI_HEAD case (16: see CASE_QUERIES in test_queue_pages.py, less the user and roles).
APPEAL_QUERIES = 20


@pytest.mark.parametrize("n", [1, 10])
def test_the_inbox_costs_the_same_queries_whatever_the_number_of_appeals(senior, django_assert_num_queries, n):
    appeals = [submit(frozen_multi_head_case(), [("a.pdf", pdf())]) for _ in range(n)]
    services.appeals_age(now=appeals[0].sla_due_at + timedelta(minutes=1))
    client = logged_in(senior)

    with django_assert_num_queries(INBOX_QUERIES):
        response = client.get("/appeals/")

    assert response.status_code == 200
    assert len(re.findall(r'<tr class="appeal prio-2"', response.content.decode())) == n


@pytest.mark.parametrize("documents", [1, 5])
def test_the_appeal_page_costs_a_fixed_number_of_queries(analyst, django_assert_num_queries, documents):
    appeal = submit(frozen_multi_head_case(), [(f"{i}.png", png()) for i in range(documents)])
    client = logged_in(analyst)

    with django_assert_num_queries(APPEAL_QUERIES):
        response = client.get(f"/appeals/{appeal.pk}/")

    assert response.status_code == 200
    assert response.content.decode().count('class="preview"') == documents


# --- 12. the main queue


def test_the_queue_marks_cases_with_an_open_appeal_and_filters_to_them(analyst):
    appealed, plain = frozen_multi_head_case(), frozen_multi_head_case()
    submit(appealed)
    client = logged_in(analyst)

    def rows(response) -> dict[int, str]:
        found = re.findall(r'(<tr class="case[^"]*" data-row-href="/cases/(\d+)/">.*?</tr>)', response.content.decode())
        return {int(case_id): row for row, case_id in found}

    everything = rows(client.get("/queue/"))
    appeals_only = rows(client.get("/queue/?appeal=open"))

    assert set(everything) == {appealed.pk, plain.pk}
    assert 'class="badge appeal"' in everything[appealed.pk]
    assert "badge appeal" not in everything[plain.pk]
    assert list(appeals_only) == [appealed.pk]


def test_the_cases_appeal_marker_has_a_value_for_each_open_appeal_status_and_none_other():
    from accounts.models import CaseAppealState
    from appeals.models import OPEN_STATES

    assert set(CaseAppealState.values) == {"", *(s.value for s in OPEN_STATES)}
    assert {s.value: s.label for s in OPEN_STATES} == {
        s.value: s.label for s in CaseAppealState if s != CaseAppealState.NONE
    }
