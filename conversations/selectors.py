"""Reads, always scoped to their owner; none of them writes."""

from __future__ import annotations

from django.http import Http404

from conversations.history.tree import Tree, Versions
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


def conversation_branch(
    *, conversation: Conversation, limit: int | None = None, showing: int | None = None
) -> list[tuple[Message, Versions]]:
    """The messages on screen (the current branch), each with its versions;
    `limit`: the latest ones only; `showing`: the branch through that message
    instead (unsaved; an id not in this conversation is ignored)."""
    tree = Tree.of(conversation)
    if showing is not None and showing in tree.parents:
        tree.current = tree.choices_showing(showing)
    ids = tree.branch()
    if limit is not None:
        ids = ids[-limit:]
    by_id = {m.pk: m for m in (
        Message.objects.filter(conversation_id=conversation.pk, pk__in=ids)
        .select_related("model", "usage").prefetch_related("attachments")
    )}
    return [(by_id[pk], tree.versions(pk)) for pk in ids if pk in by_id]


def recent_messages(*, conversation_id: int, user, limit: int) -> list[Message]:
    """The latest messages on screen, for a page that reconnects."""
    conversation = Conversation.objects.for_user(user).filter(pk=conversation_id).first()
    if conversation is None:
        return []
    return [m for m, _ in conversation_branch(conversation=conversation, limit=limit)]


def sidebar_conversations(*, user, limit: int = 100):
    return Conversation.objects.for_user(user).select_related("model")[:limit]
