"""The database not answering for a while (restarting, failing over), one step
at a time: a reply's final save waits for it, a reply that cannot wait is
announced as it was saved, the dead-reply sweep spares replies once it is
back, and a page says in plain words what is wrong.

The whole story, with two servers on a PostgreSQL that is really stopped, is
tests/test_fault_postgres.py; these run on the test database with the
database's errors raised on purpose.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from channels.db import database_sync_to_async
from django.db import OperationalError
from django.test import Client
from psycopg_pool import PoolTimeout

from conversations import generation, lifespan, replies, views
from conversations.infra import outage
from conversations.models import Message, Usage
from tests.factories import make_user
from tests.test_generation import GroupListener, _load, _post, _run, _setup

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _fast_frames(settings):
    settings.STREAM_FRAME_INTERVAL = 0.05
    settings.STREAM_CHECKPOINT_INTERVAL = 0.2
    settings.RELAY_MAX_RETRIES = 0


@pytest.fixture(autouse=True)
def _database_answered(monkeypatch):
    monkeypatch.setattr(outage, "_no_connection_at", None)


def _away_for(monkeypatch, calls: int) -> list[float]:
    """finish_reply meets a database that is away for its first `calls` calls."""
    real = replies.finish_reply
    tried: list[float] = []

    def finish_reply(**kwargs):
        tried.append(time.monotonic())
        if len(tried) <= calls:
            raise OperationalError("connection to server failed: Connection refused")
        return real(**kwargs)

    monkeypatch.setattr(replies, "finish_reply", finish_reply)
    return tried


async def test_a_final_save_that_meets_the_database_away_waits_for_it(simulator, monkeypatch):
    conversation = await database_sync_to_async(_setup)(simulator)
    _, reply = await database_sync_to_async(_post)(conversation, "Through an outage")
    tried = _away_for(monkeypatch, calls=3)
    async with GroupListener(conversation.pk) as listener:
        await _run(reply.pk)
    saved = await _load(reply.pk)
    assert len(tried) == 4
    assert saved.status == Message.Status.COMPLETE
    assert saved.text == simulator.requests[-1].reply
    assert saved.error == ""
    assert await Usage.objects.filter(message=saved).acount() == 1
    finished = [e for e in listener.events if e["type"] == "reply.finished"]
    assert len(finished) == 1 and "status-complete" in finished[0]["html"]


async def test_a_reply_whose_save_cannot_wait_longer_ends_failed_and_its_pages_are_told(
        simulator, monkeypatch):
    monkeypatch.setattr(generation, "DATABASE_PATIENCE", 0.3)
    conversation = await database_sync_to_async(_setup)(simulator)
    _, reply = await database_sync_to_async(_post)(conversation, "A long outage")
    _away_for(monkeypatch, calls=2)  # the save gives up; the crash path's save lands
    async with GroupListener(conversation.pk) as listener:
        await _run(reply.pk)
    saved = await _load(reply.pk)
    assert saved.status == Message.Status.FAILED
    assert saved.text == simulator.requests[-1].reply  # kept, from memory
    finished = [e for e in listener.events if e["type"] == "reply.finished"]
    assert len(finished) == 1 and "status-failed" in finished[0]["html"]


async def test_the_sweep_spares_replies_until_the_database_has_answered_for_the_stale_limit(
        settings, monkeypatch):
    settings.STREAM_STALE_AFTER = 1
    monkeypatch.setattr(lifespan, "_sweep_interval", lambda: 0.1)
    swept: list[float] = []
    probed: list[float] = []

    async def sweep_dead_replies():
        swept.append(time.monotonic())
        if len(swept) == 2:
            raise OperationalError("couldn't get a connection after 5.00 sec")
        return 0

    def database_answers():
        probed.append(time.monotonic())
        if len(probed) == 1:
            raise OperationalError("connection refused")  # still away

    monkeypatch.setattr(lifespan, "sweep_dead_replies", sweep_dead_replies)
    monkeypatch.setattr(lifespan, "_database_answers", database_answers)
    task = asyncio.create_task(lifespan._sweep_dead_replies_periodically())
    await asyncio.sleep(1.6)
    task.cancel()
    assert len(probed) == 2, probed  # once while away, once when it answered again
    after = [t for t in swept if t > probed[-1]]
    assert after, "the sweep never resumed"
    assert after[0] - probed[-1] >= settings.STREAM_STALE_AFTER
    assert not [t for t in swept if swept[1] < t < probed[-1] + 1]


def test_a_page_asked_for_while_the_database_is_away_says_so_in_plain_words(monkeypatch):
    def away(*args, **kwargs):
        raise OperationalError("couldn't get a connection after 5.00 sec")

    monkeypatch.setattr(views, "sidebar_conversations", away)
    client = Client(raise_request_exception=False)
    client.force_login(make_user())
    response = client.get("/c/new/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "The database is not answering" in response.content.decode()


def test_other_errors_keep_djangos_own_500(monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(views, "sidebar_conversations", broken)
    client = Client(raise_request_exception=False)
    client.force_login(make_user())
    response = client.get("/c/new/")
    assert response.status_code == 500
    assert "database" not in response.content.decode()


def test_once_a_request_found_no_connection_the_ones_right_behind_it_are_answered_at_once(
        monkeypatch):
    calls = []
    answers = views.sidebar_conversations

    def no_connection(*args, **kwargs):
        calls.append(1)
        try:
            raise PoolTimeout("couldn't get a connection after 5.00 sec")
        except PoolTimeout as exc:
            raise OperationalError(str(exc)) from exc

    monkeypatch.setattr(views, "sidebar_conversations", no_connection)
    client = Client(raise_request_exception=False)
    client.force_login(make_user())
    assert client.get("/c/new/").status_code == 503
    again = client.get("/c/new/")
    assert again.status_code == 503 and "The database is not answering" in again.content.decode()
    assert len(calls) == 1, "the second request waited for the database too"
    monkeypatch.setattr(views, "sidebar_conversations", answers)
    outage._no_connection_at -= outage.ANSWER_AT_ONCE_FOR  # that while is over
    assert client.get("/c/new/").status_code == 200


def test_a_failed_query_does_not_turn_the_next_requests_away(monkeypatch):
    def bad_query(*args, **kwargs):
        raise OperationalError("no such column: nothing")

    monkeypatch.setattr(views, "sidebar_conversations", bad_query)
    client = Client(raise_request_exception=False)
    client.force_login(make_user())
    assert client.get("/c/new/").status_code == 503
    monkeypatch.undo()
    assert client.get("/c/new/").status_code == 200
