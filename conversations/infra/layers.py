"""The channel layers: in memory without per-send overheads that grow with load,
and Redis pub/sub without one lock around every publish."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from copy import deepcopy
from dataclasses import dataclass

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer
from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from channels_redis.utils import _wrap_close, decode_hosts

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


class _PublishingShard(RedisSingleShardConnection):
    """channels_redis's connection to one Redis, publishing without its lock.

    The stock shard holds one asyncio.Lock around every PUBLISH (and every
    subscribe): a process publishes one message at a time, each waiting for
    Redis's answer and a turn of the loop before the next may go. A generation
    worker streaming 100 replies publishes about 2,000 frames a second, and
    that queue is where the team configuration's frames waited: relay → socket
    +1,023 ms median, +2,067 ms p99 on later chunks at 100 sustained streams in
    bench/streaming.py, while the worker's CPU sat mostly idle.

    redis-py's client takes a pooled connection per command, so publishes may
    overlap. Order is kept where it matters: each publisher (one reply) awaits
    its frame's PUBLISH before sending the next, and Redis delivers to a
    subscriber in the order it executed them. Subscribing keeps the lock (the
    pub/sub connection's state is shared).

    At most MAX_PUBLISHING publishes are in flight; more wait for a turn.
    redis-py's pool refuses a command outright once all its connections
    (100 by default) are taken, and a burst of a hundred replies beginning at
    once took them all: frames failed ("Too many connections") instead of
    waiting a moment.
    """

    MAX_PUBLISHING = 64

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._publishing = asyncio.Semaphore(self.MAX_PUBLISHING)

    async def publish(self, channel, message):
        if self._redis is None:
            async with self._lock:
                self._ensure_redis()
        async with self._publishing:
            await self._redis.publish(channel, message)


class _LoopLayer(RedisPubSubLoopLayer):
    def __init__(self, hosts=None, *args, **kwargs) -> None:
        super().__init__(hosts, *args, **kwargs)
        self._shards = [_PublishingShard(host, self) for host in decode_hosts(hosts)]


class RedisPubSubLayer(RedisPubSubChannelLayer):
    """channels_redis's pub/sub layer with _PublishingShard (what the team
    configuration runs). It replaces the private `_get_layer` and `_shards`;
    tests/test_layers.py fails if channels_redis renames them."""

    def _get_layer(self):
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = _LoopLayer(*self._args, **self._kwargs,
                                                    channel_layer=self)
            _wrap_close(self, loop)
        return layer
