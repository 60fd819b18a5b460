"""Reads, always scoped to their owner; none of them writes."""

from __future__ import annotations

from django.http import Http404

from conversations.models import Conversation, Message


def get_conversation_for_user(*, user, pk: int, with_model: bool = True) -> Conversation:
    """`with_model=False`: the conversation's row alone; its model is read if used
    (a post of text reads the model, not its relay: a join less to build)."""
    query = Conversation.objects.for_user(user).filter(pk=pk)
    if with_model:
        query = query.select_related("model__relay")
    conversation = query.first()
    if conversation is None:
        raise Http404("No such conversation")
    return conversation


def get_message_for_user(*, user, pk: int) -> Message:
    message = Message.objects.for_user(user).select_related("conversation").filter(pk=pk).first()
    if message is None:
        raise Http404("No such message")
    return message


def conversation_messages(*, conversation: Conversation) -> list[Message]:
    return list(
        conversation.messages.select_related("model", "usage", "edit_source")
        .prefetch_related("attachments")
    )


def recent_messages(*, conversation_id: int, user, limit: int) -> list[Message]:
    recent = (
        Message.objects.for_user(user)
        .filter(conversation_id=conversation_id)
        .select_related("model", "usage", "edit_source")
        .prefetch_related("attachments")
        .order_by("-created_at", "-pk")[:limit]
    )
    return list(reversed(recent))


def sidebar_conversations(*, user, limit: int = 100):
    return Conversation.objects.for_user(user).select_related("model")[:limit]
