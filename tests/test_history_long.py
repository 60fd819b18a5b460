"""Long conversations open fast: at their latest messages, earlier ones loaded as the
reader scrolls up, and finished replies shown from their kept HTML, not re-rendered."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conversations import fragments, replies
from conversations.models import Message
from conversations.selectors import WINDOW_MESSAGES
from tests.factories import make_conversation, make_model, make_relay, make_user

pytestmark = pytest.mark.django_db

ARTICLE = re.compile(r'<article id="message-(\d+)"')
EARLIER = re.compile(r'hx-get="(/c/\d+/earlier/\?[^"]+)"')


def _long_conversation(turns: int):
    owner = make_user()
    conversation = make_conversation(owner, make_model(make_relay("http://127.0.0.1:9/x")))
    start = timezone.now() - timedelta(hours=1)
    parent = None
    for n in range(turns * 2):
        parent = Message.objects.create(
            conversation=conversation, parent=parent, role="user" if n % 2 == 0 else "assistant",
            text=f"Turn {n}: **bold** and `code`\n\n- a list", status="complete",
            created_at=start + timedelta(seconds=n))
    client = Client()
    client.force_login(owner)
    return conversation, client


def test_a_600_message_conversation_opens_at_its_latest_and_loads_the_rest_upwards():
    conversation, client = _long_conversation(300)
    ids = list(conversation.messages.order_by("created_at").values_list("pk", flat=True))

    page = client.get(reverse("conversation", args=[conversation.pk])).content.decode()

    shown = [int(pk) for pk in ARTICLE.findall(page)]
    assert shown == ids[-WINDOW_MESSAGES:]
    pages = [shown]
    url = EARLIER.search(page).group(1).replace("&amp;", "&")
    while url:
        earlier = client.get(url).content.decode()
        pages.insert(0, [int(pk) for pk in ARTICLE.findall(earlier)])
        found = EARLIER.search(earlier)
        url = found.group(1).replace("&amp;", "&") if found else ""
    assert [pk for page in pages for pk in page] == ids
    assert len(pages) == 600 // WINDOW_MESSAGES


def test_a_finished_reply_is_shown_from_its_kept_html_without_rendering_markdown(
    monkeypatch,
):
    conversation, client = _long_conversation(30)
    renders = []
    real = fragments.render_markdown
    monkeypatch.setattr(fragments, "render_markdown",
                        lambda text: renders.append(1) or real(text))
    url = reverse("conversation", args=[conversation.pk])

    first = client.get(url).content.decode()  # rows from before the cache: rendered once, kept
    renders_first = len(renders)
    second = client.get(url).content.decode()

    assert renders_first > 0 and len(renders) == renders_first
    assert ARTICLE.findall(first) == ARTICLE.findall(second)
    assert first.count("<strong>bold</strong>") == second.count("<strong>bold</strong>") == 20


def test_a_reply_saved_by_its_generation_keeps_the_blocks_the_stream_rendered():
    conversation, _ = _long_conversation(1)
    question = conversation.messages.last()
    reply = Message.objects.create(conversation=conversation, parent=question, role="assistant",
                                   status="streaming", model=conversation.model)
    blocks = {"text": ["<p>kept</p>"], "reasoning": []}

    replies.finish_reply(message_id=reply.pk, outcome=replies.ReplyOutcome(
        status="complete", text="kept", finish_reason="stop", rendered=blocks))

    reply.refresh_from_db()
    assert reply.rendered == blocks
    reply.text = "changed"
    reply.save(update_fields=["text"])
    reply.refresh_from_db()
    assert reply.rendered is None  # a changed text is rendered afresh


def test_a_search_result_deep_in_the_history_opens_with_that_message_on_the_page():
    conversation, client = _long_conversation(300)
    deep = conversation.messages.order_by("created_at")[10]

    page = client.get(reverse("conversation", args=[conversation.pk]), {"m": deep.pk})

    assert f'<article id="message-{deep.pk}"' in page.content.decode()
