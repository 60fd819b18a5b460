"""Sign-in throttling (django-axes) on both login pages: per username and per address."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-staple"
LIMIT = 5  # AXES_FAILURE_LIMIT's default


@pytest.fixture
def alice():
    return User.objects.create_user("alice", "", PASSWORD, is_staff=True, is_superuser=True)


def _sign_in(path: str, username: str, password: str, address: str = "10.0.0.1"):
    return Client(REMOTE_ADDR=address).post(path, {"username": username, "password": password})


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_wrong_passwords_up_to_the_limit_lock_the_username_out_even_with_the_right_one(
    alice, path
):
    for _ in range(LIMIT - 1):
        assert _sign_in(path, "alice", "wrong").status_code == 200
    _sign_in(path, "alice", "wrong")

    locked = _sign_in(path, "alice", PASSWORD, address="10.0.0.2")
    assert locked.status_code == 429
    text = locked.content.decode()
    assert "Too many wrong passwords for “alice”" in text
    assert "paused for 15 minutes" in text
    assert "sessionid" not in locked.cookies


def test_one_address_trying_many_usernames_is_locked_out(alice):
    User.objects.create_user("bob", "", PASSWORD)
    for n in range(LIMIT):
        _sign_in("/login/", f"guess{n}", "wrong", address="10.9.9.9")
    assert _sign_in("/login/", "bob", PASSWORD, address="10.9.9.9").status_code == 429
    # Another address is not held up by it.
    assert _sign_in("/login/", "bob", PASSWORD, address="10.0.0.3").status_code == 302


def test_the_address_comes_from_the_connection_not_a_forwarded_header(alice):
    for n in range(LIMIT):
        Client(REMOTE_ADDR="10.7.7.7", HTTP_X_FORWARDED_FOR=f"1.2.3.{n}").post(
            "/login/", {"username": f"guess{n}", "password": "wrong"})
    assert _sign_in("/login/", "alice", PASSWORD, address="10.7.7.7").status_code == 429


def test_a_right_password_before_the_limit_clears_the_count(alice):
    for _ in range(LIMIT - 1):
        _sign_in("/login/", "alice", "wrong")
    assert _sign_in("/login/", "alice", PASSWORD).status_code == 302
    for _ in range(LIMIT - 1):
        _sign_in("/login/", "alice", "wrong")
    assert _sign_in("/login/", "alice", PASSWORD).status_code == 302


def test_an_admin_unlocks_a_locked_out_user_by_deleting_the_attempt(alice):
    User.objects.create_user("bob", "", PASSWORD)
    for _ in range(LIMIT):
        _sign_in("/login/", "bob", "wrong", address="10.0.0.5")
    assert _sign_in("/login/", "bob", PASSWORD, address="10.0.0.6").status_code == 429

    admin = Client(REMOTE_ADDR="10.0.0.7")
    admin.force_login(alice)
    listing = admin.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and "bob" in listing.content.decode()
    attempts = list(AccessAttempt.objects.filter(username="bob").values_list("pk", flat=True))
    confirm = admin.post("/admin/axes/accessattempt/", {
        "action": "delete_selected", "_selected_action": attempts, "post": "yes"})
    assert confirm.status_code == 302

    assert _sign_in("/login/", "bob", PASSWORD, address="10.0.0.6").status_code == 302
