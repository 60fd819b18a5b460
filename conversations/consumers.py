"""The WebSocket's view: authenticate, authorise, join, relay frames as HTML."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from conversations.events import (
    ConversationRetitled,
    GenerationResync,
    MessagesCreated,
    ReplyFinished,
    ReplyFrame,
    control_group,
    conversation_group,
)
from conversations.fragments import frame_html, messages_upsert
from conversations.models import Conversation
from conversations.selectors import recent_messages

# Close codes (4000-4999 are for applications): the page shows why.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CATCH_UP_MESSAGES = 4


class ConversationConsumer(AsyncWebsocketConsumer):
    conversation_id: int
    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.conversation_id = int(self.scope["url_route"]["kwargs"]["conversation_id"])
        if not await self._owns_conversation(user):
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = conversation_group(self.conversation_id)
        self._early: list[dict] = []
        self._live = False
        deliver_directly = getattr(self.channel_layer, "deliver_directly", None)
        if deliver_directly is not None:  # the in-process layer (conversations.layers)
            deliver_directly(self.channel_name, self._deliver, self._FORWARDED)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        # Catch up: the latest messages as stored, then every block so far
        # from a running generation (wherever it runs).
        catch_up = await self._render_recent()
        if catch_up:
            await self.send(text_data=catch_up)
        await self._go_live()
        resync: GenerationResync = {
            "type": "generation.resync", "reply_channel": self.channel_name
        }
        await self.channel_layer.group_send(control_group(self.conversation_id), dict(resync))

    async def disconnect(self, code: int) -> None:
        stop_delivering = getattr(self.channel_layer, "stop_delivering", None)
        if stop_delivering is not None:
            stop_delivering(self.channel_name)
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """The page sends nothing that matters; writes go over HTTP with CSRF."""

    # -- channel-layer events, one handler per type --------------------------

    # Events this socket forwards: they carry their HTML (a frame, its blocks)
    # and touch no database.
    _FORWARDED = frozenset(
        {"reply.frame", "reply.finished", "messages.created", "conversation.retitled"}
    )

    async def dispatch(self, message) -> None:
        if message.get("type") in self._FORWARDED:
            # Channels' dispatch would first hop to the single sync thread
            # (aclose_old_connections), queueing every frame behind whatever
            # views and saves are running there.
            await self._forward(message)
            return
        await super().dispatch(message)

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

    async def _forward(
        self, event: ReplyFrame | ReplyFinished | MessagesCreated | ConversationRetitled
    ) -> None:
        html = frame_html(event) if event["type"] == "reply.frame" else event["html"]
        if html:
            await self.send(text_data=html)

    # -- database -------------------------------------------------------------

    @database_sync_to_async
    def _owns_conversation(self, user) -> bool:
        return Conversation.objects.for_user(user).filter(pk=self.conversation_id).exists()

    @database_sync_to_async
    def _render_recent(self) -> str:
        messages = recent_messages(
            conversation_id=self.conversation_id, user=self.scope["user"],
            limit=CATCH_UP_MESSAGES,
        )
        return str(messages_upsert(messages)) if messages else ""
