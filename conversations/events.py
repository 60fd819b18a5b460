"""The typed channel-layer messages and the groups they travel in.

Two kinds of group per conversation:
- `conversation-<id>`: what browsers watching the conversation receive;
- `control-<id>`: what running generations listen to (stop, resync).
A generation may run in another server process than the browser's socket;
with Redis as the channel layer both reach each other through these groups.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from channels.layers import get_channel_layer

Block = tuple[int, str]  # (index within the reply, sanitised HTML)


def conversation_group(conversation_id: int) -> str:
    return f"conversation-{conversation_id}"


def control_group(conversation_id: int) -> str:
    return f"control-{conversation_id}"


class ReplyFrame(TypedDict):
    """Blocks of a streaming reply that changed since the last frame."""

    type: Literal["reply.frame"]
    message_id: int
    status: str
    text: list[Block]
    reasoning: list[Block]
    snapshot: bool  # True: every block so far (a reconnecting page's catch-up)


class ReplyFinished(TypedDict):
    """The reply is saved for good: the message as stored, rendered once.

    Rendered by the publisher rather than by every page's socket, so a
    hundred finishing replies are a hundred renders, not a hundred more trips
    to each socket's database thread while other replies stream.
    """

    type: Literal["reply.finished"]
    message_id: int
    html: str


class MessagesCreated(TypedDict):
    """New messages exist (e.g. posted from another tab), rendered once."""

    type: Literal["messages.created"]
    html: str


class ConversationRetitled(TypedDict):
    """The conversation was named (titles.py): its heading and sidebar title, rendered once."""

    type: Literal["conversation.retitled"]
    html: str


class GenerationStop(TypedDict):
    type: Literal["generation.stop"]
    message_id: int


class GenerationResync(TypedDict):
    """A page (re)connected: send it a snapshot of every block so far."""

    type: Literal["generation.resync"]
    reply_channel: str


async def publish(group: str, event: dict) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(group, event)
