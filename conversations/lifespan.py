"""Server start and stop, as ASGI lifespan events."""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from django.conf import settings

from . import generation, services

logger = logging.getLogger(__name__)


async def startup() -> None:
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
