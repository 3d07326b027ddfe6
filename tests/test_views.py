from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client

from accounts.engine import evaluate_lines
from tests.factories import NOW, inquiry, make_line

pytestmark = pytest.mark.django_db


def _flag_multi_head(n: int) -> list[int]:
    ids = []
    for _ in range(n):
        line = make_line()
        for i, inst in enumerate(["平安普惠", "度小满", "招联金融", "平安普惠", "马上消费"]):
            inquiry(line, NOW - timedelta(days=i + 1), inst)
        ids.append(line.pk)
    evaluate_lines(ids, now=NOW)
    return ids


def test_the_queue_redirects_an_anonymous_visitor_to_login(client: Client) -> None:
    assert client.get("/")["Location"] == "/queue/"
    response = client.get("/queue/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/queue/"


@pytest.mark.parametrize(
    ("language", "heading"), [("zh-hans", "登录风控运营控制台"), ("en", "Log in to the risk-operations console")]
)
def test_login_page_speaks_both_languages(client: Client, language: str, heading: str) -> None:
    response = client.get("/login/", headers={"accept-language": language})
    assert response.status_code == 200
    assert heading in response.content.decode()


def test_admin_shows_borrowers_masked(client: Client) -> None:
    _flag_multi_head(1)
    admin = User.objects.create_superuser("root", password="pw-12345678")
    client.force_login(admin)
    body = client.get("/admin/accounts/borrower/").content.decode()
    assert "王*明" in body and "****1234" in body
    assert "13812345678" not in body and "330102199001011234" not in body


def test_decisions_and_notes_are_read_only_in_the_admin(client: Client) -> None:
    admin = User.objects.create_superuser("root2", password="pw-12345678")
    client.force_login(admin)
    for path in ("/admin/accounts/decision/", "/admin/accounts/note/"):
        assert client.get(path).status_code == 200
        assert client.get(path + "add/").status_code == 403
