"""Server start and stop, as ASGI lifespan events, and the watch for dead replies."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging

from channels.db import database_sync_to_async
from django.conf import settings

from conversations import generation, replies
from conversations.billing import prices as pricing
from conversations.events import conversation_group, publish
from conversations.fragments import messages_upsert
from conversations.models import Message

logger = logging.getLogger(__name__)


def _warm_up() -> None:
    """Load what the first reply would otherwise load mid-stream.

    genai-prices builds its price tables (pydantic models) on first use, a
    second or more of CPU that would stall every stream when the first reply
    is priced.
    """
    with contextlib.suppress(pricing.UnknownPrice):
        pricing.list_price(pricing.TokenCounts(1, 1, 0, 0, 0), "gemini-2.5-flash")


def _freeze_start_up_objects() -> None:
    """Keep the garbage collector's full passes off what lives until exit.

    Modules, settings, URL patterns and the price tables are some hundred
    thousand objects that a full collection would walk every time; measured
    with 100 streaming replies, one such pass stalled every stream for up to
    380 ms. Frozen, they are left out of every collection.
    """
    gc.collect()
    gc.freeze()


async def startup() -> None:
    _warm_up()
    _freeze_start_up_objects()
    loop = asyncio.get_running_loop()
    generation.bind_loop(loop)
    global _sweeper
    _sweeper = loop.create_task(_sweep_dead_replies_periodically(), name="dead-replies")


_sweeper: asyncio.Task | None = None


def _sweep_interval() -> float:
    return max(1.0, settings.STREAM_STALE_AFTER / 3)


async def _sweep_dead_replies_periodically() -> None:
    """Every process looks for replies whose process died (no heartbeat for
    STREAM_STALE_AFTER), closes them and tells the pages open on them.

    The first look is at start-up: a restarted server closes what it left."""
    while True:
        try:
            await sweep_dead_replies()
        except Exception:
            logger.exception("looking for dead replies failed")
        await asyncio.sleep(_sweep_interval())


async def sweep_dead_replies() -> int:
    closed = await database_sync_to_async(_close_and_render)()
    for conversation_id, html in closed:
        await publish(conversation_group(conversation_id),
                      {"type": "messages.created", "html": html})
    return len(closed)


def _close_and_render() -> list[tuple[int, str]]:
    ids = replies.close_dead_replies()
    if not ids:
        return []
    messages = (Message.objects.filter(pk__in=ids).select_related("model", "usage")
                .prefetch_related("attachments"))
    return [(m.conversation_id, str(messages_upsert([m]))) for m in messages]


async def handle_lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await startup()
            except Exception as exc:
                logger.exception("start-up failed")
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if _sweeper is not None:
                _sweeper.cancel()
            await generation.shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
