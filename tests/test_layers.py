"""The in-process channel layer: queues as channels' own, plus direct delivery."""

from __future__ import annotations

import asyncio

from conversations.infra.layers import SingleProcessChannelLayer


async def test_chosen_types_are_handed_to_the_consumer_in_the_senders_step():
    layer = SingleProcessChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("conversation-1", channel)
    handed: list[dict] = []

    async def handler(message: dict) -> None:
        handed.append(message)

    layer.deliver_directly(channel, handler, {"reply.frame"})
    await layer.group_send("conversation-1", {"type": "reply.frame", "n": 1})
    assert handed == [{"type": "reply.frame", "n": 1}]  # already there, no loop turn
    # Other types still go through the channel's queue.
    await layer.group_send("conversation-1", {"type": "something.else"})
    assert await asyncio.wait_for(layer.receive(channel), 1) == {"type": "something.else"}
    # Once the consumer leaves, frames queue again (and expire) like any message.
    layer.stop_delivering(channel)
    await layer.group_send("conversation-1", {"type": "reply.frame", "n": 2})
    assert len(handed) == 1
    assert await asyncio.wait_for(layer.receive(channel), 1) == {"type": "reply.frame", "n": 2}


async def test_a_broken_socket_does_not_fail_the_sender_or_the_other_sockets():
    layer = SingleProcessChannelLayer()
    broken, healthy = await layer.new_channel(), await layer.new_channel()
    handed: list[dict] = []

    async def fail(message: dict) -> None:
        raise RuntimeError("the socket is gone")

    async def keep(message: dict) -> None:
        handed.append(message)

    for channel, handler in ((broken, fail), (healthy, keep)):
        await layer.group_add("conversation-2", channel)
        layer.deliver_directly(channel, handler, {"reply.frame"})
    await layer.group_send("conversation-2", {"type": "reply.frame"})
    assert handed == [{"type": "reply.frame"}]


async def test_queued_messages_are_copies_and_full_channels_drop_not_block():
    layer = SingleProcessChannelLayer(capacity=1)
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    message = {"type": "x", "items": [1]}
    await layer.group_send("g", message)
    await layer.group_send("g", {"type": "x", "items": [2]})  # full: dropped, no error
    message["items"].append(99)
    assert await layer.receive(channel) == {"type": "x", "items": [1]}


def test_the_stock_layer_still_has_what_the_tuned_one_overrides():
    """SingleProcessChannelLayer replaces private parts of channels' in-memory
    layer; if channels renames them, this fails instead of the tuning silently
    doing nothing (or the layer breaking under load)."""
    from channels.layers import InMemoryChannelLayer

    stock = InMemoryChannelLayer()
    assert isinstance(stock.channels, dict)
    assert isinstance(stock.groups, dict)
    assert callable(stock._clean_expired)
    assert isinstance(stock.expiry, int | float)
    assert callable(stock.get_capacity)


async def test_a_socket_that_stops_reading_is_closed_and_does_not_stall_the_sender():
    layer = SingleProcessChannelLayer()
    layer.STALL_TIMEOUT = 0.2
    closed = asyncio.Event()
    never = asyncio.Event()

    async def stuck(message):
        await never.wait()  # a browser that never drains its socket

    async def on_stall():
        closed.set()

    channel = await layer.new_channel()
    layer.deliver_directly(channel, stuck, {"reply.frame"}, on_stall=on_stall)
    await layer.group_add("conversation-1", channel)
    started = asyncio.get_running_loop().time()
    await layer.group_send("conversation-1", {"type": "reply.frame"})
    assert asyncio.get_running_loop().time() - started < 1.0
    await asyncio.wait_for(closed.wait(), 1)
    # Later frames go to its queue (the consumer is closing), not to the stuck handler.
    await layer.group_send("conversation-1", {"type": "reply.frame"})
