"""The team configuration's Redis pub/sub layer: publishes overlap, and each
publisher's messages still arrive in order (against the machine's Redis)."""

from __future__ import annotations

import asyncio
import secrets

from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)

from conversations.infra.layers import RedisPubSubLayer, _PublishingShard

PUBLISHERS = 50
MESSAGES = 20


async def test_publishes_overlap_and_each_publishers_messages_arrive_in_order(redis_url):
    layer = RedisPubSubLayer(hosts=[redis_url], prefix=f"test-{secrets.token_hex(4)}")
    try:
        channels = []
        for n in range(PUBLISHERS):
            channel = await layer.new_channel()
            await layer.group_add(f"conversation-{n}", channel)
            channels.append(channel)
        shard = layer._get_layer()._shards[0]
        assert isinstance(shard, _PublishingShard)
        shard._ensure_redis()
        in_flight = most = 0
        publish = shard._redis.publish

        async def counted(*args, **kwargs):
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            try:
                return await publish(*args, **kwargs)
            finally:
                in_flight -= 1

        shard._redis.publish = counted

        async def publisher(n: int) -> None:
            for m in range(MESSAGES):
                await layer.group_send(f"conversation-{n}", {"type": "reply.frame", "m": m})

        await asyncio.gather(*(publisher(n) for n in range(PUBLISHERS)))
        for n, channel in enumerate(channels):
            received = [await asyncio.wait_for(layer.receive(channel), 5)
                        for _ in range(MESSAGES)]
            assert [message["m"] for message in received] == list(range(MESSAGES)), n
        # The stock shard's lock allowed one at a time.
        assert most > 1
    finally:
        await layer.flush()


async def test_a_crowd_of_publishes_waits_for_a_connection_instead_of_failing(redis_url):
    """More publishes at once than redis-py's pool has connections (100 by default):
    each waits its turn and every message arrives."""
    layer = RedisPubSubLayer(hosts=[redis_url], prefix=f"test-{secrets.token_hex(4)}")
    try:
        channel = await layer.new_channel()
        await layer.group_add("conversation-crowd", channel)
        shard = layer._get_layer()._shards[0]
        shard._ensure_redis()
        crowd = shard._redis.connection_pool.max_connections + 50
        await asyncio.gather(*(layer.group_send("conversation-crowd",
                                                {"type": "reply.frame", "m": m})
                               for m in range(crowd)))
        received = {(await asyncio.wait_for(layer.receive(channel), 5))["m"]
                    for _ in range(crowd)}
        assert received == set(range(crowd))
    finally:
        await layer.flush()


def test_channels_redis_still_has_what_the_layer_replaces():
    """RedisPubSubLayer replaces private parts of channels_redis; if they are renamed,
    this fails instead of the team configuration quietly losing the change."""
    stock = RedisPubSubChannelLayer(hosts=["redis://127.0.0.1:6379/15"])
    assert callable(stock._get_layer) and isinstance(stock._layers, dict)
    loop_layer = RedisPubSubLoopLayer(hosts=["redis://127.0.0.1:6379/15"],
                                      channel_layer=stock)
    assert all(isinstance(s, RedisSingleShardConnection) for s in loop_layer._shards)
    shard = loop_layer._shards[0]
    assert isinstance(shard._lock, asyncio.Lock) and shard._redis is None
    assert callable(shard._ensure_redis) and callable(shard.publish)
