"""Shared fixtures: a real relay simulator on loopback, services, live servers."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from conversations.simulator.app import Simulator

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# The fake relays of the tests listen on loopback: allowed here (also for the
# servers tests start, through the environment), refused by default in the app.
# Tests of the address rule set it off with pytest-django's `settings`.
os.environ["RELAY_ALLOW_PRIVATE"] = "true"


@pytest.fixture(scope="session", autouse=True)
def _relays_on_loopback() -> None:
    from django.conf import settings

    settings.RELAY_ALLOW_PRIVATE = True


@pytest.fixture(autouse=True)
def _no_language_left_active():
    """A request through the test client leaves its language active in this thread
    (LocaleMiddleware activates it; nothing deactivates it): the next test would
    start in Chinese."""
    yield
    from django.utils import translation

    translation.deactivate()


@pytest.fixture(scope="session", autouse=True)
def _compiled_catalogues() -> None:
    """The .mo files, as `serve` compiles them for the app."""
    from conversations.infra.translations import compile_catalogues

    compile_catalogues()


def pytest_collection_modifyitems(config, items):
    """Browser tests run last.

    Playwright's sync API keeps an event loop running in the main thread from
    the first browser test to the end of the session; asyncio tests collected
    after it could not start their own loop. A stable sort keeps the rest in
    their usual order.
    """
    items.sort(key=lambda item: "browser" in item.path.parts)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThreadedServer:
    """Runs an ASGI app with uvicorn on a background thread, over real loopback HTTP."""

    def __init__(self, app, port: int | None = None, **ssl_files: str) -> None:
        self.port = port or free_port()
        self.scheme = "https" if ssl_files else "http"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off",
            ws="none", **ssl_files,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    def start(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"


class SimulatorHandle:
    def __init__(self, simulator: Simulator, server: ThreadedServer) -> None:
        self.sim = simulator
        self.server = server

    @property
    def url(self) -> str:
        """The relay base URL (what a Relay row stores)."""
        return self.server.url

    @property
    def requests(self):
        return self.sim.chat_requests


@pytest.fixture(scope="session")
def _simulator_server() -> Iterator[SimulatorHandle]:
    simulator = Simulator(token_rate=0)
    server = ThreadedServer(simulator).start()
    yield SimulatorHandle(simulator, server)
    server.stop()


@pytest.fixture
def simulator(_simulator_server: SimulatorHandle) -> SimulatorHandle:
    """A relay simulator over loopback HTTP, as fast as possible, with a clean record."""
    _simulator_server.sim.reset()
    _simulator_server.sim.token_rate = 0
    return _simulator_server


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip without the service, except under CI=true, where it must be there."""
    if _reachable(host, port):
        return
    if IN_CI:
        pytest.fail(f"{name} at {host}:{port} is required under CI=true but is not reachable")
    pytest.skip(f"{name} is not running at {host}:{port}")


@pytest.fixture
def postgres_url() -> str:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
