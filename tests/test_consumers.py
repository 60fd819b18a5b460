"""The WebSocket: who may listen, and what a page receives."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils import timezone

from chatsite.asgi import application
from conversations import generation
from conversations.models import Message
from tests.factories import make_conversation, make_model, make_relay, make_user
from tests.test_generation import _post

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.STREAM_FRAME_INTERVAL = 0.05
    settings.RELAY_MAX_RETRIES = 0


def _session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def _connect(conversation_id: int, user=None, origin: bytes = b"http://localhost",
                   seen: str = ""):
    headers = [(b"origin", origin)]
    if user is not None:
        cookie = await database_sync_to_async(_session_cookie)(user)
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    query = f"?seen={seen}" if seen else ""
    communicator = WebsocketCommunicator(
        application, f"/ws/conversations/{conversation_id}/{query}", headers=headers
    )
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


def _setup(simulator, model_id="gemini-2.5-flash"):
    alice = make_user("alice")
    bob = make_user("bob")
    model = make_model(make_relay(simulator.url), model_id)
    return alice, bob, make_conversation(alice, model)


async def _receive_until(communicator, predicate, timeout=10.0) -> str:
    received = ""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        try:
            received += await communicator.receive_from(timeout=0.5)
        except TimeoutError:
            continue
        if predicate(received):
            return received
    raise AssertionError(f"never received what was expected; got:\n{received[-2000:]}")


async def test_an_anonymous_socket_is_refused(simulator):
    _, _, conversation = await database_sync_to_async(_setup)(simulator)
    _communicator, connected, code = await _connect(conversation.pk)
    assert not connected
    assert code == 4401


async def test_another_users_conversation_socket_is_refused(simulator):
    _, bob, conversation = await database_sync_to_async(_setup)(simulator)
    _communicator, connected, code = await _connect(conversation.pk, bob)
    assert not connected
    assert code == 4404


async def test_a_socket_from_a_foreign_origin_is_refused(simulator):
    alice, _, conversation = await database_sync_to_async(_setup)(simulator)
    _communicator, connected, _ = await _connect(conversation.pk, alice, b"http://evil.example")
    assert not connected


async def test_the_owner_receives_the_reply_as_html_swaps_then_the_final_message(simulator):
    alice, _, conversation = await database_sync_to_async(_setup)(simulator)
    communicator, connected, _ = await _connect(conversation.pk, alice)
    assert connected
    _, reply = await database_sync_to_async(_post)(conversation, "Hi <script>x</script>")
    generation._spawn(reply.pk)
    received = await _receive_until(
        communicator, lambda html: 'status-complete' in html and f'id="message-{reply.pk}"' in html
    )
    assert f'hx-swap-oob="beforeend:#m{reply.pk}-text"' in received
    assert f'id="m{reply.pk}-t0"' in received
    assert "<script>" not in received  # the echoed text is escaped, never live HTML
    assert "sk-test-secret-key" not in received
    saved = await database_sync_to_async(Message.objects.get)(pk=reply.pk)
    assert saved.status == Message.Status.COMPLETE
    await communicator.disconnect()


async def test_a_page_connecting_mid_stream_gets_the_text_so_far_then_the_rest(simulator):
    simulator.sim.token_rate = 60
    alice, _, conversation = await database_sync_to_async(_setup)(
        simulator, "gemini-2.5-flash@tokens=120"
    )
    _, reply = await database_sync_to_async(_post)(conversation)
    generation._spawn(reply.pk)
    await asyncio.sleep(0.8)
    communicator, connected, _ = await _connect(conversation.pk, alice)
    assert connected
    first = await communicator.receive_from(timeout=3)
    # The catch-up comes first: the message as stored, then a live snapshot.
    assert f'id="message-{reply.pk}"' in first
    received = await _receive_until(communicator, lambda html: "status-complete" in html)
    assert f'id="m{reply.pk}-t0"' in first + received
    await communicator.disconnect()


async def test_a_page_already_open_sees_a_message_posted_from_another_tab(simulator):
    alice, _, conversation = await database_sync_to_async(_setup)(simulator)
    communicator, connected, _ = await _connect(conversation.pk, alice)
    assert connected
    generation.bind_loop(asyncio.get_running_loop())

    def post_from_another_tab():
        from conversations import services

        return services.post_message(
            conversation=conversation, author=alice, text="sent from the other tab"
        )

    _, reply = await database_sync_to_async(post_from_another_tab)()
    received = await _receive_until(
        communicator, lambda html: "message-assistant status-complete" in html
    )
    assert "sent from the other tab" in received
    # The reply's container exists before its first frame, so no frame is lost.
    assert received.index(f'id="message-{reply.pk}"') < received.index(f'id="m{reply.pk}-t0"')
    await communicator.disconnect()


STAMP = re.compile(r'<div id="catch-up-stamp" hx-swap-oob="true" data-stamp="([0-9a-f]+)" hidden>')


async def _catch_up(conversation_id: int, user, seen: str = "") -> tuple[str, str]:
    """What a (re)connecting page is sent first, and the stamp in it."""
    communicator, connected, _ = await _connect(conversation_id, user, seen=seen)
    assert connected
    first = await communicator.receive_from(timeout=5)
    await communicator.disconnect()
    found = STAMP.search(first)
    assert found, first
    return first, found[1]


def _answered(conversation, text="A question?", answer="An answer."):
    question, reply = _post(conversation, text)
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE, text=answer)
    return question, reply


async def test_a_page_that_has_every_message_gets_only_the_stamp_when_it_reconnects(simulator):
    alice, _, conversation = await database_sync_to_async(_setup)(simulator)
    _, reply = await database_sync_to_async(_answered)(conversation)

    first, stamp = await _catch_up(conversation.pk, alice)
    again, same = await _catch_up(conversation.pk, alice, seen=stamp)

    assert f'id="message-{reply.pk}"' in first and "An answer." in first
    assert same == stamp
    assert "message-list" not in again and "An answer." not in again


async def test_a_page_reconnecting_after_a_change_gets_every_message_again(simulator):
    alice, _, conversation = await database_sync_to_async(_setup)(simulator)
    _, reply = await database_sync_to_async(_answered)(conversation)
    _, stamp = await _catch_up(conversation.pk, alice)
    later = timezone.now() + timedelta(seconds=1)

    changes = [
        # a reply written (a checkpoint, a finish, a stop): its updated_at
        lambda: Message.objects.filter(pk=reply.pk).update(text="Rewritten.",
                                                           updated_at=later),
        # a message added
        lambda: _answered(conversation, "Another?", "Another answer."),
        # another version chosen
        lambda: type(conversation).objects.filter(pk=conversation.pk).update(
            current_children={"root": reply.pk}),
    ]
    for change in changes:
        await database_sync_to_async(change)()
        html, new_stamp = await _catch_up(conversation.pk, alice, seen=stamp)
        assert new_stamp != stamp
        assert 'hx-swap-oob="beforeend:#message-list"' in html, html[:300]
        stamp = new_stamp


async def test_a_stamp_opens_no_one_elses_conversation_and_a_wrong_one_catches_up(simulator):
    alice, bob, conversation = await database_sync_to_async(_setup)(simulator)
    await database_sync_to_async(_answered)(conversation)
    _, stamp = await _catch_up(conversation.pk, alice)

    _communicator, connected, code = await _connect(conversation.pk, bob, seen=stamp)
    assert (connected, code) == (False, 4404)
    html, _ = await _catch_up(conversation.pk, alice, seen="0" * 24)
    assert "An answer." in html
