"""The WebSocket's view: authenticate, authorise, join, relay frames as HTML."""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils import translation

from conversations.accounts import language as languages
from conversations.events import (
    CONVERSATION_TYPES,
    AccountClosed,
    ConversationEvent,
    ConversationRetitled,
    GenerationResync,
    MessagesCreated,
    ReplyFinished,
    ReplyFrame,
    control_group,
    conversation_group,
    publish,
    user_group,
)
from conversations.fragments import branch_upsert, catch_up_marker, frame_html
from conversations.infra.concurrency import database_work
from conversations.selectors import recent_messages

# Close codes (4000-4999 are for applications): the page shows why.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CATCH_UP_MESSAGES = 4


class ConversationConsumer(AsyncWebsocketConsumer):
    conversation_id: int
    group: str | None = None
    account_group: str | None = None
    language: str = ""  # the socket's (its session's choice, else its Accept-Language)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.conversation_id = int(self.scope["url_route"]["kwargs"]["conversation_id"])
        # Joined before the catch-up is read, so nothing published meanwhile is
        # missed; events wait (in _early, or the channel's queue) until it is sent,
        # and nothing is sent before ownership is known.
        group = conversation_group(self.conversation_id)
        self._early: list[dict] = []
        self._live = False
        deliver_directly = getattr(self.channel_layer, "deliver_directly", None)
        if deliver_directly is not None:  # the in-process layer (conversations.infra.layers)
            deliver_directly(self.channel_name, self._deliver, self._FORWARDED,
                             on_stall=self.close)
        await self.channel_layer.group_add(group, self.channel_name)
        self.group = group
        # One trip to the database thread: ownership and the catch-up together
        # (after a restart every page reconnects at once, queued on that thread).
        catch_up = await self._catch_up(user)
        if catch_up is None:
            await self.disconnect(CLOSE_NOT_FOUND)
            self.group = None
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.account_group = user_group(user.pk)
        await self.channel_layer.group_add(self.account_group, self.channel_name)
        await self.accept()
        # Catch up: the latest messages as stored, then every block so far
        # from a running generation (wherever it runs).
        if catch_up:
            await self.send(text_data=catch_up)
        await self._go_live()
        resync: GenerationResync = {
            "type": "generation.resync", "reply_channel": self.channel_name
        }
        await publish(control_group(self.conversation_id), resync)

    async def disconnect(self, code: int) -> None:
        stop_delivering = getattr(self.channel_layer, "stop_delivering", None)
        if stop_delivering is not None:
            stop_delivering(self.channel_name)
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if self.account_group:
            await self.channel_layer.group_discard(self.account_group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """The page sends nothing that matters; writes go over HTTP with CSRF."""

    # -- channel-layer events, one handler per type --------------------------

    # Events this socket forwards: they carry their HTML (a frame, its blocks)
    # and touch no database.
    _FORWARDED = CONVERSATION_TYPES

    async def dispatch(self, message) -> None:
        if message.get("type") in self._FORWARDED:
            # Channels' dispatch would first hop to the single sync thread
            # (aclose_old_connections), queueing every frame behind whatever
            # views and saves are running there.
            await self._forward(message)
            return
        await super().dispatch(message)

    async def reply_frame(self, event: ReplyFrame) -> None:
        await self._send_html(frame_html(event, self.language))

    async def reply_finished(self, event: ReplyFinished) -> None:
        await self._send_html(event["html"])

    async def messages_created(self, event: MessagesCreated) -> None:
        await self._send_html(event["html"])

    async def conversation_retitled(self, event: ConversationRetitled) -> None:
        await self._send_html(event["html"])

    async def account_closed(self, event: AccountClosed) -> None:
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def _send_html(self, html: str) -> None:
        if html:
            await self.send(text_data=html)

    async def _deliver(self, message: dict) -> None:
        """Handed over directly by the in-process layer, in the sender's step.

        What arrives before the catch-up is sent waits for it, as it would in
        the channel's queue: a live frame must not be overwritten by an older
        stored copy of the message.
        """
        if not self._live:
            self._early.append(message)
            return
        await self._forward(message)

    async def _go_live(self) -> None:
        while self._early:
            await self._forward(self._early.pop(0))
        self._live = True  # no await since the queue was seen empty

    async def _forward(self, event: ConversationEvent) -> None:
        """The handler of the event's type (channels' own naming: `reply.frame` →
        `reply_frame`), called without channels' dispatch hop."""
        await getattr(self, event["type"].replace(".", "_"))(event)

    # -- database -------------------------------------------------------------

    @database_work
    def _catch_up(self, user) -> str | None:
        """The latest messages rendered (in the socket's language), or None if the
        conversation is not the user's. Learns the socket's language here, in the
        database thread (its session may need reading); frames wait for this."""
        self.language = languages.for_scope(self.scope)
        with translation.override(self.language):
            return self._catch_up_in_language(user)

    def _catch_up_in_language(self, user) -> str | None:
        """The messages, and the stamp the page hands back when it reconnects
        (`?seen=`, chat.js): a page that has every message as it now is gets
        the stamp alone (after a restart every page reconnects at once, and
        reading and rendering their messages was most of a connect's CPU)."""
        caught_up = recent_messages(
            conversation_id=self.conversation_id, user=user, limit=CATCH_UP_MESSAGES,
            seen=self._seen(),
        )
        if caught_up is None:
            return None
        messages = str(branch_upsert(caught_up.items)) if caught_up.items else ""
        return messages + catch_up_marker(caught_up.stamp)

    def _seen(self) -> str:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        return (query.get("seen") or [""])[0][:64]
