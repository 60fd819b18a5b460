"""A relay that answers with another model than the one asked: both kept, the reply marked."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conversations import generation, replies, services
from conversations.models import Message
from conversations.relays.checks import is_substitution
from conversations.relays.client import RelayClient
from conversations.relays.setup import relay_target
from tests.factories import make_conversation, make_model, make_relay, make_user


@pytest.mark.parametrize(("requested", "served"), [
    ("gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
    ("gemini-2.5-flash", "models/gemini-2.5-flash"),
    ("gemini/gemini-2.5-flash", "gemini-2.5-flash"),
    ("gemini-2.5-flash@reasoning", "gemini-2.5-flash"),
    ("gemini-2.5-flash", ""),  # a relay that names no model says nothing
])
def test_the_same_model_under_another_spelling_is_no_substitution(requested, served):
    assert not is_substitution(requested=requested, served=served)


@pytest.mark.parametrize(("requested", "served"), [
    ("gemini-2.5-pro", "gemini-2.5-flash-lite"),
    ("gpt-4o", "gpt-4o-mini"),
    ("gemini-2.5-flash", "gemini-2.5-flash-lite"),
])
def test_another_model_is_a_substitution(requested, served):
    assert is_substitution(requested=requested, served=served)


@pytest.mark.django_db(transaction=True)
async def test_the_stream_parser_reports_the_model_that_answered(simulator):
    relay = await database_sync_to_async(make_relay)(simulator.url + "/substitutes")
    async with RelayClient(relay_target(relay)) as client:
        streamed = await client.stream_collect(
            {"model": "gemini-2.5-pro", "stream": True,
             "messages": [{"role": "user", "content": "hi"}]})
        whole = await client.complete_chat(
            {"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": "hi"}]})
    assert streamed.model == whole.model == "gemini-2.5-flash-lite"


def _reply_from(base_url: str, model_id: str) -> Message:
    from django.db import transaction

    user = make_user()
    model = make_model(make_relay(base_url), model_id)
    conversation = make_conversation(user, model)
    original = transaction.on_commit
    transaction.on_commit = lambda fn, using=None, robust=False: None
    try:
        _, reply = services.post_message(conversation=conversation, author=user, text="Hi")
    finally:
        transaction.on_commit = original
    return reply


async def _generate(reply: Message) -> Message:
    generation._spawn(reply.pk)
    task = generation.running_generations()[reply.pk].task
    await asyncio.wait_for(asyncio.shield(task), timeout=30)
    return await database_sync_to_async(Message.objects.get)(pk=reply.pk)


@pytest.mark.django_db(transaction=True)
async def test_a_substituted_reply_keeps_both_models_and_says_so_under_the_reply(simulator):
    reply = await database_sync_to_async(_reply_from)(simulator.url + "/substitutes",
                                                      "gemini-2.5-pro")
    saved = await _generate(reply)
    assert saved.status == Message.Status.COMPLETE
    assert saved.model_substituted
    assert saved.served_model == "gemini-2.5-flash-lite"
    assert (await database_sync_to_async(lambda: saved.model.model_id)()) == "gemini-2.5-pro"
    assert "gemini-2.5-flash-lite" in saved.warning and "gemini-2.5-pro" in saved.warning
    client = Client()
    await database_sync_to_async(client.force_login)(
        await database_sync_to_async(lambda: saved.conversation.owner)())
    page = await database_sync_to_async(client.get)(
        reverse("conversation", args=[saved.conversation_id]))
    assert "answered with “gemini-2.5-flash-lite”" in page.content.decode()


@pytest.mark.django_db(transaction=True)
async def test_an_honest_relays_reply_is_not_marked(simulator):
    reply = await database_sync_to_async(_reply_from)(simulator.url, "gemini-2.5-flash")
    saved = await _generate(reply)
    assert saved.served_model == "gemini-2.5-flash"
    assert not saved.model_substituted and "answered with" not in saved.warning


@pytest.mark.django_db
def test_the_costs_page_counts_substituted_replies_per_relay_for_their_owner_only():
    alice, bob = make_user("alice"), make_user("bob")
    relay = make_relay("http://127.0.0.1:9", name="Cheating relay")
    model = make_model(relay, "gemini-2.5-pro")
    for owner, substituted in ((alice, True), (alice, True), (alice, False), (bob, True)):
        conversation = make_conversation(owner, model)
        reply = Message.objects.create(conversation=conversation, role="assistant",
                                       text="answer", status="complete", model=model)
        Message.objects.filter(pk=reply.pk).update(
            model_substituted=substituted, completed_at=timezone.now(),
            served_model="gemini-2.5-flash-lite" if substituted else "gemini-2.5-pro")
        replies.record_usage(message=reply, raw={"prompt_tokens": 10, "completion_tokens": 5})
    client = Client()
    client.force_login(alice)
    page = client.get(reverse("costs")).content.decode()
    relay_table = page.split('id="cost-by-relay"', 1)[1].split("</table>", 1)[0]
    assert "Cheating relay" in relay_table
    assert "2 answered by another model" in relay_table
