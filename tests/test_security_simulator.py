"""The mounted simulator is the app's own tool: no one else can use it or read it.

Each test drives the real ASGI application (chatsite/asgi.py's router) over
httpx's ASGI transport, as a browser or a port scanner would reach it.
"""

from __future__ import annotations

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import Client, override_settings

from chatsite.asgi import build_router
from conversations.models import Relay
from conversations.relays import setup

pytestmark = pytest.mark.django_db(transaction=True)

SIMULATOR_PATHS = [
    ("GET", "/simulator/v1/models"),
    ("GET", "/simulator/api/pricing"),
    ("GET", "/simulator/_sim/requests"),
    ("DELETE", "/simulator/_sim/requests"),
    ("POST", "/simulator/v1/chat/completions"),
    ("GET", "/simulator/"),
]
CHAT = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "secret prompt"}],
        "stream": False}


def _client(*, simulator_enabled: bool, headers: dict | None = None,
            cookies: dict | None = None) -> httpx.AsyncClient:
    app = build_router(simulator_enabled=simulator_enabled)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                             base_url="http://localhost", headers=headers or {},
                             cookies=cookies or {}, timeout=30)


@sync_to_async
def _session_cookies(username: str) -> dict:
    user = User.objects.create_user(username, "", "pw-for-tests-only-1")
    client = Client()
    client.force_login(user)
    return {"sessionid": client.cookies["sessionid"].value}


async def _send(client: httpx.AsyncClient, method: str, path: str) -> httpx.Response:
    return await client.request(method, path, json=CHAT if method == "POST" else None)


@pytest.mark.parametrize("method,path", SIMULATOR_PATHS)
async def test_a_disabled_simulator_is_not_found_by_anonymous_or_signed_in_users(method, path):
    cookies = await _session_cookies(f"user-{method}-{len(path)}")
    for jar in ({}, cookies):
        async with _client(simulator_enabled=False, cookies=jar,
                           headers={"Authorization": f"Bearer {setup.simulator_key()}"}) as c:
            response = await _send(c, method, path)
        assert response.status_code in {403, 404}, (jar, response.status_code)
        assert "chat.completion" not in response.text and "secret prompt" not in response.text


@pytest.mark.parametrize("method,path", SIMULATOR_PATHS)
async def test_an_enabled_simulator_refuses_a_request_without_the_installs_key(method, path):
    cookies = await _session_cookies(f"user-{method}-{len(path)}")
    for headers in ({}, {"Authorization": "Bearer sim-local-key"},
                    {"Authorization": "Bearer " + setup.simulator_key()[:-1]}):
        async with _client(simulator_enabled=True, headers=headers, cookies=cookies) as c:
            response = await _send(c, method, path)
        assert response.status_code == 401, (headers, response.status_code)
        assert "secret prompt" not in response.text


async def test_the_mounted_simulator_answers_the_installs_key_and_keeps_no_request_log():
    key = {"Authorization": f"Bearer {setup.simulator_key()}"}
    async with _client(simulator_enabled=True, headers=key) as c:
        reply = await c.post("/simulator/v1/chat/completions", json=CHAT)
        log = await c.get("/simulator/_sim/requests")
        cleared = await c.delete("/simulator/_sim/requests")
    assert reply.status_code == 200
    assert "You said: secret prompt" in reply.json()["choices"][0]["message"]["content"]
    assert log.status_code == 404 and "secret prompt" not in log.text
    assert cleared.status_code == 404


def test_the_simulated_relay_holds_the_key_and_each_process_reaches_its_own_mount():
    with override_settings(RELAY_BASE_URL="", SIMULATOR_URL="http://127.0.0.1:8000/simulator"):
        relay = setup.ensure_default_relay(simulator_url="http://127.0.0.1:8000/simulator")
    # A second process on another port: the row is not rewritten, each resolves its own.
    with override_settings(RELAY_BASE_URL="", SIMULATOR_URL="http://127.0.0.1:9000/simulator"):
        setup.ensure_default_relay(simulator_url="http://127.0.0.1:9000/simulator")
        on_second = setup.relay_target(Relay.objects.get(pk=relay.pk))
    with override_settings(SIMULATOR_URL="http://127.0.0.1:8000/simulator"):
        on_first = setup.relay_target(Relay.objects.get(pk=relay.pk))
    assert Relay.objects.get(pk=relay.pk).base_url == "http://127.0.0.1:8000/simulator"
    assert on_first.base_url == "http://127.0.0.1:8000/simulator"
    assert on_second.base_url == "http://127.0.0.1:9000/simulator"
    assert on_first.api_key == on_second.api_key == setup.simulator_key()
    assert len(setup.simulator_key()) == 64
    # A relay on one of the simulator's families keeps its path on any process.
    family = Relay.objects.create(name="family", base_url="http://127.0.0.1:8000/simulator/newapi",
                                  is_simulated=True)
    with override_settings(SIMULATOR_URL="http://127.0.0.1:9000/simulator"):
        assert setup.relay_target(family).base_url == "http://127.0.0.1:9000/simulator/newapi"


def test_an_install_from_before_the_key_gets_it_on_the_next_start():
    relay = Relay.objects.create(name=setup.SIMULATED_RELAY_NAME, is_simulated=True,
                                 base_url="http://127.0.0.1:8000/simulator",
                                 api_key="sim-local-key")
    with override_settings(RELAY_BASE_URL=""):
        setup.ensure_default_relay(simulator_url="http://127.0.0.1:8000/simulator")
    assert Relay.objects.get(pk=relay.pk).api_key == setup.simulator_key()


def test_a_real_relay_is_never_sent_to_the_simulator_mount():
    relay = Relay.objects.create(name="Real", base_url="https://api.example.com",
                                 api_key="sk-real")
    with override_settings(SIMULATOR_URL="http://127.0.0.1:8000/simulator"):
        target = setup.relay_target(relay)
    assert target.base_url == "https://api.example.com" and target.api_key == "sk-real"


def test_a_simulated_relay_whose_key_no_longer_decrypts_gets_this_installs_key():
    with override_settings(SECRET_KEY="an-earlier-secret-key-" * 3, RELAY_BASE_URL=""):
        setup.ensure_default_relay(simulator_url="http://127.0.0.1:8000/simulator")
    with override_settings(RELAY_BASE_URL=""):
        relay = setup.ensure_default_relay(simulator_url="http://127.0.0.1:8000/simulator")
    assert relay.api_key == setup.simulator_key()
    assert Relay.objects.get(pk=relay.pk).api_key == setup.simulator_key()
