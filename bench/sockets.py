"""Many open pages: the server's CPU while 2,000 WebSockets sit idle, and how
long 2,000 pages take to be served again after a server restart.

    .venv/bin/python bench/sockets.py [--config embedded team] [--sockets 2000]

For each configuration (as bench/streaming.py: `embedded` one process on
SQLite; `team` `serve --workers N` on PostgreSQL and Redis), the bench seeds
one conversation per socket (a question and its answer each), opens every
socket as a page does (sign-in cookie, Origin), waits for each catch-up, then:

- idle: reads the CPU time of the server's processes (/proc) over `--idle`
  seconds and prints it as a share of one core;
- restart: stops the server (SIGTERM) and starts it again; every page
  reconnects at once, as htmx's ws extension does (retrying every 0.5 s until
  the server answers) with the stamp of its last catch-up, as the page's
  script does, and the bench prints the time from the new server's first
  answer, and from the restart, until every page has its catch-up (the stamp
  alone when it has every message already);
- the same restart again with pages that forget their stamp, so that every
  page is sent its messages (as if every conversation had changed).

Baseline: opening the same sockets one after another before the restart
(the time 2,000 sequential connects take).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import uvloop
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.streaming import Stack, sign_in  # noqa: E402

CATCH_UP = "message-assistant"
STAMP = re.compile(r'id="catch-up-stamp" hx-swap-oob="true" data-stamp="([0-9a-f]+)"')
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(root_pid: int) -> float:
    """User + system CPU of a process and all its descendants, from /proc."""
    pids = [root_pid]
    total = 0.0
    while pids:
        pid = pids.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        pids.extend(int(child) for child in children)
    return total


class Page:
    """One open page: a socket that reconnects until it has its catch-up, and
    hands back the stamp of its last catch-up as the page's script does
    (`?seen=`, static/js/chat.js), unless told to forget it."""

    def __init__(self, url: str, cookie: str) -> None:
        self.url = url
        self.headers = {"Cookie": cookie, "Origin": "http://127.0.0.1"}
        self.served = asyncio.Event()
        self.socket: websockets.ClientConnection | None = None
        self.stamp = ""
        self.full = False  # the last catch-up carried the messages, not the stamp alone

    async def open(self) -> None:
        while True:
            try:
                url = f"{self.url}?seen={self.stamp}" if self.stamp else self.url
                self.socket = await websockets.connect(
                    url, additional_headers=self.headers, open_timeout=30,
                    compression=None, max_size=None)
                async with asyncio.timeout(30):
                    while (found := STAMP.search(html := await self.socket.recv())) is None:
                        pass
                self.stamp, self.full = found[1], CATCH_UP in html
                self.served.set()
                return
            except (OSError, websockets.WebSocketException, TimeoutError):
                await asyncio.sleep(0.5)

    async def stay(self) -> None:
        """Keep the page open; when the server goes away, reconnect."""
        while True:
            await self.open()
            try:
                await self.socket.wait_closed()
            except Exception:  # a dropped connection is what we wait for
                pass
            self.served.clear()


async def restart(stack: Stack, pages: list[Page]) -> tuple[float, float, int]:
    """Stop and start the server; (seconds until every page is served again, from
    the new server's first answer and from the stop; pages sent every message)."""
    began = time.monotonic()
    await asyncio.to_thread(stack.stop_app)
    await asyncio.sleep(0.2)
    assert not any(page.served.is_set() for page in pages), "a page was not disconnected"
    await asyncio.to_thread(stack.start_app)
    up = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(page.served.wait() for page in pages)), 120)
    done = time.monotonic()
    return done - up, done - began, sum(page.full for page in pages)


async def run(stack: Stack, sockets: int, idle: float) -> dict:
    client = await sign_in(f"http://127.0.0.1:{stack.app_port}")
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    await client.aclose()
    base = f"ws://127.0.0.1:{stack.app_port}/ws/conversations"
    pages = [Page(f"{base}/{n}/", cookie) for n in range(1, sockets + 1)]

    started = time.monotonic()
    for page in pages[:200]:  # the baseline: one after another (a sample, scaled)
        await page.open()
        await page.socket.close()
    sequential = (time.monotonic() - started) / 200 * sockets

    started = time.monotonic()
    keepers = [asyncio.create_task(page.stay()) for page in pages]
    await asyncio.gather(*(page.served.wait() for page in pages))
    opened = time.monotonic() - started

    await asyncio.sleep(2)
    cpu_before, wall_before = cpu_seconds(stack.app.pid), time.monotonic()
    await asyncio.sleep(idle)
    idle_share = (cpu_seconds(stack.app.pid) - cpu_before) / (time.monotonic() - wall_before)

    after_up, after_restart, full = await restart(stack, pages)
    # The same with pages that forget their stamp: every page is sent its messages,
    # as when every conversation changed while the server was down.
    for page in pages:
        page.stamp = ""
    forgot_up, forgot_restart, forgot_full = await restart(stack, pages)
    for keeper in keepers:
        keeper.cancel()
    figures = {"sequential": sequential, "opened_at_once": opened, "idle_cpu_share": idle_share,
               "served_after_up": after_up, "served_after_restart": after_restart,
               "served_after_up_full_catch_up": forgot_up}
    print(f"  {sockets} sockets one after another (from 200): {sequential:6.1f} s")
    print(f"  {sockets} sockets opened at once:               {opened:6.1f} s")
    print(f"  idle, {idle:g} s: the server used {idle_share * 100:5.1f}% of one core")
    print(f"  restart: every page served again {after_up:5.1f} s after the new server "
          f"answered ({after_restart:5.1f} s after the restart began); {full} pages were "
          "sent their messages, the rest had them")
    print(f"  restart, pages without their stamp: {forgot_up:5.1f} s ({forgot_restart:5.1f} s); "
          f"{forgot_full} pages sent their messages")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", nargs="+", choices=["embedded", "team"],
                        default=["embedded", "team"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle measured")
    args = parser.parse_args()
    results = {}
    for config in args.config:
        with tempfile.TemporaryDirectory() as tmp:
            stack = Stack(25, 10, Path(tmp), 0, config=config, workers=args.workers,
                          slow_messages=0)
            try:
                stack.start(conversations=args.sockets, answered=True)
                print(f"\n######## {config}")
                results[config] = uvloop.run(run(stack, args.sockets, args.idle))
            finally:
                stack.stop()
    print("\ntargets: idle ≤ 15% of one core; every page served again within 10 s of a restart")
    for config, figures in results.items():
        ok = figures["idle_cpu_share"] <= 0.15 and figures["served_after_up"] <= 10
        print(f"  {config:>9}: {'MET' if ok else 'NOT MET'}  "
              + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
