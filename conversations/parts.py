"""Conversation history → the `messages` of a chat-completions request."""

from __future__ import annotations

from typing import Any

from .models import Conversation, Message, Relay

# Assistant turns that the model should see again: what the user saw as an answer.
REPLAYED_STATUSES = {Message.Status.COMPLETE, Message.Status.CANCELLED}


def build_messages(
    *, conversation: Conversation, reply: Message, relay: Relay
) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if conversation.system_prompt.strip():
        messages.append({"role": "system", "content": conversation.system_prompt})
    history = (
        conversation.messages.filter(created_at__lt=reply.created_at)
        .exclude(pk=reply.pk)
        .prefetch_related("attachments")
        .order_by("created_at", "pk")
    )
    for message in history:
        if message.role == Message.Role.USER:
            messages.append({"role": "user", "content": user_content(message, relay)})
        elif message.status in REPLAYED_STATUSES and message.text.strip():
            messages.append({"role": "assistant", "content": message.text})
    return messages


def user_content(message: Message, relay: Relay) -> str | list[dict[str, Any]]:
    return message.text
