"""PostgreSQL away for 10 seconds while a reply streams, with two server
processes on it and on Redis (a scaled-out deployment).

The database is stopped at once (`pg_ctl stop -m immediate`: every connection
cut, as in a crash) and started again on the same port and data ten seconds
later. Nothing may be lost, duplicated or left stuck: the reply is saved whole
with one Usage row, a page open on the other process sees it end, pages and
posts work again within seconds, and a page asked for meanwhile says in plain
words that the database is away, soon. Both a reply that ends while the
database is away (its final save waits for it) and one that goes on after it
(its heartbeats stopped: no sweep may take it for dead) are tried.

The servers and databases are the test's own (tests/servers.py): the shared
PostgreSQL on 5432 is never stopped. Runs for real under CI=true.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
import uuid

import httpx
import psycopg
import pytest
import websockets

from conversations.simulator.behaviour import FILLER, tokenize
from tests.conftest import IN_CI
from tests.servers import (
    PrivatePostgres,
    PrivateRedis,
    Server,
    listen,
    manage,
    model_id,
    post,
    prepare_site,
    server_env,
    sign_in,
)

pytestmark = pytest.mark.services

OUTAGE = 10.0  # seconds the database is away
PROMPT = "through a database outage"
EXCHANGE = [("user", "complete"), ("assistant", "complete")]  # (role, status) as stored


def _missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true but is not installed")
    pytest.skip(f"{what} is not installed")


@pytest.fixture
def private_postgres():
    if not PrivatePostgres.available():
        _missing("PostgreSQL (initdb, pg_ctl, postgres)")
    database = PrivatePostgres()
    database.create()
    database.start()
    yield database
    database.remove()


@pytest.fixture
def private_redis(tmp_path):
    if shutil.which("redis-server") is None:
        _missing("redis-server")
    redis = PrivateRedis(tmp_path)
    redis.start()
    yield redis
    redis.stop()


def _expected_answer(tokens: int) -> str:
    """What the simulator answers PROMPT with, `tokens` long (simulator/app.py)."""
    pieces = tokenize(f"You said: {PROMPT}\n\n{FILLER}")
    while len(pieces) < tokens:
        pieces += tokenize(" " + FILLER)
    return "".join(pieces[:tokens])


async def _watch_until(url: str, cookies: httpx.Cookies, pattern: re.Pattern,
                       timeout: float) -> str:
    """What a page's socket receives until `pattern` shows, connecting again
    (as the page does) if the socket is closed meanwhile."""
    received = ""
    async with asyncio.timeout(timeout):
        while not pattern.search(received):
            try:
                received += await listen(url, cookies, "message-assistant status-complete",
                                         timeout=timeout)
            except (OSError, websockets.ConnectionClosed):
                await asyncio.sleep(0.5)
            else:
                if not pattern.search(received):
                    await asyncio.sleep(0.5)  # e.g. the catch-up of another message
    return received


async def _ask(name: str, client: httpx.Client, path: str) -> tuple[str, tuple]:
    """(name, (status or None, body, seconds taken)) of a GET on `client`."""
    asked = time.monotonic()
    try:
        answer = await asyncio.to_thread(client.get, path, timeout=30)
    except httpx.HTTPError as exc:
        return name, (None, repr(exc), time.monotonic() - asked)
    return name, (answer.status_code, answer.text, time.monotonic() - asked)


async def _timed(coroutine) -> tuple:
    return await coroutine, time.monotonic()


async def _first_page_ok(client: httpx.Client, path: str, since: float) -> float | None:
    """Seconds from `since` to the first 200 for `path`; None after 30 s."""
    while time.monotonic() - since < 30:
        try:
            answer = await asyncio.to_thread(client.get, path, timeout=10)
            if answer.status_code == 200:
                return time.monotonic() - since
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2)
    return None


def _stored(url: str, conversation_id: str) -> list[tuple]:
    """The conversation's messages as stored: (id, role, status, text, error, usage rows)."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT m.id, m.role, m.status, m.text, m.error, "
            "(SELECT count(*) FROM conversations_usage u WHERE u.message_id = m.id) "
            "FROM conversations_message m WHERE m.conversation_id = %s ORDER BY m.id",
            [int(conversation_id)],
        ).fetchall()


def _logs(*servers: Server) -> str:
    return "\n".join(f"--- {s.log.name}:\n{s.log.read_text()[-4000:]}" for s in servers)


