"""DNS rebinding: a relay's name is judged again by the address each connection goes to.

A name that resolved to a public address when the relay was saved can later
resolve to a cloud metadata endpoint or to this machine. The connection is
then refused before a byte (key, prompt) is sent, and the reply says so in
plain words. The outside world here is DNS: names under .rebind.test are
answered by a fake resolver, at save time (socket.getaddrinfo) and at connect
time (the event loop's getaddrinfo) separately.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import re
import socket
import ssl
import subprocess
import sys
import time

import httpcore
import httpx
import pytest
import trustme
from channels.db import database_sync_to_async
from django.utils import translation

from conversations import generation
from conversations.infra.netio import AddressRefused, AsyncioBackend
from conversations.models import Message
from conversations.relays import setup
from conversations.relays.addresses import check_address, check_connection, check_relay_url
from conversations.relays.client import RelayClient, RelayTarget, new_http_client
from conversations.relays.errors import RelayError
from conversations.simulator.app import Simulator
from tests.conftest import ThreadedServer
from tests.factories import make_conversation, make_model, make_relay, make_user
from tests.servers import ROOT, Server, model_id, post, prepare_site, server_env, sign_in

PUBLIC = "93.184.215.14"
REFUSED = ["169.254.169.254", "127.0.0.1", "::ffff:169.254.169.254", "::1", "10.0.0.7"]
_users = itertools.count(1)


class FakeDNS:
    """What each name resolves to when the relay is saved and when it is connected to."""

    def __init__(self, monkeypatch) -> None:
        self.at_save: dict[str, list[str]] = {}
        self.at_connect: dict[str, list[str]] = {}
        self.connected_to: list[str] = []  # every host create_connection was asked for
        real_resolve = socket.getaddrinfo
        real_loop_resolve = asyncio.BaseEventLoop.getaddrinfo
        real_connect = asyncio.BaseEventLoop.create_connection

        def resolve(host, port, *args, **kwargs):
            if isinstance(host, str) and host in self.at_save:
                return _infos(self.at_save[host], port)
            return real_resolve(host, port, *args, **kwargs)

        async def loop_resolve(loop, host, port, *args, **kwargs):
            if isinstance(host, str) and host in self.at_connect:
                return _infos(self.at_connect[host], port)
            return await real_loop_resolve(loop, host, port, *args, **kwargs)

        async def connect(loop, protocol_factory, host=None, port=None, **kwargs):
            self.connected_to.append(host)
            return await real_connect(loop, protocol_factory, host, port, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", resolve)
        monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", loop_resolve)
        monkeypatch.setattr(asyncio.BaseEventLoop, "create_connection", connect)

    def name(self, name: str, *, saved: str = PUBLIC, now: str) -> str:
        self.at_save[name] = [saved]
        self.at_connect[name] = [now]
        return name


def _infos(addresses: list[str], port) -> list[tuple]:
    infos = []
    for address in addresses:
        if ":" in address:
            infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port or 0, 0, 0)))
        else:
            infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0)))
    return infos


@pytest.fixture(autouse=True)
def _in_english():
    """The messages are read in English here (one test reads them in Chinese)."""
    with translation.override("en"):
        yield


@pytest.fixture
def dns(monkeypatch) -> FakeDNS:
    return FakeDNS(monkeypatch)


@pytest.fixture
def listening():
    """A real socket on loopback, to show that no connection ever reached it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def _accepted_nothing(sock: socket.socket) -> bool:
    try:
        connection, _ = sock.accept()
    except BlockingIOError:
        return True
    connection.close()
    return False


@pytest.fixture
def private_off(settings):
    settings.RELAY_ALLOW_PRIVATE = False
    settings.SIMULATOR_URL = ""
    settings.RELAY_MAX_RETRIES = 0
    return settings


async def _run(message_id: int) -> Message:
    generation._spawn(message_id)
    task = generation.running_generations()[message_id].task
    await asyncio.wait_for(asyncio.shield(task), timeout=30)
    return await database_sync_to_async(Message.objects.get)(pk=message_id)


def _reply_on(base_url: str, *, text: str = "my secret prompt", **relay) -> int:
    """A saved relay at `base_url` (checked as the admin checks it), a posted message,
    and its pending reply's id."""
    from django.db import transaction

    from conversations import services

    if not relay.get("is_simulated"):
        check_relay_url(base_url)
    user = make_user(f"user{next(_users)}")
    conversation = make_conversation(user, make_model(make_relay(base_url, **relay)))
    original = transaction.on_commit
    transaction.on_commit = lambda fn, using=None, robust=False: None
    try:
        _, reply = services.post_message(conversation=conversation,
                                         author=conversation.owner, text=text)
    finally:
        transaction.on_commit = original
    return reply.pk


