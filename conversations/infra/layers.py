"""The in-memory channel layer, without per-send overheads that grow with load."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from copy import deepcopy
from dataclasses import dataclass

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Direct:
    handler: Callable[[dict], Awaitable[None]]
    types: frozenset[str]
    on_stall: Callable[[], Awaitable[None]] | None


class SingleProcessChannelLayer(InMemoryChannelLayer):
    """channels' InMemoryChannelLayer, tuned for many sockets streaming frames.

    - The stock layer walks every channel and every group membership on every
      send, group_send and receive (`_clean_expired`). With hundreds of open
      sockets each receiving about 20 frames a second, that scan costs more
      than the rest of a frame; expiry is measured in minutes, so cleaning
      once a second loses nothing.
    - Its group_send starts one task per member and waits for them with
      as_completed; putting on an in-memory queue never blocks, so sending to
      each member in turn does the same work without the tasks.
    - Its send and receive build a new asyncio.Queue on every call (the
      default argument of `dict.setdefault`), even when the channel has one.

    And a consumer in this process may take chosen message types directly
    (`deliver_directly`): a send then awaits the consumer's handler instead
    of queueing a copy for the consumer's receive loop. A frame reaches its
    socket in the sender's own step, not two loop turns, a task and a copy
    later; with a hundred streams those turns were most of a frame's delay.
    Other layers (Redis) have no such method and consumers fall back to the
    queue, so the same consumer works across processes.

    A socket whose browser stops reading would make that await wait, and the
    reply's generation with it: a delivery that takes longer than
    STALL_TIMEOUT ends direct delivery to that channel and calls its
    `on_stall` (the consumer closes the socket; its page reconnects and
    catches up from a snapshot).

    Kept by measurement (issue 2, bench/streaming.py, the embedded
    configuration at 100 conversations): the stock layer's scan and per-send
    tasks and the queue's two loop turns were most of a frame's delay. It
    replaces private parts of the stock layer (`channels`, `groups`,
    `_clean_expired`); tests/test_layers.py fails if channels renames them.
    The team configuration (Redis) does not use it.
    """

    clean_interval = 1.0
    _last_clean = 0.0
    STALL_TIMEOUT = 2.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._direct: dict[str, _Direct] = {}

    def deliver_directly(
        self, channel: str, handler: Callable[[dict], Awaitable[None]], types: Iterable[str],
        on_stall: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Messages of these types sent to the channel are handed to `handler`."""
        self._direct[channel] = _Direct(handler, frozenset(types), on_stall)

    def stop_delivering(self, channel: str) -> None:
        self._direct.pop(channel, None)

    async def flush(self) -> None:
        self._direct.clear()
        await super().flush()

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._last_clean < self.clean_interval:
            return
        self._last_clean = now
        super()._clean_expired()

    def _queue(self, channel: str) -> asyncio.Queue:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        return queue

    async def send(self, channel, message):
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        direct = self._direct.get(channel)
        if direct is not None and message.get("type") in direct.types:
            try:
                async with asyncio.timeout(self.STALL_TIMEOUT):
                    await direct.handler(message)
            except TimeoutError:
                logger.info("socket %s stopped reading; closing it", channel)
                self._direct.pop(channel, None)
                if direct.on_stall is not None:
                    asyncio.get_running_loop().create_task(direct.on_stall())
            except Exception:
                # One broken socket must not fail the sender (a reply's generation).
                logger.info("delivering %s to %s failed", message.get("type"), channel,
                            exc_info=True)
            return
        try:
            self._queue(channel).put_nowait((time.time() + self.expiry, deepcopy(message)))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    async def receive(self, channel):
        self.require_valid_channel_name(channel)
        self._clean_expired()
        queue = self._queue(channel)
        try:
            _, message = await queue.get()
        finally:
            if queue.empty():
                self.channels.pop(channel, None)
        return message

    async def group_send(self, group, message):
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, {})):
            try:
                await self.send(channel, message)
            except ChannelFull:
                pass  # as the stock layer: a full socket misses frames, not the others
