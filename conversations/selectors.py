"""Reads, always scoped to their owner; none of them writes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max, Q
from django.http import Http404

from conversations.history.tree import BranchWindow, Tree, Versions
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
        .select_related("model", "usage", "edit_source").prefetch_related("attachments")
    )}
    return [(by_id[pk], tree.versions(pk)) for pk in ids if pk in by_id]


# A conversation opens at its latest messages; earlier ones load as the reader scrolls up.
WINDOW_MESSAGES = 40


def branch_window(
    *, conversation: Conversation, showing: int | None = None, before: int | None = None,
    size: int = WINDOW_MESSAGES,
) -> BranchWindow:
    """`showing`: the branch through that message, opened a few messages above
    it; `before`: the messages before that one (the next earlier page)."""
    tree = Tree.of(conversation)
    if showing is not None and showing not in tree.parents:
        showing = None
    if showing is not None:
        tree.current = tree.choices_showing(showing)
    ids = tree.branch()
    end = ids.index(before) if before in ids else len(ids)
    start = max(0, end - size)
    if showing is not None and before is None and showing in ids:
        start = min(start, max(0, ids.index(showing) - 3))
    shown = ids[start:end]
    by_id = {m.pk: m for m in (
        Message.objects.filter(conversation_id=conversation.pk, pk__in=shown)
        .select_related("model", "usage", "edit_source").prefetch_related("attachments")
    )}
    return BranchWindow(
        conversation_id=conversation.pk,
        items=[(by_id[pk], tree.versions(pk)) for pk in shown if pk in by_id],
        earlier_than=shown[0] if start > 0 and shown else None, showing=showing,
    )


@dataclass
class CatchUp:
    """What a (re)connecting page is sent: the latest messages on screen with
    their versions, or None when the page said it has them (`seen`). `stamp`
    names what the conversation's messages are now (catch_up_stamp)."""

    stamp: str
    items: list[tuple[Message, Versions]] | None


def recent_messages(*, conversation_id: int, user, limit: int, seen: str = "") -> CatchUp | None:
    """The latest messages on screen, for a page that (re)connects; None if the
    conversation is not the user's. `seen`: the stamp the page caught up with
    last; when nothing it shows has changed since, the messages are not read."""
    conversation = (Conversation.objects.for_user(user).filter(pk=conversation_id)
                    .annotate(message_count=Count("messages"),
                              last_change=Max("messages__updated_at"))
                    .first())
    if conversation is None:
        return None
    stamp = catch_up_stamp(conversation, limit)
    if seen == stamp:
        return CatchUp(stamp, None)
    return CatchUp(stamp, conversation_branch(conversation=conversation, limit=limit))


def catch_up_stamp(conversation: Conversation, limit: int) -> str:
    """Changes whenever what a catch-up shows may: a message added or removed
    (their count), one written (its updated_at: every checkpoint, finish,
    stop and close writes it, with its usage and pictures), another version
    chosen (current_children), or the catch-up's length. Read with
    recent_messages' annotations."""
    state = json.dumps([conversation.pk, conversation.message_count,
                        conversation.last_change.isoformat() if conversation.last_change else "",
                        conversation.current_children or {}, limit], sort_keys=True)
    return hashlib.blake2b(state.encode(), digest_size=12).hexdigest()


SIDEBAR_PAGE = 50


@dataclass
class SidebarPage:
    """One page of the sidebar, newest first; the first page starts with the pinned.
    `next_cursor`: where the next page starts ("" at the end)."""

    items: list[Conversation]
    next_cursor: str = ""

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def sidebar_conversations(*, user, after: str = "", limit: int = SIDEBAR_PAGE) -> SidebarPage:
    """Keyset pages (updated_at, id): page 100 reads what page 1 reads, through
    the conv_owner_sidebar index, instead of skipping 5,000 rows."""
    listed = Conversation.objects.for_user(user).in_sidebar().select_related("model")
    pinned: list[Conversation] = []
    unpinned = listed.filter(pinned=False)
    position = _cursor(after)
    if position is None:
        pinned = list(listed.filter(pinned=True).order_by("-updated_at", "-pk"))
    else:
        when, pk = position
        unpinned = unpinned.filter(Q(updated_at__lt=when) | Q(updated_at=when, pk__lt=pk))
    page = list(unpinned.order_by("-updated_at", "-pk")[:limit + 1])
    more = len(page) > limit
    page = page[:limit]
    last = page[-1] if more else None
    return SidebarPage(pinned + page,
                       f"{last.updated_at.isoformat()}_{last.pk}" if last is not None else "")


def _cursor(after: str) -> tuple[datetime, int] | None:
    when, _, pk = after.rpartition("_")
    try:
        return datetime.fromisoformat(when), int(pk)
    except ValueError:
        return None
