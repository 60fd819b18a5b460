"""httpcore's network layer on plain asyncio, for reading relay streams cheaply.

httpx reaches sockets through httpcore's pluggable network backend; the
default one goes through anyio, which opens a cancel scope and a timeout
context for every read. A streaming reply is one small read per token, so
with a hundred replies streaming those scopes were the largest single cost
of the server's event loop (measured with py-spy under bench/streaming.py).

Kept by measurement: with the anyio backend the relay → socket lag at 100
streams missed issue 2's targets; reading through this one met them (commit
670a2db, bench/streaming.py). It writes one private attribute of httpx's
transport (`_transport._pool._network_backend`, read by httpcore's pool each
time it opens a connection); `use_asyncio_network` raises if that attribute
is gone, and tests/test_netio.py fails with it.

This backend is an asyncio Protocol with a byte buffer: a read returns what
has arrived, or waits on one future with one timer. TLS is asyncio's own
(`loop.start_tls`), as httpcore asks for it after connecting. Errors and
timeouts become httpcore's exceptions, which httpx turns into its own, so
`relay.RelayClient` sees exactly what it saw with the default backend.

A backend given a `guard` resolves host names itself (`loop.getaddrinfo`),
hands every address to the guard, and connects to the checked IP literal, so
no second resolution can answer differently (DNS rebinding between a check
and the connect). TLS still verifies the name: httpcore calls `start_tls`
with `server_hostname` set to the URL's host (or the request's `sni_hostname`)
after `connect_tcp`, whatever address the socket reached. A guard that
refuses raises ValueError; the connect then fails, before a byte is sent,
with `AddressRefused` (an httpcore.ConnectError) carrying the guard's words.
What the guard allows is the caller's rule (relays.addresses): this module
knows nothing of relays.
"""

# The `timeout` arguments are httpcore's network-backend interface.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import httpcore
import httpx

# Stop reading from the socket while this much is waiting to be read.
_HIGH_WATER = 1 << 20

# guard(host, port, address): returns if a connection to `address` (an IP
# literal that `host` resolved to) may be opened; raises ValueError if not.
Guard = Callable[[str, int, str], None]


