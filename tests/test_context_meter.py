"""The meter under the composer: what the next message sends, before it is sent,
against what the relay reports it received after."""

from __future__ import annotations

from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from django.urls import reverse

from conversations.context import context_meter
from conversations.models import Conversation, Usage
from conversations.tokens import estimate_text_tokens
from tests.factories import make_conversation, make_model, make_relay, make_user
from tests.test_generation import _post, _run

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.STREAM_FRAME_INTERVAL = 0.05
    settings.STREAM_CHECKPOINT_INTERVAL = 0.2
    settings.RELAY_MAX_RETRIES = 0
    settings.CONTEXT_WINDOW_TOKENS = 1000


def _setup(simulator) -> Conversation:
    model = make_model(make_relay(simulator.url), price_input=Decimal("2"),
                       price_output=Decimal("8"))
    return make_conversation(make_user(), model, system_prompt="Answer in one paragraph.")


async def test_the_estimate_before_sending_is_what_the_relay_counts_after(simulator):
    conversation = await database_sync_to_async(_setup)(simulator)
    for question in ("What is a relay?", "And a gateway? 中转站是什么？"):
        _, reply = await database_sync_to_async(_post)(conversation, question)
        await _run(reply.pk)
    conversation = await database_sync_to_async(Conversation.objects.select_related(
        "model__relay").get)(pk=conversation.pk)
    meter = await database_sync_to_async(context_meter)(conversation=conversation)
    question = "Which one should I use for Gemini?"

    _, reply = await database_sync_to_async(_post)(conversation, question)
    await _run(reply.pk)

    usage = await database_sync_to_async(Usage.objects.get)(message_id=reply.pk)
    assert not usage.estimated  # the simulator reported it
    before = meter.tokens + estimate_text_tokens(question)
    assert before == usage.prompt_tokens  # the same counting, so no error for text
    # $2 per million input tokens, as the reply's own cost is priced
    assert meter.cost == (Decimal(meter.tokens) * 2 / 1_000_000).quantize(meter.cost)
    assert meter.percent == round(100 * meter.tokens / 1000)


def test_the_page_shows_the_meter_under_the_composer(simulator):
    conversation = _setup(simulator)
    client = Client()
    client.force_login(conversation.owner)

    page = client.get(reverse("conversation", args=[conversation.pk])).content.decode()
    fragment = client.get(reverse("conversation_context", args=[conversation.pk]))

    assert 'id="context-meter"' in page and "tokens of history" in page
    assert "1,000-token window" in fragment.content.decode()
    other = Client()
    other.force_login(make_user("mallory"))
    assert other.get(reverse("conversation_context", args=[conversation.pk])).status_code == 404
