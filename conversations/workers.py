"""Generation workers: processes that generate the replies web processes hand over.

With GENERATION_MODE=workers (`manage.py serve --workers N` sets it, Redis
required) a web process stores the message and its pending reply, commits,
and sends a GenerationRequest on the channel layer; it runs no reply itself.
A worker (`manage.py generate --index K`) runs the replies handed to it on its
own event loop, as the single embedded process does, and publishes frames
through Redis to the conversation's group, wherever the page's socket is.

Several workers (GENERATION_WORKERS, `serve --generation-workers M`) each
hear their own channel, and a web process hands each reply to one of them
by a hash of its id (events.requests_channel_for): each worker's loop
carries its share of the streams, with its own GIL. Measured with
`bench/streaming.py --config team --generation-workers 1|2` (100 sustained
streams, 2 cores, three runs each): later chunks +208/+163/+191 ms median
and +941/+476/+1,216 ms p99 over the bare baseline with one worker,
+145/+116/+157 and +525/+519/+526 with two. The burst's time from Send to
the first token did not tell the two apart (0.75-2.0 s either way).

Nothing is lost if a request is not heard (Redis pub/sub keeps nothing for a
worker that is restarting): the database is the queue. A worker also claims
every reply left pending for longer than PENDING_GRACE, and `begin_reply`'s
row lock makes sure only one worker generates each reply.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from conversations import generation, lifespan
from conversations.events import GenerationRequest, requests_channel
from conversations.models import Message

logger = logging.getLogger(__name__)

PENDING_GRACE = 2.0  # seconds a pending reply waits for its request before a worker claims it
PENDING_SCAN_INTERVAL = 2.0


async def run_worker(stop: asyncio.Event, index: int = 0) -> None:
    """Generate the replies handed to worker `index` until `stop` is set, then
    end those running as interrupted."""
    await lifespan.startup()
    tasks = [asyncio.create_task(_take_requests(requests_channel(index)),
                                 name="generation-requests"),
             asyncio.create_task(_claim_pending_periodically(), name="pending-replies")]
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await lifespan.shutdown()


async def _take_requests(channel: str) -> None:
    layer = get_channel_layer()
    while True:
        try:
            request: GenerationRequest = await layer.receive(channel)
        except Exception:  # Redis away: the pending scan covers what is missed meanwhile
            logger.warning("reading generation requests failed; retrying", exc_info=True)
            await asyncio.sleep(1)
            continue
        if request.get("type") != "generation.request":
            continue
        announce = request.get("announce")
        generation.spawn(request["message_id"],
                         (request["announce_group"], announce) if announce else None)


async def _claim_pending_periodically() -> None:
    while True:
        await asyncio.sleep(PENDING_SCAN_INTERVAL)
        try:
            for message_id in await database_sync_to_async(_waiting_replies)():
                generation.spawn(message_id)
        except Exception:
            logger.exception("looking for pending replies failed")


def _waiting_replies() -> list[int]:
    cutoff = timezone.now() - timedelta(seconds=PENDING_GRACE)
    running = generation.running_generations()
    return [pk for pk in Message.objects.filter(
        status=Message.Status.PENDING, updated_at__lt=cutoff).values_list("pk", flat=True)
        if pk not in running]
