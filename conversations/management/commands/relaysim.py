"""Run the relay simulator on its own port (for tests, benchmarks, other apps)."""

from __future__ import annotations

import uvicorn
from django.core.management.base import BaseCommand

from conversations.simulator.app import Simulator


class Command(BaseCommand):
    help = "Serve the OpenAI-compatible relay simulator."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001)
        parser.add_argument("--rate", type=float, default=40.0, help="tokens per second")
        parser.add_argument("--log", action="store_true",
                            help="serve every request received at GET/DELETE /_sim/requests")

    def handle(self, *args, host: str, port: int, rate: float, log: bool, **options) -> None:
        self.stdout.write(f"Relay simulator at http://{host}:{port}/v1 ({rate:g} tokens/s)")
        self.stdout.flush()
        uvicorn.run(Simulator(token_rate=rate, request_log=log), host=host, port=port,
                    log_level="warning")
