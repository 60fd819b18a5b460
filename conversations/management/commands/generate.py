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

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--index", type=int, default=0,
            help="which of the GENERATION_WORKERS workers this is (0, 1, …): it generates "
            "the replies handed to it (events.requests_channel_for)")

    def handle(self, *args, index: int, **options) -> None:
        if not settings.REDIS_URL:
            raise CommandError("A generation worker needs REDIS_URL: it hears web processes "
                               "through Redis.")
        if not 0 <= index < settings.GENERATION_WORKERS:
            raise CommandError(f"--index must be from 0 to GENERATION_WORKERS - 1 "
                               f"({settings.GENERATION_WORKERS - 1}); got {index}.")
        translations.compile_catalogues()
        lifespan.as_generation_worker()
        uvloop.run(self._run(index))

    async def _run(self, index: int) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await workers.run_worker(stop, index)
