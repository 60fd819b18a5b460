"""A long conversation that no longer fits the model's window: the oldest turns
are left out of the request (never the system prompt or the question being
answered), the meter says so before sending, and the relay gets what it can take."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from conversations.context import context_meter
from conversations.models import Conversation, Message
from conversations.prompt import build_messages, context_window, history_view
from conversations.tokens import estimate_text_tokens
from tests.factories import make_conversation, make_model, make_relay, make_user
from tests.test_generation import _post, _run

pytestmark = [pytest.mark.django_db(transaction=True)]

WORDS = "The relay bills every token of the history again with each new question. "


@pytest.fixture(autouse=True)
def _small_window(settings):
    settings.STREAM_FRAME_INTERVAL = 0.05
    settings.STREAM_CHECKPOINT_INTERVAL = 0.2
    settings.RELAY_MAX_RETRIES = 0
    settings.CONTEXT_REPLY_RESERVE_TOKENS = 100


def _long_conversation(base_url: str, turns: int = 10, window: int = 1_000) -> Conversation:
    model = make_model(make_relay(base_url), context_window=window)
    conversation = make_conversation(make_user(), model, system_prompt="Be brief.")
    parent = None
    for n in range(turns):
        question = Message.objects.create(conversation=conversation, role=Message.Role.USER,
                                          text=f"Question {n}: " + WORDS * 3, parent=parent)
        parent = Message.objects.create(conversation=conversation, parent=question,
                                        role=Message.Role.ASSISTANT, model=model,
                                        text=f"Answer {n}: " + WORDS * 3)
    return conversation


def _reply_to(conversation: Conversation, text: str) -> Message:
    leaf = conversation.messages.order_by("-pk").first()
    question = Message.objects.create(conversation=conversation, role=Message.Role.USER,
                                      text=text, parent=leaf)
    return Message.objects.create(conversation=conversation, role=Message.Role.ASSISTANT,
                                  model=conversation.model, parent=question,
                                  status=Message.Status.PENDING)


def test_the_oldest_turns_are_left_out_and_the_rest_fits(simulator):
    conversation = _long_conversation(simulator.url)
    reply = _reply_to(conversation, "And the newest question?")

    messages = build_messages(conversation=conversation, reply=reply,
                              relay=conversation.model.relay)

    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert messages[1]["role"] == "user"  # starts at a question, never half a turn
    assert messages[-1] == {"role": "user", "content": "And the newest question?"}
    assert not any("Question 0:" in m["content"] for m in messages)  # the oldest went first
    assert any("Question 9:" in m["content"] for m in messages)  # the newest stayed
    sent = sum(estimate_text_tokens(m["content"]) for m in messages)
    assert sent <= context_window(conversation.model) - 100  # room kept for the answer
    view = history_view(conversation=conversation, reply=reply,
                        relay=conversation.model.relay)
    assert view.left_out > 0 and view.left_out % 2 == 0  # whole turns
    assert view.starts_at.text.startswith("Question")


def test_a_conversation_that_fits_is_sent_whole(simulator):
    conversation = _long_conversation(simulator.url, turns=3, window=128_000)
    reply = _reply_to(conversation, "Next?")
    view = history_view(conversation=conversation, reply=reply,
                        relay=conversation.model.relay)
    assert view.left_out == 0 and view.starts_at is None
    assert len(build_messages(conversation=conversation, reply=reply,
                              relay=conversation.model.relay)) == 1 + 6 + 1


def test_the_question_being_answered_is_sent_even_alone_too_long(simulator):
    conversation = _long_conversation(simulator.url, turns=2)
    reply = _reply_to(conversation, WORDS * 100)
    messages = build_messages(conversation=conversation, reply=reply,
                              relay=conversation.model.relay)
    assert [m["role"] for m in messages] == ["system", "user"]  # the relay says if too long


def test_the_meter_says_before_sending_what_is_left_out_and_where_the_view_begins(simulator):
    conversation = _long_conversation(simulator.url)
    conversation = Conversation.objects.select_related("model__relay").get(pk=conversation.pk)
    meter = context_meter(conversation=conversation)
    assert meter.left_out > 0
    first_seen = Message.objects.get(pk=meter.starts_at)
    assert first_seen.role == Message.Role.USER
    assert meter.tokens <= meter.window


async def test_the_relay_receives_only_the_newest_turns_and_counts_what_the_meter_said(
        simulator):
    conversation = await database_sync_to_async(_long_conversation)(simulator.url)
    conversation = await database_sync_to_async(Conversation.objects.select_related(
        "model__relay").get)(pk=conversation.pk)
    meter = await database_sync_to_async(context_meter)(conversation=conversation)
    _, reply = await database_sync_to_async(_post)(conversation, "Still there?")
    await _run(reply.pk)

    saved = await database_sync_to_async(Message.objects.select_related("usage").get)(
        pk=reply.pk)
    assert saved.status == Message.Status.COMPLETE
    body = simulator.requests[-1].body
    assert "Question 0:" not in str(body["messages"])
    assert body["messages"][-1]["content"] == "Still there?"
    assert saved.usage.prompt_tokens == meter.tokens + estimate_text_tokens("Still there?")


async def test_continue_in_a_new_chat_carries_a_summary_request_of_the_newest_turns(simulator):
    from conversations import services

    old = await database_sync_to_async(_long_conversation)(simulator.url)
    old = await database_sync_to_async(Conversation.objects.select_related(
        "model__relay", "owner").get)(pk=old.pk)
    old.title = "Relay bills"
    def carry_over():
        from django.db import transaction

        original = transaction.on_commit  # the generation is run by the test (_run)
        transaction.on_commit = lambda fn, using=None, robust=False: None
        try:
            return services.continue_in_new_chat(conversation=old, author=old.owner)
        finally:
            transaction.on_commit = original

    fresh = await database_sync_to_async(carry_over)()
    question = await database_sync_to_async(
        lambda: fresh.messages.get(role=Message.Role.USER))()
    reply = await database_sync_to_async(
        lambda: fresh.messages.get(role=Message.Role.ASSISTANT))()
    await _run(reply.pk)

    assert fresh.pk != old.pk and fresh.model_id == old.model_id
    assert fresh.system_prompt == "Be brief." and fresh.title == "Relay bills (continued)"
    assert question.text.startswith("This continues an earlier conversation")
    assert "Answer 9:" in question.text  # the newest turn is carried
    assert "Question 0:" not in question.text  # what does not fit half the window is not
    saved = await database_sync_to_async(Message.objects.get)(pk=reply.pk)
    assert saved.status == Message.Status.COMPLETE
    assert await database_sync_to_async(old.messages.count)() == 20  # the old chat is kept