class AddressRefused(httpcore.ConnectError):
    """The guard refused an address the host name resolved to; nothing was sent."""


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.transport: asyncio.Transport | None = None
        self._reader: asyncio.Future | None = None
        self._drained: asyncio.Future | None = None
        self._reading_paused = False
        self._writing_paused = False
        # One timer per connection, re-armed lazily: a read every 40 ms must
        # not schedule and cancel a timer each time.
        self._deadline: float | None = None
        self._timeout_error: type = httpcore.ReadTimeout
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio callbacks -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _HIGH_WATER and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wake_reader()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _wake_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    # -- for the stream --------------------------------------------------------

    def take(self, max_bytes: int) -> bytes:
        data = bytes(self.buffer[:max_bytes])
        del self.buffer[:max_bytes]
        if self._reading_paused and len(self.buffer) <= _HIGH_WATER // 4 and self.transport:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    async def wait(self, kind: str, timeout: float | None, timeout_error: type) -> None:
        """Wait until data or EOF arrives ("read") or writing may go on ("drain")."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        if kind == "read":
            self._reader = waiter
        else:
            self._drained = waiter
        if timeout is not None:
            self._deadline = loop.time() + timeout
            self._timeout_error = timeout_error
            if self._timer is None or self._timer.when() > self._deadline:
                if self._timer is not None:
                    self._timer.cancel()
                self._timer = loop.call_at(self._deadline, self._check_deadline)
        try:
            await waiter
        finally:
            self._deadline = None
            if kind == "read":
                self._reader = None
            else:
                self._drained = None

    def _check_deadline(self) -> None:
        self._timer = None
        if self._deadline is None:
            return  # nothing is waiting; the next wait arms the timer again
        loop = asyncio.get_running_loop()
        if loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._check_deadline)
            return
        for waiter in (self._reader, self._drained):
            if waiter is not None and not waiter.done():
                waiter.set_exception(self._timeout_error("timed out"))


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        protocol.transport = transport

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.buffer and not protocol.eof:
            await protocol.wait("read", timeout, httpcore.ReadTimeout)
        if protocol.buffer:
            return protocol.take(max_bytes)
        if protocol.error is not None:
            raise httpcore.ReadError(str(protocol.error) or type(protocol.error).__name__)
        return b""  # the peer closed the connection

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        protocol = self._protocol
        if protocol.eof or self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        self._transport.write(buffer)
        if protocol._writing_paused:
            await protocol.wait("drain", timeout, httpcore.WriteTimeout)
            if protocol.eof and protocol.error is not None:
                raise httpcore.WriteError(str(protocol.error))

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._protocol, ssl_context,
                    server_hostname=server_hostname,
                )
        except TimeoutError as exc:
            self._transport.abort()
            raise httpcore.ConnectTimeout("TLS handshake timed out") from exc
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self._transport.abort()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        if transport is None:  # the connection closed during the handshake
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        return AsyncioStream(transport, self._protocol)  # type: ignore[arg-type]

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        if info == "is_readable":
            # An idle keep-alive connection with something to read (or closed)
            # was dropped by the server: httpcore then opens a new one.
            return bool(self._protocol.buffer) or self._protocol.eof
        return None


async def _open(
    connecting: Coroutine[Any, Any, tuple[asyncio.BaseTransport, asyncio.BaseProtocol]],
    timeout: float | None, where: str,
) -> AsyncioStream:
    """A connection being opened, with httpcore's exceptions for what goes wrong."""
    try:
        async with asyncio.timeout(timeout):
            transport, protocol = await connecting
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(f"connecting to {where} timed out") from exc
    except OSError as exc:
        raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
    return AsyncioStream(transport, protocol)  # type: ignore[arg-type]


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """`host` as an address if it is one in the usual spelling (2852039166 and such
    are left to getaddrinfo, which says which address they mean)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def _connect_checked(
    host: str, port: int, guard: Guard, local_address: str | None,
) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
    """Resolve `host`, let `guard` judge every address, connect to the first that answers."""
    loop = asyncio.get_running_loop()
    literal = _ip_literal(host)
    if literal is not None:  # no lookup (getaddrinfo is a thread hop) for 127.0.0.1 and such
        infos = [(socket.AF_INET6 if literal.version == 6 else socket.AF_INET,
                  socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port))]
    else:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                       proto=socket.IPPROTO_TCP)
    for info in infos:
        try:
            guard(host, port, str(info[4][0]))
        except ValueError as exc:  # one refused address refuses the name: no partial trust
            raise AddressRefused(str(exc)) from exc
    error = OSError(f"{host} has no address")
    for family, _, proto, _, sockaddr in infos:
        try:
            return await loop.create_connection(
                _Protocol, sockaddr[0], port, family=family, proto=proto,
                local_addr=(local_address, 0) if local_address else None,
            )
        except OSError as exc:
            error = exc
    raise error


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, guard: Guard | None = None) -> None:
        self.guard = guard

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[tuple] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        if self.guard is not None:
            connecting = _connect_checked(host, port, self.guard, local_address)
        else:
            connecting = loop.create_connection(
                _Protocol, host, port, local_addr=(local_address, 0) if local_address else None
            )
        stream = await _open(connecting, timeout, f"{host}:{port}")
        sock: socket.socket | None = stream.get_extra_info("socket")
        for option in socket_options or ():
            if sock is not None:
                sock.setsockopt(*option)
        return stream

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[tuple] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        return await _open(loop.create_unix_connection(_Protocol, path), timeout, path)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def use_asyncio_network(
    client: httpx.AsyncClient, *, guard: Guard | None = None
) -> httpx.AsyncClient:
    """Make the client's default transport reach the network through AsyncioBackend
    (with `guard`, every address it connects to is judged first).

    The client keeps all of httpx's own set-up (TLS settings, pool limits,
    proxies from the environment, which stay on httpcore's default backend).
    httpx builds its httpcore pool with no way to pass a network backend; the
    pool reads this attribute each time it opens a connection.

    Through a proxy (HTTP(S)_PROXY, ALL_PROXY in the environment) the guard is
    not used: the proxy resolves the relay's name and the app never learns the
    address, so what the proxy may reach is the proxy's rule. The address is
    still checked when the relay is saved.
    """
    if not isinstance(client._transport, httpx.AsyncHTTPTransport):
        return client  # a transport of the caller's own (tests inject one)
    pool = getattr(client._transport, "_pool", None)
    if not isinstance(pool, httpcore.AsyncConnectionPool) or not hasattr(
        pool, "_network_backend"
    ):
        # httpx or httpcore changed the private attributes this relies on: fail
        # here, at start-up and in tests, rather than quietly losing the backend.
        raise RuntimeError(
            "httpx's transport no longer exposes httpcore's pool network backend "
            f"(httpx {httpx.__version__}, httpcore {httpcore.__version__}); update "
            "conversations/infra/netio.py"
        )
    pool._network_backend = AsyncioBackend(guard)
    return client
