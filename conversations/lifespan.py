"""Server start and stop, as ASGI lifespan events."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging

from channels.db import database_sync_to_async
from django.conf import settings

from . import generation, pricing, services

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
    await database_sync_to_async(services.recover_interrupted)()
    # A reply from a process that died moments ago is not stale yet; look again
    # once it must be.
    loop.call_later(
        settings.STREAM_STALE_AFTER + 1,
        lambda: loop.create_task(database_sync_to_async(services.recover_interrupted)()),
    )


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
            await generation.shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
