"""The limit on requests running synchronous code at once (conversations/concurrency.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.http import HttpResponse
from django.test import override_settings

from conversations.events import requests_channel, requests_channel_for
from conversations.infra.concurrency import SyncWorkLimit, outside_limit


def _run_two(view, limit: int) -> list[tuple[str, str]]:
    """Two requests at once through one middleware; the order of their steps."""
    steps: list[tuple[str, str]] = []
    with override_settings(SYNC_REQUEST_LIMIT=limit):
        middleware = SyncWorkLimit(lambda request: view(request, steps))
    threads = [threading.Thread(target=middleware, args=(name,)) for name in ("a", "b")]
    threads[0].start()
    time.sleep(0.05)  # a takes its slot first
    threads[1].start()
    for thread in threads:
        thread.join(5)
        assert not thread.is_alive(), "a request never finished: the limit deadlocked"
    return steps


def _slow(request, steps):
    steps.append((request, "start"))
    time.sleep(0.2)
    steps.append((request, "end"))
    return HttpResponse()


def test_with_one_slot_the_second_request_waits_for_the_first():
    assert _run_two(_slow, limit=1) == [("a", "start"), ("a", "end"), ("b", "start"),
                                        ("b", "end")]


def test_with_two_slots_both_requests_run_at_once():
    steps = _run_two(_slow, limit=2)
    assert steps[:2] == [("a", "start"), ("b", "start")]


def test_a_request_waiting_outside_the_limit_lets_the_next_one_run():
    def converting(request, steps):
        steps.append((request, "start"))
        if request == "a":
            with outside_limit():  # e.g. ffmpeg converting an upload
                time.sleep(0.3)
        steps.append((request, "end"))
        return HttpResponse()

    steps = _run_two(converting, limit=1)
    assert steps == [("a", "start"), ("b", "start"), ("b", "end"), ("a", "end")]


def test_outside_a_limited_request_outside_limit_does_nothing():
    with outside_limit():
        pass  # no slot held, none released


def test_a_request_inside_a_request_does_not_wait_for_itself():
    def view(request):
        return middleware("inner") if request == "outer" else HttpResponse(request)

    with override_settings(SYNC_REQUEST_LIMIT=1):
        middleware = SyncWorkLimit(view)
    result = []
    thread = threading.Thread(target=lambda: result.append(middleware("outer")))
    thread.start()
    thread.join(2)
    assert not thread.is_alive(), "the inner request waited for the outer one's slot"
    assert result[0].content == b"inner"


def test_the_limit_is_first_in_the_middleware_and_one_by_default():
    assert settings.MIDDLEWARE[0] == "conversations.infra.concurrency.SyncWorkLimit"
    assert settings.SYNC_REQUEST_LIMIT == 1



def _refused_command(tmp_path, *args: str, **env: str) -> str:
    """Run a management command on a fresh SQLite file without Redis (unless `env`
    sets it); it must fail. Its stderr."""
    base = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=Path(__file__).resolve().parents[1],
        env={**base, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", **env},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    return result.stderr


def test_serve_refuses_several_processes_without_redis(tmp_path):
    stderr = _refused_command(tmp_path, "serve", "--workers", "2", "--no-migrate")
    assert "--workers above 1 needs REDIS_URL" in stderr


def test_generation_workers_need_several_web_processes(tmp_path):
    stderr = _refused_command(tmp_path, "serve", "--generation-workers", "2", "--no-migrate")
    assert "--generation-workers needs --workers above 1" in stderr


def test_a_generation_worker_refuses_an_index_beyond_the_count(tmp_path):
    stderr = _refused_command(tmp_path, "generate", "--index", "2",
                              REDIS_URL="redis://127.0.0.1:6379/15", GENERATION_WORKERS="2")
    assert "--index must be from 0 to GENERATION_WORKERS - 1 (1); got 2" in stderr


def test_replies_are_spread_over_the_generation_workers():
    """A post makes two rows, so replies' ids of one person share a parity: the
    channel is chosen by a hash, and consecutive replies reach every worker."""
    replies = range(2, 402, 2)
    for workers in (2, 3):
        counts = Counter(requests_channel_for(m, workers) for m in replies)
        assert set(counts) == {requests_channel(k) for k in range(workers)}
        assert min(counts.values()) > len(replies) / workers * 0.8, counts
    assert {requests_channel_for(m, 1) for m in replies} == {requests_channel(0)}


@override_settings(SYNC_REQUEST_LIMIT=0)
def test_without_a_limit_requests_run_side_by_side():
    inside = threading.Barrier(2, timeout=5)
    limit = SyncWorkLimit(lambda request: inside.wait())
    threads = [threading.Thread(target=limit, args=(None,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not inside.broken  # both were inside at once
