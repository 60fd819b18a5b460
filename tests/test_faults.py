"""Faults a running server survives: a stop signal mid-reply, a generating
process killed. Each starts its own server process (SQLite, the built-in
simulator) and reads what it stored.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

from tests.servers import ROOT, Server, model_id, post, prepare_site, server_env, sign_in


@pytest.fixture
def single_server(tmp_path):
    env = server_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    prepare_site(env)
    server = Server(env, tmp_path / "server.log")
    try:
        server.wait()
        yield server
    finally:
        server.stop()


def _reply_status(env: dict, reply_id: str) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "from conversations.models import Message; "
         f"m = Message.objects.get(pk={reply_id}); print(m.status, len(m.text))"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    ).stdout.split()
    return out[-2], int(out[-1])


def _start_long_reply(server: Server) -> str:
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "from conversations.models import ChatModel, Relay; ChatModel.objects.create("
         "relay=Relay.objects.get(is_simulated=True), display_name='Long answer', "
         "model_id='gemini-2.5-flash@tokens=600')"],
        cwd=ROOT, env=server.env, check=True,
    )
    client = sign_in(server.url)
    response = post(client, "/c/new/", {"model": model_id(client, "Long answer"),
                                         "text": "a long one"})
    conversation_id = re.search(r"/c/(\d+)/", response.headers["HX-Redirect"]).group(1)
    page = client.get(f"/c/{conversation_id}/").text
    return re.findall(r'id="message-(\d+)"', page)[-1]


def test_sigterm_ends_a_reply_streaming_from_the_servers_own_simulator_as_interrupted(
        single_server):
    server = single_server
    reply_id = _start_long_reply(server)  # 600 tokens at 20/s: 30 s of streaming
    time.sleep(2)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(20)
    took = time.monotonic() - started
    status, length = _reply_status(server.env, reply_id)
    assert status == "interrupted", server.log.read_text()[-2000:]
    assert length > 0, "the text that arrived was not kept"
    assert took < 10, f"the server took {took:.1f} s to stop"


def test_a_killed_server_leaves_no_reply_stuck_and_a_restart_closes_it(single_server, tmp_path):
    server = single_server
    reply_id = _start_long_reply(server)
    time.sleep(2)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)
    env = {**server.env, "STREAM_STALE_AFTER_S": "3"}
    time.sleep(3.5)  # its last heartbeat is older than the stale limit now
    again = Server(env, tmp_path / "again.log")
    try:
        again.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status, length = _reply_status(env, reply_id)
            if status == "interrupted":
                break
            time.sleep(0.3)
        assert status == "interrupted", again.log.read_text()[-2000:]
        assert length > 0, "the text checkpointed before the kill was not kept"
    finally:
        again.stop()
