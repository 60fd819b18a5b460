"""Titles: named after the first reply in the background by TITLE_MODEL, never
blocking the reply; the first words stay without a setting or when the call fails."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from django.urls import reverse

from conversations import generation, services, titles
from conversations.models import Conversation, Usage
from tests.factories import make_conversation, make_model, make_relay, make_user
from tests.test_generation import GroupListener, _post, _run

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.STREAM_FRAME_INTERVAL = 0.05
    settings.STREAM_CHECKPOINT_INTERVAL = 0.2
    settings.RELAY_MAX_RETRIES = 0


def _setup(simulator, title_model_id: str | None = "gpt-4o-mini"):
    relay = make_relay(simulator.url)
    model = make_model(relay)
    if title_model_id:
        make_model(relay, title_model_id)
    return make_conversation(make_user(), model)


async def _title_of(conversation) -> Conversation:
    return await database_sync_to_async(Conversation.objects.get)(pk=conversation.pk)


async def _settle():
    for _ in range(100):
        if not titles._tasks:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the title task did not finish")


async def test_the_first_reply_names_the_conversation_in_the_background(simulator, settings):
    settings.TITLE_MODEL = "gpt-4o-mini"
    conversation = await database_sync_to_async(_setup)(simulator)
    _, reply = await database_sync_to_async(_post)(
        conversation, "Could you explain how sourdough starters work, in detail please?")
    assert (await _title_of(conversation)).title.startswith("Could you explain")

    async with GroupListener(conversation.pk) as listener:
        await _run(reply.pk)
        await _settle()

    named = await _title_of(conversation)
    title_request = simulator.requests[-1].body
    assert title_request["model"] == "gpt-4o-mini"
    assert "sourdough" in title_request["messages"][1]["content"]
    assert named.title_source == "model" and named.title
    assert named.title == titles.clean_title(simulator.requests[-1].reply)
    types = [e["type"] for e in listener.events]
    # The reply was finished and told before the title was asked for.
    assert types.index("reply.finished") < types.index("conversation.retitled")
    assert named.title in next(e["html"] for e in listener.events
                               if e["type"] == "conversation.retitled")
    # What the title cost is counted in the conversation.
    assert await database_sync_to_async(
        Usage.objects.filter(conversation_id=conversation.pk, message__isnull=True).count)() == 1


async def test_without_a_title_model_the_first_words_stay_and_nothing_is_asked(simulator,
                                                                              settings):
    settings.TITLE_MODEL = ""
    conversation = await database_sync_to_async(_setup)(simulator)
    _, reply = await database_sync_to_async(_post)(conversation, "Hello there, my friend")

    await _run(reply.pk)
    await _settle()

    assert len(simulator.requests) == 1
    named = await _title_of(conversation)
    assert (named.title, named.title_source) == ("Hello there, my friend", "first_words")


async def test_a_failed_title_call_keeps_the_first_words(simulator, settings):
    settings.TITLE_MODEL = "gpt-4o-mini@fail=500"
    conversation = await database_sync_to_async(_setup)(simulator, "gpt-4o-mini@fail=500")
    _, reply = await database_sync_to_async(_post)(conversation, "Hello there, my friend")

    await _run(reply.pk)
    await _settle()

    assert len(simulator.requests) == 2  # the reply, then the title that failed
    named = await _title_of(conversation)
    assert (named.title, named.title_source) == ("Hello there, my friend", "first_words")


def test_a_renamed_conversation_is_never_named_again(simulator, settings, monkeypatch):
    settings.TITLE_MODEL = "gpt-4o-mini"
    monkeypatch.setattr(generation, "start_generation", lambda *a, **k: None)
    conversation = _setup(simulator)
    services.post_message(conversation=conversation, author=conversation.owner, text="Hi")
    client = Client()
    client.force_login(conversation.owner)
    client.post(reverse("conversation_rename", args=[conversation.pk]), {"title": "Mine"})

    assert asyncio.run(titles.name_conversation(conversation.pk)) is None
    assert simulator.requests == []
    assert Conversation.objects.get(pk=conversation.pk).title == "Mine"


def test_a_title_is_one_short_clean_line():
    assert titles.clean_title('"Sourdough Starters Explained."\nmore') == \
        "Sourdough Starters Explained"
    assert titles.clean_title("**《智谱清言使用指南》**") == "智谱清言使用指南"
    assert len(titles.clean_title("word " * 40)) == titles.TITLE_CHARS
