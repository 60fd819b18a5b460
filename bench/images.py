"""A reply carrying one 4 MB PNG from an image model: what it costs the app.

    .venv/bin/python bench/images.py [--mb 4] [--replies 10] [--keep]

Starts, each as its own process on loopback, the relay simulator (answering
as a Gemini image model: one SSE line carrying a markdown data URI of a real
PNG padded to the size asked) and the app (`manage.py serve`, SQLite). Warms
the server up with a small picture, then, with a page's WebSocket open on the
conversation, posts a message whose reply carries the big picture, sampling
the server's resident memory every few milliseconds until the reply is saved.
Then it fills a conversation with `--replies` such replies and times its page.

Prints:
- the bytes the WebSocket carried for that reply (frames and the finished
  reply; target ≤ 20 KB);
- the size of the reply row's text (target ≤ 2 KB);
- the server's peak resident memory above its warmed-up baseline while the
  line was read, decoded and stored (target ≤ 3× the picture);
- the conversation page's time with `--replies` such replies, median of 5
  GETs on loopback (target ≤ 150 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.upload import Sampler, rss_kb  # noqa: E402
from tests.conftest import free_port  # noqa: E402

PASSWORD = "bench-password-123"
FINISHED = re.compile(r'id="message-(\d+)" class="message message-assistant status-(\w+)"')


def wait_for(url: str, deadline: float) -> None:
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up") from None
            time.sleep(0.1)


async def reply_over_websocket(client: httpx.AsyncClient, port: int,
                               conversation: int) -> tuple[int, int]:
    """Post a message with a page's socket open; (bytes the socket carried for the
    reply, the reply's id)."""
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    async with websockets.connect(
        f"ws://127.0.0.1:{port}/ws/conversations/{conversation}/",
        additional_headers={"Cookie": cookie, "Origin": "http://127.0.0.1"},
        max_size=None, compression=None,
    ) as socket:
        while True:  # the catch-up of what is already there comes first
            try:
                await asyncio.wait_for(socket.recv(), 0.3)
            except TimeoutError:
                break
        response = await client.post(
            f"/c/{conversation}/messages/", data={"text": "A lighthouse at dusk, 16:9 at 2K"},
            headers={"X-CSRFToken": client.cookies["csrftoken"], "HX-Request": "true"})
        assert response.status_code == 200, response.text[:300]
        reply_id = int(re.findall(r'id="message-(\d+)"', response.text)[-1])
        carried = 0
        async with asyncio.timeout(120):
            while True:
                frame = await socket.recv()
                carried += len(frame.encode() if isinstance(frame, str) else frame)
                done = [status for pk, status in FINISHED.findall(frame)
                        if int(pk) == reply_id and status not in ("pending", "streaming")]
                if done:
                    assert done[0] == "complete", f"the reply ended {done[0]}"
                    return carried, reply_id


def wait_for_reply(db: Path, reply_id: int) -> None:
    until = time.monotonic() + 120
    while time.monotonic() < until:
        with sqlite3.connect(db) as connection:
            status, error = connection.execute(
                "SELECT status, error FROM conversations_message WHERE id = ?",
                (reply_id,)).fetchone()
        if status not in ("pending", "streaming"):
            assert status == "complete", f"the reply ended {status}: {error}"
            return
        time.sleep(0.02)
    raise AssertionError("the reply was not saved in time")


