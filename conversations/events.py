"""The typed channel-layer messages and the groups they travel in.

Two kinds of group per conversation:
- `conversation-<id>`: what browsers watching the conversation receive;
- `control-<id>`: what running generations listen to (stop, resync);
one per user, `user-<id>`, that all their sockets join (a deactivated
account's sockets close at once);
and one channel per generation worker, `generation.requests.<k>`, on which
web processes hand replies to the workers (GENERATION_MODE=workers), each
reply to one of GENERATION_WORKERS by a hash of its id.
A generation may run in another server process than the browser's socket;
with Redis as the channel layer both reach each other through these groups.

`publish` and `send_to_channel` take only the types declared here, and each
group only its own kinds: a typo or a frame sent to the wrong group fails at
once instead of vanishing.
"""

from __future__ import annotations

import zlib
from typing import Literal, TypedDict, get_args, get_type_hints

from channels.layers import get_channel_layer

GENERATION_REQUESTS = "generation.requests"  # + ".<k>": worker k's channel

Block = tuple[int, str]  # (index within the reply, sanitised HTML)


def requests_channel(worker: int) -> str:
    """The channel generation worker `worker` (0, 1, …) hears requests on."""
    return f"{GENERATION_REQUESTS}.{worker}"


def requests_channel_for(message_id: int, workers: int) -> str:
    """The worker channel a reply is handed to: spread evenly over `workers`.

    By a hash of the id, not the id modulo `workers`: a post makes two rows,
    so one person's replies would all have ids of one parity."""
    return requests_channel(zlib.crc32(str(message_id).encode()) % max(workers, 1))


def conversation_group(conversation_id: int) -> str:
    return f"conversation-{conversation_id}"


def control_group(conversation_id: int) -> str:
    return f"control-{conversation_id}"


def user_group(user_id: int) -> str:
    """Every socket a user has open, on any process."""
    return f"user-{user_id}"


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


class AccountClosed(TypedDict):
    """The user was deactivated: their sockets close now."""

    type: Literal["account.closed"]


class GenerationRequest(TypedDict):
    """A web process asks the generation workers for a reply (after its commit)."""

    type: Literal["generation.request"]
    message_id: int
    announce_group: str  # "" or the group `announce` goes to before the first frame
    announce: MessagesCreated | None


ConversationEvent = ReplyFrame | ReplyFinished | MessagesCreated | ConversationRetitled
ControlEvent = GenerationStop | GenerationResync
Event = ConversationEvent | ControlEvent | GenerationRequest | AccountClosed


def _types(*events: type) -> frozenset[str]:
    return frozenset(get_args(get_type_hints(e)["type"])[0] for e in events)


CONVERSATION_TYPES = _types(ReplyFrame, ReplyFinished, MessagesCreated, ConversationRetitled)
CONTROL_TYPES = _types(GenerationStop, GenerationResync)
REQUEST_TYPES = _types(GenerationRequest)
USER_TYPES = _types(AccountClosed)
_GROUP_KINDS = {"conversation-": CONVERSATION_TYPES, "control-": CONTROL_TYPES,
                "user-": USER_TYPES}


def _check(event: Event, allowed: frozenset[str], where: str) -> None:
    kind = event.get("type") if isinstance(event, dict) else None
    if kind not in allowed:
        raise TypeError(f"{kind!r} is not an event {where} takes ({', '.join(sorted(allowed))})")


async def publish(group: str, event: Event) -> None:
    """Send an event to every member of a conversation's or control group."""
    prefix = group.split("-", 1)[0] + "-"
    _check(event, _GROUP_KINDS.get(prefix, frozenset()), f"the group {group!r}")
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(group, event)


async def send_to_channel(channel: str, event: Event) -> None:
    """Send an event to one channel: a page's socket (a catch-up snapshot) or
    the generation workers' requests."""
    requests = channel.startswith(f"{GENERATION_REQUESTS}.")
    allowed = REQUEST_TYPES if requests else CONVERSATION_TYPES
    _check(event, allowed, f"the channel {channel!r}")
    layer = get_channel_layer()
    if layer is not None:
        await layer.send(channel, event)
