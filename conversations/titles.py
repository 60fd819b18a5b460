"""Naming a conversation after its first reply, in the background.

The generation hands over once its first reply is saved and published
(`start_titling`); the title is asked of TITLE_MODEL as a task of its own,
so the reply never waits for it. With no TITLE_MODEL, or when the call
fails, the conversation keeps its first words as its title. A title its
owner gave (rename) is never replaced. What the call cost is recorded as a
usage row of the conversation (no message), so the totals count it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.html import escape

from conversations.accounts import language as languages
from conversations.billing.prices import price_usage
from conversations.billing.usage import usage_fields
from conversations.events import ConversationRetitled, conversation_group, publish
from conversations.fragments import upsert
from conversations.models import ChatModel, Conversation, Message, Usage
from conversations.relays.client import RelayClient, shared_http_client
from conversations.relays.errors import RelayError
from conversations.relays.setup import relay_target

logger = logging.getLogger(__name__)

TITLE_CHARS = 60
EXCERPT_CHARS = 1500
TITLE_TIMEOUT = 20.0  # s: a title is not worth a longer wait
INSTRUCTION = (
    "Write a short title (at most 6 words) for the conversation below, in the language "
    "it is written in. Answer with the title alone: no quotes, no punctuation at the end."
)

_tasks: set[asyncio.Task] = set()


def start_titling(conversation_id: int) -> asyncio.Task | None:
    """From the event loop, after a reply is saved: name the conversation if due."""
    if not settings.TITLE_MODEL:
        return None
    task = asyncio.get_running_loop().create_task(
        name_conversation(conversation_id), name=f"title-{conversation_id}",
        context=contextvars.Context(),
    )
    _tasks.add(task)  # a reference, or the loop may collect it mid-flight
    task.add_done_callback(_tasks.discard)
    return task


async def name_conversation(conversation_id: int) -> str | None:
    """The new title, or None if it is not due or the call failed (first words kept)."""
    job = await database_sync_to_async(_title_job)(conversation_id)
    if job is None:
        return None
    model, body = job
    client = RelayClient(relay_target(model.relay), max_retries=0, client=shared_http_client(),
                         read_timeout=TITLE_TIMEOUT)
    try:
        completion = await asyncio.wait_for(client.complete_chat(body), TITLE_TIMEOUT)
    except (RelayError, TimeoutError) as exc:
        logger.info("no title for conversation %s: %s", conversation_id, exc)
        return None
    title = clean_title(completion.content)
    saved = await database_sync_to_async(_save_title)(
        conversation_id, title, model, completion.usage)
    if saved is None:
        return None
    event: ConversationRetitled = {"type": "conversation.retitled", "html": saved}
    await publish(conversation_group(conversation_id), dict(event))
    return title


def clean_title(text: str) -> str:
    line = next((ln for ln in text.strip().splitlines() if ln.strip()), "")
    line = " ".join(line.strip().strip("#*_`\"'“”‘’「」《》").split()).rstrip("。.!！")
    return line[: TITLE_CHARS - 1] + "…" if len(line) > TITLE_CHARS else line


def _title_job(conversation_id: int) -> tuple[ChatModel, dict] | None:
    conversation = Conversation.objects.filter(
        pk=conversation_id, title_source=Conversation.TitleSource.FIRST_WORDS,
        deleted_at__isnull=True,
    ).select_related("model").first()
    if conversation is None:
        return None
    turns = list(conversation.messages.filter(status=Message.Status.COMPLETE)
                 .order_by("created_at", "pk").values_list("role", "text")[:2])
    if [role for role, _ in turns] != ["user", "assistant"]:
        return None
    model = _title_model(conversation)
    if model is None:
        logger.warning("TITLE_MODEL %r is not a usable model of any relay", settings.TITLE_MODEL)
        return None
    excerpt = "\n\n".join(f"{role}: {text[:EXCERPT_CHARS]}" for role, text in turns)
    return model, {"model": model.model_id, "max_tokens": 40, "messages": [
        {"role": "system", "content": INSTRUCTION}, {"role": "user", "content": excerpt}]}


def _title_model(conversation: Conversation) -> ChatModel | None:
    """TITLE_MODEL on the conversation's own relay if it has it, else on any relay."""
    candidates = ChatModel.objects.usable().filter(model_id=settings.TITLE_MODEL)
    own_relay = conversation.model.relay_id if conversation.model else None
    return (candidates.filter(relay_id=own_relay).first() if own_relay else None) or \
        candidates.first()


def _save_title(conversation_id: int, title: str, model: ChatModel,
                raw_usage: dict | None) -> str | None:
    """Save the title unless its owner renamed it meanwhile; the heading and
    sidebar entry as HTML for the pages, or None."""
    conversation = (Conversation.objects.filter(pk=conversation_id)
                    .annotate(**languages.owner_columns("owner")).first())
    if conversation is None:
        return None
    fields = usage_fields(raw_usage)
    if fields is not None:
        usage = Usage(owner_id=conversation.owner_id, conversation_id=conversation_id,
                      model=model, relay=model.relay, model_name=model.model_id, raw=raw_usage,
                      **fields)
        price_usage(usage)
        usage.save()
        if usage.cost:
            Conversation.objects.filter(pk=conversation_id).update(
                total_cost=F("total_cost") + usage.cost)
    if not title:
        return None
    named = Conversation.objects.filter(
        pk=conversation_id, title_source=Conversation.TitleSource.FIRST_WORDS
    ).update(title=title, title_source=Conversation.TitleSource.MODEL)
    if not named:
        return None
    conversation.title = title
    with translation.override(languages.of_row(conversation)):  # for the owner's pages
        heading = render_to_string("conversations/_title.html", {"conversation": conversation})
    return str(upsert("conversation-head", heading)) + _sidebar_title(conversation)


def _sidebar_title(conversation: Conversation) -> str:
    return (f'<span id="conversation-item-{conversation.pk}-title" class="title" '
            f'hx-swap-oob="true">{escape(conversation.title)}</span>')