# -- the rule, at connect time -----------------------------------------------------


@pytest.mark.parametrize("address", REFUSED)
def test_an_address_a_relay_cannot_have_is_refused_at_connect_time(address, private_off):
    with pytest.raises(ValueError, match=r"relay\.rebind\.test"):
        check_connection("relay.rebind.test", 443, address)


def test_private_addresses_pass_with_the_setting_and_link_local_never(settings):
    settings.RELAY_ALLOW_PRIVATE = True
    check_connection("relay.rebind.test", 443, "10.0.0.7")
    check_connection("relay.rebind.test", 443, "127.0.0.1")
    for address in ("169.254.169.254", "::ffff:169.254.169.254", "fe80::1", "0.0.0.0"):
        with pytest.raises(ValueError):
            check_connection("relay.rebind.test", 443, address)
    with pytest.raises(ValueError, match="metadata"):
        check_connection("metadata.google.internal", 80, PUBLIC)


def test_loopback_is_allowed_to_the_apps_own_simulator_alone(private_off):
    private_off.SIMULATOR_URL = "http://127.0.0.1:8123/simulator"
    check_connection("127.0.0.1", 8123, "127.0.0.1")
    for host, port, address in [("127.0.0.1", 6379, "127.0.0.1"),  # another port
                                ("127.0.0.1", 8123, "10.0.0.7"),  # not loopback
                                ("evil.rebind.test", 8123, "127.0.0.1")]:  # another name
        with pytest.raises(ValueError, match="RELAY_ALLOW_PRIVATE"):
            check_connection(host, port, address)


def test_the_save_time_and_connect_time_rule_is_one_function():
    with pytest.raises(ValueError, match="link-local"):
        check_address(ipaddress.ip_address("169.254.1.1"), "x", allow_private=True)
    check_address(ipaddress.ip_address(PUBLIC), "x", allow_private=False)


# -- a reply's stream ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("now", ["169.254.169.254", "127.0.0.1", "::ffff:169.254.169.254"])
async def test_a_name_rebound_after_saving_gets_neither_key_nor_prompt(
        now, dns, listening, private_off):
    port = listening.getsockname()[1]
    name = dns.name("relay.rebind.test", now=now)
    reply_id = await database_sync_to_async(_reply_on)(f"http://{name}:{port}")
    saved = await _run(reply_id)
    assert saved.status == Message.Status.FAILED
    assert saved.error_code == "address_refused"
    assert "was not contacted" in saved.error and "relay.rebind.test" in saved.error
    assert dns.connected_to == []  # no connection was even attempted
    assert _accepted_nothing(listening)


@pytest.mark.django_db(transaction=True)
async def test_the_reply_says_which_kind_of_address_it_was(dns, private_off):
    dns.name("meta.rebind.test", now="169.254.169.254")
    dns.name("lan.rebind.test", now="10.0.0.7")
    meta = await _run(await database_sync_to_async(_reply_on)("https://meta.rebind.test"))
    lan = await _run(await database_sync_to_async(_reply_on)("https://lan.rebind.test"))
    assert "cloud metadata service" in meta.error
    assert "lan.rebind.test (10.0.0.7) is on this machine or a private network" in lan.error
    assert "RELAY_ALLOW_PRIVATE" in lan.error


async def test_one_refused_address_among_public_ones_refuses_the_name(dns, private_off):
    dns.at_connect["mixed.rebind.test"] = [PUBLIC, "169.254.169.254"]
    client = RelayClient(RelayTarget("https://mixed.rebind.test", "sk-secret"), max_retries=0)
    try:
        with pytest.raises(RelayError) as caught:
            await client.list_models()
    finally:
        await client.aclose()
    assert caught.value.code == "address_refused" and not caught.value.retryable
    assert dns.connected_to == []


async def test_the_refusal_is_said_in_chinese_for_a_chinese_reader(dns, private_off):
    dns.at_connect["cn.rebind.test"] = ["127.0.0.1"]
    client = RelayClient(RelayTarget("http://cn.rebind.test", "sk-secret"), max_retries=0)
    try:
        with translation.override("zh-hans"), pytest.raises(RelayError) as caught:
            await client.list_models()
    finally:
        await client.aclose()
    message = caught.value.message
    assert re.search(r"[\u4e00-\u9fff]", message), message
    assert "not contacted" not in message and "RELAY_ALLOW_PRIVATE" in message


