from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.engine import evaluate_lines
from tests.factories import NOW, inquiry, make_line

pytestmark = pytest.mark.django_db


@pytest.fixture
def analyst() -> User:
    user = User.objects.create_user("ana", password="pw-12345678")
    user.groups.add(Group.objects.get(name="analyst"))
    return user


def _flag_multi_head(n: int) -> list[int]:
    ids = []
    for _ in range(n):
        line = make_line()
        for i, inst in enumerate(["平安普惠", "度小满", "招联金融", "平安普惠", "马上消费"]):
            inquiry(line, NOW - timedelta(days=i + 1), inst)
        ids.append(line.pk)
    evaluate_lines(ids, now=NOW)
    return ids


def test_home_redirects_an_anonymous_visitor_to_login(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/"


@pytest.mark.parametrize(
    ("language", "heading"), [("zh-hans", "登录风控运营控制台"), ("en", "Log in to the risk-operations console")]
)
def test_login_page_speaks_both_languages(client: Client, language: str, heading: str) -> None:
    response = client.get("/login/", headers={"accept-language": language})
    assert response.status_code == 200
    assert heading in response.content.decode()


def test_home_lists_flagged_accounts_with_their_signals_masked(client: Client, analyst: User) -> None:
    _flag_multi_head(2)
    client.force_login(analyst)
    body = client.get("/", headers={"accept-language": "en"}).content.decode()
    assert body.count('class="case sev-3"') == 2
    assert "5 inquiries from 4 institutions in 30 days; threshold 4 from 3" in body
    assert "王*明" in body and "138****5678" in body
    assert "王小明" not in body and "13812345678" not in body
    assert "¥20,000.00" in body


def test_home_costs_the_same_queries_for_3_or_30_flagged_accounts(client: Client, analyst: User) -> None:
    client.force_login(analyst)
    _flag_multi_head(3)
    with CaptureQueriesContext(connection) as few:
        assert client.get("/").status_code == 200
    _flag_multi_head(27)
    with CaptureQueriesContext(connection) as many:
        assert client.get("/").status_code == 200
    assert len(few) == len(many) == 4


def test_home_pages_with_a_keyset_cursor_and_never_counts(client: Client, analyst: User) -> None:
    client.force_login(analyst)
    _flag_multi_head(52)
    with CaptureQueriesContext(connection) as queries:
        first = client.get("/").content.decode()
    assert not any("COUNT(" in q["sql"].upper() for q in queries)
    cursor = first.split('href="?after=')[1].split('"')[0]
    second = client.get(f"/?after={cursor}").content.decode()
    assert second.count('class="case sev-3"') == 2
    assert client.get("/?after=junk").status_code == 200


def test_admin_shows_borrowers_masked(client: Client) -> None:
    _flag_multi_head(1)
    admin = User.objects.create_superuser("root", password="pw-12345678")
    client.force_login(admin)
    body = client.get("/admin/accounts/borrower/").content.decode()
    assert "王*明" in body and "****1234" in body
    assert "13812345678" not in body and "330102199001011234" not in body
