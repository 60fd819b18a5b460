"""Run a generation worker: the replies of web processes in GENERATION_MODE=workers."""

from __future__ import annotations

import asyncio
import signal

import uvloop
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from conversations import lifespan, workers
from conversations.infra import translations


class Command(BaseCommand):
    help = "Generate the replies that web processes hand over (needs REDIS_URL)."

    def handle(self, *args, **options) -> None:
        if not settings.REDIS_URL:
            raise CommandError("A generation worker needs REDIS_URL: it hears web processes "
                               "through Redis.")
        translations.compile_catalogues()
        lifespan.as_generation_worker()
        uvloop.run(self._run())

    async def _run(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await workers.run_worker(stop)