@pytest.mark.django_db(transaction=True)
async def test_with_the_setting_a_name_on_the_own_network_streams(dns, simulator, settings):
    settings.RELAY_ALLOW_PRIVATE = True
    settings.RELAY_MAX_RETRIES = 0
    name = dns.name("lan-relay.rebind.test", now="127.0.0.1")
    reply_id = await database_sync_to_async(_reply_on)(
        f"http://{name}:{simulator.server.port}", text="hello over the LAN")
    saved = await _run(reply_id)
    assert saved.status == Message.Status.COMPLETE, saved.error
    assert "hello over the LAN" in simulator.requests[-1].body["messages"][-1]["content"]
    assert dns.connected_to == ["127.0.0.1"]  # the checked address, not the name again


@pytest.mark.django_db(transaction=True)
async def test_the_simulated_relay_streams_without_the_setting_and_nothing_else_on_loopback(
        simulator, listening, private_off):
    private_off.SIMULATOR_URL = f"{simulator.url}/simulator"
    own = await database_sync_to_async(_reply_on)(
        "http://127.0.0.1:8000/simulator", is_simulated=True, text="to my own simulator")
    saved = await _run(own)
    assert saved.status == Message.Status.COMPLETE, saved.error
    assert "to my own simulator" in simulator.requests[-1].body["messages"][-1]["content"]

    def other_loopback_relay() -> int:  # saved when the setting was on, say
        private_off.RELAY_ALLOW_PRIVATE = True
        try:
            return _reply_on(f"http://127.0.0.1:{listening.getsockname()[1]}")
        finally:
            private_off.RELAY_ALLOW_PRIVATE = False

    other = await _run(await database_sync_to_async(other_loopback_relay)())
    assert other.status == Message.Status.FAILED and other.error_code == "address_refused"
    assert _accepted_nothing(listening)


# -- the connection goes to the checked address, TLS to the name -----------------------


@pytest.fixture(scope="module")
def tls_relay(tmp_path_factory):
    """A relay over TLS whose certificate names relay.rebind.test only (not 127.0.0.1)."""
    ca = trustme.CA()
    folder = tmp_path_factory.mktemp("tls-name")
    cert = ca.issue_cert("relay.rebind.test")
    cert.private_key_pem.write_to_path(folder / "key.pem")
    cert.cert_chain_pems[0].write_to_path(folder / "cert.pem")
    simulator = Simulator(token_rate=0)
    server = ThreadedServer(simulator, ssl_keyfile=str(folder / "key.pem"),
                            ssl_certfile=str(folder / "cert.pem")).start()
    context = ssl.create_default_context()
    ca.configure_trust(context)
    yield server, simulator, context
    server.stop()


async def test_the_socket_goes_to_the_checked_ip_and_tls_verifies_the_name(
        tls_relay, dns, settings):
    settings.RELAY_ALLOW_PRIVATE = True
    server, simulator, context = tls_relay
    dns.at_connect["relay.rebind.test"] = ["127.0.0.1"]
    http = new_http_client(verify=context)
    client = RelayClient(RelayTarget(f"https://relay.rebind.test:{server.port}", "k"),
                         client=http, max_retries=0)
    try:
        reply = await client.stream_collect(
            {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "Hi TLS"}]})
        # The certificate is for the name: reached as the bare IP it is refused.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await http.get(f"https://127.0.0.1:{server.port}/v1/models")
    finally:
        await http.aclose()
    assert "Hi TLS" in reply.content
    assert dns.connected_to[0] == "127.0.0.1"
    assert simulator.requests[-1].body["messages"][-1]["content"] == "Hi TLS"


async def test_the_backend_connects_to_the_ip_literal_it_checked(monkeypatch):
    checked: list[tuple] = []
    loop = asyncio.get_running_loop()
    asked: list[tuple] = []

    async def fake_resolve(host, port, **kwargs):
        return _infos(["2001:db8::5", PUBLIC], port)

    async def fake_connect(factory, host, port, **kwargs):
        asked.append((host, port, kwargs.get("family")))
        raise OSError("unreachable in this test")

    monkeypatch.setattr(loop, "getaddrinfo", fake_resolve)
    monkeypatch.setattr(loop, "create_connection", fake_connect)
    backend = AsyncioBackend(guard=lambda host, port, address: checked.append(
        (host, port, address)))
    with pytest.raises(httpcore.ConnectError, match="unreachable"):
        await backend.connect_tcp("relay.example.org", 443, timeout=5)
    assert checked == [("relay.example.org", 443, "2001:db8::5"),
                       ("relay.example.org", 443, PUBLIC)]
    # Each checked address in turn, never the name (a second lookup could differ).
    assert asked == [("2001:db8::5", 443, socket.AF_INET6), (PUBLIC, 443, socket.AF_INET)]