async def run(args: argparse.Namespace, workdir: Path) -> None:
    sim_port, app_port = free_port(), free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
           "MEDIA_ROOT": str(workdir / "media"), "SIMULATOR_ENABLED": "false",
           "RELAY_ALLOW_PRIVATE": "true",  # the standalone simulator on loopback
           "DEBUG": "false",
           "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_hex(32),
           "LOG_LEVEL": "WARNING"}
    for name in ("RELAY_BASE_URL", "REDIS_URL"):
        env.pop(name, None)
    db = workdir / "bench.sqlite3"
    # A data URI of `huge` characters carries about 3/4 as many bytes of PNG.
    huge = int(args.mb * 1024 * 1024 * 4 / 3)
    processes: list[subprocess.Popen] = []
    try:
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "conversations.simulator", "--port", str(sim_port),
             "--rate", "0"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL))
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                       check=True)
        ids = subprocess.run([*manage, "shell", "-c", f"""
from django.contrib.auth.models import User
from conversations.models import ChatModel, Conversation, Relay
user = User.objects.create_user('bench', '', '{PASSWORD}')
relay = Relay.objects.create(name='sim', base_url='http://127.0.0.1:{sim_port}',
                             api_key='bench-key')
small = ChatModel.objects.create(relay=relay, model_id='gemini-2.5-flash-image',
                                 outputs_images=True, accepts_image=True, display_name='small')
big = ChatModel.objects.create(relay=relay, model_id='gemini-2.5-flash-image@huge={huge}',
                               outputs_images=True, accepts_image=True, display_name='big')
# 2K at 16:9 (2736×1536): room for a 4 MB PNG of noise and gradient.
wide = dict(owner=user, image_aspect_ratio='16:9', image_size='2K')
print(Conversation.objects.create(model=small, **wide).pk,
      Conversation.objects.create(model=big, **wide).pk,
      Conversation.objects.create(model=big, **wide).pk)
"""], cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout.split()
        warm_id, measured_id, page_id = (int(i) for i in ids[-3:])
        app = subprocess.Popen(
            [*manage, "serve", "--port", str(app_port), "--no-migrate", "--log-level",
             "warning"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        processes.append(app)
        deadline = time.monotonic() + 30
        wait_for(f"http://127.0.0.1:{sim_port}/v1/models", deadline)
        wait_for(f"http://127.0.0.1:{app_port}/login/", deadline)

        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{app_port}", timeout=120)
        await client.get("/login/")
        await client.post("/login/", data={"username": "bench", "password": PASSWORD,
                                           "csrfmiddlewaretoken": client.cookies["csrftoken"]})

        # Warm-up: every code path once (stream, decode, check, store, page), then rest.
        await reply_over_websocket(client, app_port, warm_id)
        await client.get(f"/c/{warm_id}/")
        await asyncio.sleep(1.0)
        baseline = rss_kb(app.pid)

        sampler = Sampler(app.pid)
        sampler.start()
        started = time.monotonic()
        carried, reply_id = await reply_over_websocket(client, app_port, measured_id)
        wait_for_reply(db, reply_id)
        sampler.running = False
        sampler.join()
        peak = sampler.peak(started, time.monotonic()) - baseline
        with sqlite3.connect(db) as connection:
            text_length, = connection.execute(
                "SELECT length(CAST(text AS BLOB)) FROM conversations_message WHERE id = ?",
                (reply_id,)).fetchone()
            picture_size, width, height = connection.execute(
                "SELECT size, width, height FROM conversations_attachment "
                "WHERE message_id = ? AND generated", (reply_id,)).fetchone()

        for _ in range(args.replies):
            response = await client.post(
                f"/c/{page_id}/messages/", data={"text": "Another one"},
                headers={"X-CSRFToken": client.cookies["csrftoken"], "HX-Request": "true"})
            assert response.status_code == 200, response.text[:300]
            wait_for_reply(db, int(re.findall(r'id="message-(\d+)"', response.text)[-1]))
        times, size = [], 0
        for _ in range(6):
            began = time.perf_counter()
            page = await client.get(f"/c/{page_id}/")
            times.append(time.perf_counter() - began)
            size = len(page.content)
            assert page.status_code == 200 and b"base64" not in page.content
        page_ms = statistics.median(times[1:]) * 1000
        await client.aclose()

        print(f"picture: {picture_size / 1e6:.2f} MB PNG, {width}×{height}, arriving as one "
              f"SSE line of ~{huge / 1e6:.1f} MB (a markdown data URI)")
        print(f"server baseline RSS (warmed up): {baseline / 1024:.1f} MiB; load average "
              f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        print(f"WebSocket bytes for the reply:          {carried / 1024:.1f} KB "
              "(target ≤ 20 KB)")
        print(f"reply row's text:                       {text_length} bytes (target ≤ 2 KB)")
        print(f"peak RSS above baseline, reading it:    {peak / 1024:.1f} MiB = "
              f"{peak * 1024 / picture_size:.2f}× the picture (target ≤ 3×)")
        print(f"conversation page with {args.replies} such replies: {page_ms:.1f} ms median of "
              f"5 GETs, {size / 1024:.1f} KB of HTML (target ≤ 150 ms)")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=4.0, help="the PNG's size in MiB")
    parser.add_argument("--replies", type=int, default=10, help="replies on the timed page")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-images-"))
    try:
        asyncio.run(run(args, workdir))
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
