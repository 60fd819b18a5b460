"""People on a team: own passwords, the staff's people page, deactivation at once."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client

from chatsite.asgi import application
from tests.factories import make_conversation, make_user

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-staple"
NEW_PASSWORD = "a-new-and-long-passphrase-42"


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_user_changes_their_own_password_and_their_other_browsers_are_signed_out():
    alice = User.objects.create_user("alice", "", PASSWORD)
    here, elsewhere = _signed_in(alice), _signed_in(alice)
    page = here.get("/account/password/")
    assert page.status_code == 200 and "Change your password" in page.content.decode()

    wrong = here.post("/account/password/", {"old_password": "not-it",
                                             "new_password1": NEW_PASSWORD,
                                             "new_password2": NEW_PASSWORD})
    assert wrong.status_code == 200
    assert "Your old password was entered incorrectly" in wrong.content.decode()

    done = here.post("/account/password/", {"old_password": PASSWORD,
                                            "new_password1": NEW_PASSWORD,
                                            "new_password2": NEW_PASSWORD})
    assert done.status_code == 302 and done["Location"] == "/account/password/done/"
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)
    assert here.get("/").status_code == 302 and here.get("/c/new/").status_code == 200
    assert elsewhere.get("/c/new/").status_code == 302  # back to the sign-in page


def test_the_password_page_needs_signing_in():
    response = Client().get("/account/password/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.parametrize("path", ["/people/", "/people/1/active/"])
def test_the_people_page_is_for_staff_only(path):
    member = make_user("bob")
    assert Client().get(path).status_code == 302  # anonymous: sign in first
    assert _signed_in(member).get(path).status_code in {403, 405}
    assert _signed_in(member).post(path, {"active": "0"}).status_code == 403


def test_staff_add_a_person_who_can_then_sign_in():
    staff = make_user("root", is_staff=True)
    client = _signed_in(staff)
    added = client.post("/people/", {"username": "carol", "password1": NEW_PASSWORD,
                                     "password2": NEW_PASSWORD}, follow=True)
    assert "Added carol" in added.content.decode()
    carol = User.objects.get(username="carol")
    assert carol.is_active and not carol.is_staff
    assert Client().post("/login/", {"username": "carol",
                                     "password": NEW_PASSWORD}).status_code == 302


def test_adding_a_person_with_a_weak_password_says_why():
    client = _signed_in(make_user("root", is_staff=True))
    response = client.post("/people/", {"username": "dave", "password1": "password",
                                        "password2": "password"})
    assert response.status_code == 422
    assert "This password is too common" in response.content.decode()
    assert not User.objects.filter(username="dave").exists()


def test_a_deactivated_user_is_signed_out_at_once_and_cannot_sign_in():
    staff = make_user("root", is_staff=True)
    bob = User.objects.create_user("bob", "", PASSWORD)
    bobs_browser = _signed_in(bob)
    assert bobs_browser.get("/c/new/").status_code == 200

    response = _signed_in(staff).post(f"/people/{bob.pk}/active/", {"active": "0"}, follow=True)
    assert "bob is deactivated and signed out" in response.content.decode()
    assert not User.objects.get(pk=bob.pk).is_active
    assert not [s for s in Session.objects.all()
                if s.get_decoded().get("_auth_user_id") == str(bob.pk)]
    assert bobs_browser.get("/c/new/").status_code == 302
    assert Client().post("/login/", {"username": "bob", "password": PASSWORD}).status_code == 200

    _signed_in(staff).post(f"/people/{bob.pk}/active/", {"active": "1"})
    assert Client().post("/login/", {"username": "bob", "password": PASSWORD}).status_code == 302


def test_staff_cannot_deactivate_themselves_or_a_superuser():
    staff = make_user("root", is_staff=True)
    boss = make_user("boss", is_staff=True, is_superuser=True)
    client = _signed_in(staff)
    own = client.post(f"/people/{staff.pk}/active/", {"active": "0"}, follow=True)
    assert "You cannot deactivate yourself" in own.content.decode()
    other = client.post(f"/people/{boss.pk}/active/", {"active": "0"}, follow=True)
    assert "Only a superuser can change another superuser" in other.content.decode()
    assert User.objects.filter(is_active=True).count() == 2


@pytest.mark.django_db(transaction=True)
async def test_a_deactivated_users_socket_is_refused_on_connect():
    bob, cookie, conversation = await database_sync_to_async(_bob_signed_in)()
    await database_sync_to_async(User.objects.filter(pk=bob.pk).update)(is_active=False)
    communicator = WebsocketCommunicator(
        application, f"/ws/conversations/{conversation.pk}/",
        headers=[(b"origin", b"http://localhost"), (b"cookie", f"sessionid={cookie}".encode())],
    )
    connected, code = await communicator.connect(timeout=5)
    assert not connected and code == 4401


def _bob_signed_in():
    bob = User.objects.create_user("bob", "", PASSWORD)
    client = Client()
    client.force_login(bob)
    return bob, client.cookies["sessionid"].value, make_conversation(bob, None)


@pytest.mark.django_db(transaction=True)
async def test_an_open_socket_closes_the_moment_its_user_is_deactivated():
    from conversations.accounts import services as accounts

    bob, cookie, conversation = await database_sync_to_async(_bob_signed_in)()
    staff = await database_sync_to_async(make_user)("boss", is_staff=True)
    communicator = WebsocketCommunicator(
        application, f"/ws/conversations/{conversation.pk}/",
        headers=[(b"origin", b"http://localhost"), (b"cookie", f"sessionid={cookie}".encode())],
    )
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    caught_up = await communicator.receive_output(timeout=5)  # an empty chat: the stamp
    assert 'id="catch-up-stamp"' in caught_up["text"]
    await database_sync_to_async(accounts.set_active)(user=bob, active=False, by=staff)
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4401}
    await communicator.disconnect()