async def test_an_ip_literal_is_checked_without_a_lookup(monkeypatch, listening):
    loop = asyncio.get_running_loop()

    async def no_lookup(*args, **kwargs):
        raise AssertionError("an address needs no lookup")

    monkeypatch.setattr(loop, "getaddrinfo", no_lookup)
    checked: list[tuple] = []
    port = listening.getsockname()[1]
    stream = await AsyncioBackend(guard=lambda *args: checked.append(args)).connect_tcp(
        "127.0.0.1", port, timeout=5)
    await stream.aclose()
    assert checked == [("127.0.0.1", port, "127.0.0.1")]


async def test_a_guard_that_refuses_stops_the_connect_with_its_own_words(monkeypatch):
    loop = asyncio.get_running_loop()

    async def fake_resolve(host, port, **kwargs):
        return _infos(["169.254.169.254"], port)

    async def never(*args, **kwargs):
        raise AssertionError("no connection may be attempted")

    def guard(host, port, address):
        raise ValueError(f"{host} ({address}) is not an address a relay can have.")

    monkeypatch.setattr(loop, "getaddrinfo", fake_resolve)
    monkeypatch.setattr(loop, "create_connection", never)
    with pytest.raises(AddressRefused, match=r"relay.example.org \(169.254.169.254\) is not"):
        await AsyncioBackend(guard=guard).connect_tcp("relay.example.org", 80)
    assert issubclass(AddressRefused, httpcore.ConnectError)


# -- the other requests to relays ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_model_import_pricing_balance_and_probe_are_refused_too(dns, private_off):
    from conversations.relays.admin import _list_models
    from conversations.relays.balance import read_balance
    from conversations.relays.probe import probe_relay

    dns.name("shop.rebind.test", now="169.254.169.254")

    def saved_relay():
        check_relay_url("https://shop.rebind.test")
        relay = make_relay("https://shop.rebind.test")
        return relay, make_model(relay)

    relay, model = await database_sync_to_async(saved_relay)()
    with pytest.raises(RelayError, match="was not contacted"):
        await _list_models(relay)
    client = RelayClient(setup.relay_target(relay), max_retries=0)
    try:
        with pytest.raises(RelayError, match="was not contacted"):
            await client.fetch_pricing()
    finally:
        await client.aclose()
    from datetime import date

    balance = await read_balance(relay=relay, start=date(2026, 1, 1), end=date(2026, 1, 2))
    assert isinstance(balance, str) and "was not contacted" in balance
    report = await probe_relay(relay=relay, models=[model], price=lambda *a, **k: None,
                               samples={})
    assert "was not contacted" in report.models[0].attempts[0].detail
    assert dns.connected_to == []


def test_every_request_to_a_relay_goes_through_the_guarded_client():
    """No other module builds an HTTP client (httpx.Client for the sync admin code, say):
    the guard is only where `new_http_client` is. The simulator's own loopback link
    fetching is not a relay."""
    builders = re.compile(r"httpx\.(Client|AsyncClient|HTTPTransport|AsyncHTTPTransport|get|"
                          r"post|put|request|stream)\(|urlopen\(|http\.client|import aiohttp|"
                          r"create_connection\(|open_connection\(")
    found = []
    for path in sorted((ROOT / "conversations").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative in {"conversations/relays/client.py", "conversations/infra/netio.py",
                        "conversations/simulator/received.py"}:
            continue
        if builders.search(path.read_text()):
            found.append(relative)
    assert found == []


# -- the product's default, end to end ---------------------------------------------------


def test_a_server_with_the_default_setting_streams_from_its_own_simulator(tmp_path):
    env = server_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
                     RELAY_ALLOW_PRIVATE="false", RELAY_MAX_RETRIES="0")
    prepare_site(env)
    server = Server(env, tmp_path / "server.log")
    try:
        server.wait()
        client = sign_in(server.url)
        response = post(client, "/c/new/", {
            "model": model_id(client, "Gemini 2.5 Flash (simulated)"), "text": "hello"})
        conversation_id = re.search(r"/c/(\d+)/", response.headers["HX-Redirect"]).group(1)
        deadline = time.monotonic() + 30
        status = ""
        while time.monotonic() < deadline:
            status = subprocess.run(
                [sys.executable, "manage.py", "shell", "-c",
                 "from conversations.models import Message; m = Message.objects.filter("
                 f"conversation_id={conversation_id}, role='assistant').last(); "
                 "print(m.status, '|', m.error)"],
                cwd=ROOT, env=env, check=True, capture_output=True, text=True,
            ).stdout.strip().splitlines()[-1]
            if not status.startswith(("pending", "streaming")):
                break
            time.sleep(0.5)
        assert status.startswith("complete"), (status, server.log.read_text()[-2000:])
    finally:
        server.stop()
