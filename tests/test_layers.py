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