@pytest.mark.parametrize("tokens", [
    # 5 s at 20 tokens/s: its final save meets the outage and waits it out.
    pytest.param(100, id="reply-ends-while-the-database-is-away"),
    pytest.param(400, id="reply-goes-on-after-the-database-is-back"),  # 20 s
])
def test_postgres_away_mid_reply_nothing_is_lost_duplicated_or_stuck(
        private_postgres, private_redis, tmp_path, tokens):
    database = private_postgres
    env = server_env(tmp_path, DATABASE_URL=database.url, REDIS_URL=private_redis.url,
                     CHANNEL_LAYER_PREFIX=f"pg{uuid.uuid4().hex[:8]}")
    prepare_site(env)
    a, b = Server(env, tmp_path / "a.log"), Server(env, tmp_path / "b.log")
    try:
        a.wait()
        b.wait()
        manage(env, "shell", "-c",
               "from conversations.models import ChatModel, Relay; ChatModel.objects.create("
               "relay=Relay.objects.get(is_simulated=True), display_name='Long answer', "
               f"model_id='gemini-2.5-flash@tokens={tokens}')")
        on_a, on_b = sign_in(a.url), sign_in(b.url)
        response = post(on_a, "/c/new/", {"model": model_id(on_a, "Long answer"),
                                           "text": PROMPT})
        conversation_id = re.search(r"/c/(\d+)/", response.headers["HX-Redirect"]).group(1)
        page = on_a.get(f"/c/{conversation_id}/").text
        reply_id = re.findall(r'id="message-(\d+)"', page)[-1]
        ws_url = f"ws://127.0.0.1:{b.port}/ws/conversations/{conversation_id}/"
        ended = re.compile(rf'id="message-{reply_id}" class="[^"]*status-complete')
        during: dict = {}
        page_ok_after: list[float | None] = []  # seconds from the database's return, B then A

        async def watch() -> tuple[str, float]:
            """What B's page received, and when it saw the reply end (seconds after
            the database was back)."""
            listener = asyncio.create_task(_timed(_watch_until(ws_url, on_b.cookies, ended, 90)))
            await asyncio.sleep(2)  # streaming from A, shown on B
            await asyncio.to_thread(database.kill)
            killed = time.monotonic()
            await asyncio.sleep(2)
            # A page asked for while the database is away, on each process, while
            # the outage runs its course.
            asks = [asyncio.create_task(_ask(name, client, f"/c/{conversation_id}/"))
                    for name, client in (("b", on_b), ("b2", on_b), ("b3", on_b), ("a", on_a))]
            await asyncio.sleep(max(0.0, OUTAGE - (time.monotonic() - killed)))
            await asyncio.to_thread(database.start)
            back = time.monotonic()
            # Pages on either process, asked for again and again until they answer.
            pages = [asyncio.create_task(_first_page_ok(client, f"/c/{conversation_id}/", back))
                     for client in (on_b, on_a)]
            during.update(await asyncio.gather(*asks))
            page_ok_after.extend(await asyncio.gather(*pages))
            received, ended_at = await listener
            return received, ended_at - back

        try:
            received, reply_ended_after = asyncio.run(watch())
        except (TimeoutError, OSError) as exc:
            raise AssertionError(f"the page on B never saw the reply end ({exc!r}); "
                                 f"stored: {_stored(database.url, conversation_id)}\n"
                                 f"{_logs(a, b)}") from exc
        print(f"outage {OUTAGE:.0f} s; after the database was back, the reply ended on B's "
              f"page in {reply_ended_after:.1f} s, a page answered in "
              f"{[t and round(t, 1) for t in page_ok_after]} s (B, A); during the outage pages "
              f"answered { {k: (v[0], round(v[2], 1)) for k, v in during.items()} }")

        # The reply is whole, counted once, and not duplicated.
        rows = _stored(database.url, conversation_id)
        assert [(r[1], r[2]) for r in rows] == EXCHANGE, (
            f"{rows}\n{_logs(a, b)}")
        _, _, _, text, error, usages = rows[1]
        assert text == _expected_answer(tokens), (
            f"stored {len(text)} characters of {len(_expected_answer(tokens))}")
        assert error == ""
        assert usages == 1, f"{usages} Usage rows for the reply"
        assert reply_ended_after < 30, f"the reply ended {reply_ended_after:.1f} s after recovery"
        assert all(t is not None and t < 5 for t in page_ok_after), (
            f"pages came back {page_ok_after} s after the database (B, A)\n{_logs(a, b)}")
        # The page saw the reply go on to its end, not taken for dead meanwhile.
        dead = re.search(rf'id="message-{reply_id}" class="[^"]*status-(interrupted|failed)',
                         received)
        assert dead is None, f"B's page was shown the reply as {dead[1]} before it ended"

        # While it was away a page said so in plain words, soon.
        for name, (status, body, took) in during.items():
            assert status == 503, f"{name}: {status} {body[:2000]}"
            assert "The database is not answering" in body, body[:2000]
            assert "Traceback" not in body
            assert took < 10, f"{name}: the page took {took:.1f} s to answer"

        # A new message gets a complete reply.
        sent = post(on_b, f"/c/{conversation_id}/messages/", {"text": "and after it?"})
        assert sent.status_code == 200, sent.text
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            rows = _stored(database.url, conversation_id)
            if len(rows) == 4 and rows[3][2] == "complete":
                break
            time.sleep(0.5)
        assert [(r[1], r[2]) for r in rows] == EXCHANGE * 2, (
            f"{rows}\n{_logs(a, b)}")
        assert [r[5] for r in rows] == [0, 1, 0, 1]
    finally:
        a.stop()
        b.stop()
