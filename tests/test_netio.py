"""The plain-asyncio network backend under httpx: TLS, keep-alive, a dropped idle connection.

Everything else it does (timeouts, refused connections, cut streams, a
multi-megabyte line) is exercised by tests/test_relay_client.py, whose
clients read through it too.
"""

from __future__ import annotations

import asyncio
import ssl

import httpx
import pytest
import trustme

from conversations.infra.netio import AsyncioBackend, use_asyncio_network
from conversations.relays.client import RelayClient, RelayTarget, new_http_client
from conversations.simulator.app import Simulator
from tests.conftest import ThreadedServer


def _backend_of(client: httpx.AsyncClient):
    return client._transport._pool._network_backend


@pytest.fixture(scope="module")
def tls_simulator(tmp_path_factory):
    ca = trustme.CA()
    folder = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(folder / "key.pem")
    cert.cert_chain_pems[0].write_to_path(folder / "cert.pem")
    simulator = Simulator()
    server = ThreadedServer(
        simulator, ssl_keyfile=str(folder / "key.pem"), ssl_certfile=str(folder / "cert.pem")
    ).start()
    context = ssl.create_default_context()
    ca.configure_trust(context)
    yield server, simulator, context
    server.stop()


async def test_a_reply_streams_over_tls_through_the_asyncio_backend(tls_simulator):
    server, simulator, context = tls_simulator
    assert server.url.startswith("https://")
    http = new_http_client(verify=context)
    assert isinstance(_backend_of(http), AsyncioBackend)
    client = RelayClient(RelayTarget(base_url=server.url, api_key="k"), client=http)
    try:
        first = await client.stream_collect(
            {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "Hi TLS"}]}
        )
        second = await client.stream_collect(
            {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "Again"}]}
        )
        # The second reply reused the first one's connection (keep-alive).
        assert len(http._transport._pool.connections) == 1
    finally:
        await http.aclose()
    assert "Hi TLS" in first.content and "Again" in second.content
    assert first.finish_reason == "stop" and first.usage
    assert [r.body["messages"][-1]["content"] for r in simulator.requests[-2:]] == [
        "Hi TLS", "Again"]


async def test_a_certificate_the_client_does_not_trust_is_refused(tls_simulator):
    server, _, _ = tls_simulator
    http = new_http_client()  # the system's trust store: the test CA is not in it
    try:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await http.get(f"{server.url}/v1/models")
    finally:
        await http.aclose()


async def test_an_idle_connection_the_server_closed_is_replaced_not_reused():
    """The server answers with keep-alive, then hangs up while the connection idles."""
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    http = new_http_client()
    try:
        first = await http.get(f"http://127.0.0.1:{port}/")
        await asyncio.sleep(0.2)  # the server has closed the idle connection by now
        second = await http.get(f"http://127.0.0.1:{port}/")
    finally:
        await http.aclose()
        server.close()
    assert (first.text, second.text) == ("ok", "ok")
    assert connections == 2


async def test_a_read_timeout_is_httpx_own():
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(5)  # never answers in time
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    http = new_http_client(timeout=httpx.Timeout(5, read=0.2))
    try:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(f"http://127.0.0.1:{port}/")
    finally:
        await http.aclose()
        server.close()


async def test_a_relay_that_keeps_the_stream_open_after_done_is_not_waited_for_long():
    """The rest of the body is read after [DONE] to keep the connection; not forever."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.read(65536)
        chunk = (b'data: {"choices":[{"index":0,"delta":{"content":"hi"},'
                 b'"finish_reason":"stop"}]}\n\n')
        done = b"data: [DONE]\n\n"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        for piece in (chunk, done):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        await writer.drain()
        await asyncio.sleep(10)  # the body never ends
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = RelayClient(RelayTarget(base_url=f"http://127.0.0.1:{port}", api_key="k"),
                         max_retries=0)
    started = asyncio.get_running_loop().time()
    try:
        result = await client.stream_collect(
            {"model": "m", "messages": [{"role": "user", "content": "x"}]})
    finally:
        await client.aclose()
        server.close()
    assert (result.content, result.finish_reason) == ("hi", "stop")
    assert asyncio.get_running_loop().time() - started < 3


def test_the_backend_is_installed_through_the_private_attribute_it_relies_on():
    client = new_http_client()
    assert isinstance(_backend_of(client), AsyncioBackend)


def test_a_changed_private_interface_fails_loudly_not_silently():
    client = httpx.AsyncClient()
    del client._transport._pool  # as if httpx renamed it
    with pytest.raises(RuntimeError, match="no longer exposes"):
        use_asyncio_network(client)
