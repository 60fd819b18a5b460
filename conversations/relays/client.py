"""The only module that speaks HTTP to relays.

Everything a relay can do wrong (PROTOCOL.md §3 and §5) ends up as one
exception, `RelayError`, whose `message` is written for the person using the
app, not for a log file.

Retry policy (§5): 429, 5xx (except `convert_request_failed`), refused
connections and connections closed before the first token are retried with
exponential backoff; 4xx, `{"error": …}` chunks, idle timeouts and anything
after the first token are not, so a retry can never repeat text or bill twice
for a reply the user already saw. The API key is never put in a message.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from django.utils.translation import gettext, ngettext

from conversations.infra.netio import AddressRefused, use_asyncio_network
from conversations.relays.addresses import check_connection
from conversations.relays.errors import (
    ERROR_BODY_LIMIT,
    RelayError,
    duration_words,
    error_from_response,
    parse_json,
    response_error,
    sentence,
    short_reason,
    unexpected_answer,
)
from conversations.relays.request_body import streamed_content
from conversations.relays.stream import (
    Completion,
    StreamEvent,
    apply_event,
    cut_body,
    events_from_completion,
    events_from_sse,
)

logger = logging.getLogger(__name__)




# A relay's Retry-After up to this many seconds is waited out before a retry;
# a longer one ends the attempt with the wait in the message.
MAX_RETRY_AFTER = 20.0


@dataclass(frozen=True)
class RelayTarget:
    """What the client needs to know about a relay; built from the Relay model."""

    base_url: str
    api_key: str
    name: str = "relay"

    @property
    def _root(self) -> str:
        # People paste the whole endpoint as often as the base URL.
        return self.base_url.strip().rstrip("/").removesuffix("/chat/completions")

    @property
    def api_root(self) -> str:
        root = self._root
        return root if root.endswith("/v1") else f"{root}/v1"

    @property
    def site_root(self) -> str:
        return self._root.removesuffix("/v1")

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def __repr__(self) -> str:  # never let the key reach a log line
        return f"RelayTarget(base_url={self.base_url!r}, name={self.name!r})"








def _timeout(connect: float, read: float) -> httpx.Timeout:
    return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)


_shared: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient] | None = None


def new_http_client(**options: Any) -> httpx.AsyncClient:
    """An httpx client for relays, reading through the plain-asyncio network
    backend (conversations.infra.netio): a stream is one small read per token.

    Every connection it opens is to an address `addresses.check_connection`
    allowed at that moment, so a relay's name that now resolves somewhere a
    relay cannot be (DNS rebinding) gets neither the key nor the prompt. Every
    request to a relay (replies, titles, model and price import, balance,
    probe) goes through a client made here. Through a proxy from the
    environment the check cannot see the relay's address (netio's
    `use_asyncio_network` says why) and only the check on saving applies.
    """
    return use_asyncio_network(httpx.AsyncClient(**options), guard=check_connection)


def shared_http_client() -> httpx.AsyncClient:
    """One pooled HTTP client per event loop, for every reply the server generates.

    Building a client builds a TLS context (tens of milliseconds of CPU), and a
    pool keeps connections to the relay alive between replies. At most 20 are
    kept idle: httpcore's pool compares every idle connection with every other
    one each time a request starts or ends, so a hundred idle ones cost
    milliseconds per request.
    """
    global _shared
    loop = asyncio.get_running_loop()
    if _shared is None or _shared[0] is not loop or _shared[1].is_closed:
        client = new_http_client(
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=20)
        )
        _shared = (loop, client)
    return _shared[1]


class RelayClient:
    """An async client for one relay. Tests hand it a transport; the app doesn't."""

    def __init__(
        self,
        target: RelayTarget,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.target = target
        self.max_retries = max_retries
        self.backoff = backoff
        self.read_timeout = read_timeout
        self.timeout = _timeout(connect_timeout, read_timeout)
        self._owns_client = client is None
        self._client = client or new_http_client(
            timeout=self.timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=20),
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> RelayClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    # -- retries -----------------------------------------------------------

    async def _should_retry(self, error: RelayError, attempt: int, *, started: bool) -> bool:
        """Sleep and say yes if `error` deserves another try; else finish the error.

        Nothing is retried once the reply has started (a retry would repeat
        text the user has already seen), nor anything §5 says not to retry.
        """
        error.redact(self.target.api_key)
        if started or not error.retryable:
            return False
        if attempt >= self.max_retries:
            if attempt:
                error.message = ngettext(
                    "%(message)s Tried %(count)s time.", "%(message)s Tried %(count)s times.",
                    attempt + 1) % {"message": error.message, "count": attempt + 1}
                error.args = (error.message,)
            return False
        delay = self.backoff * (2**attempt)
        if error.retry_after is not None:
            if error.retry_after > MAX_RETRY_AFTER:
                # Waiting that long would leave the page hanging; say when to try.
                error.message = gettext(
                    "%(message)s The relay asks to wait %(duration)s before trying again."
                ) % {"message": error.message, "duration": duration_words(error.retry_after)}
                error.args = (error.message,)
                return False
            delay = max(delay, error.retry_after)
        logger.info("relay %s: %s; retry %d in %.2fs", self.target.name, error.message,
                    attempt + 1, delay)
        await asyncio.sleep(delay)
        return True

    # -- streaming ---------------------------------------------------------

    async def stream_chat(
        self, body: dict[str, Any], *, extra_headers: dict[str, str] | None = None
    ) -> AsyncIterator[StreamEvent]:
        """Yield events of one streamed reply; raise RelayError on any failure.

        Retries (429/5xx, connection failures) happen only before the first
        event reaches the caller, so a retry can never duplicate text.
        """
        body = stream_body(body)
        attempt = 0
        while True:
            started = False
            try:
                async for event in self._stream_once(body, extra_headers):
                    started = True
                    yield event
                return
            except RelayError as exc:
                if not await self._should_retry(exc, attempt, started=started):
                    raise
                attempt += 1

    async def _stream_once(
        self, body: dict[str, Any], extra_headers: dict[str, str] | None
    ) -> AsyncIterator[StreamEvent]:
        headers = {**self.target.headers(), "Accept": "text/event-stream"}
        if extra_headers:
            headers.update(extra_headers)
        url = f"{self.target.api_root}/chat/completions"
        content, length = request_content(body)
        if length is not None:
            headers["Content-Length"] = str(length)
        answered = False
        try:
            async with self._client.stream(
                "POST", url, content=content, headers=headers, timeout=self.timeout
            ) as response:
                answered = True
                if not response.is_success:
                    raise await error_from_response(response)
                content_type = response.headers.get("content-type", "").lower()
                if "event-stream" in content_type:
                    async for event in events_from_sse(response.aiter_bytes()):
                        yield event
                    return
                # Some relays answer a streaming request with one JSON completion.
                raw, pictures = await cut_body(response.aiter_bytes())
                if "json" not in content_type and not raw.lstrip().startswith(b"{"):
                    raise unexpected_answer(response.status_code, raw[:ERROR_BODY_LIMIT],
                                            content_type)
                for event in events_from_completion(parse_json(raw), pictures):
                    yield event
        except RelayError:
            raise
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, answered=answered) from exc

    def _transport_error(self, exc: httpx.HTTPError, *, answered: bool) -> RelayError:
        """Say in plain words what went wrong on the wire."""
        where = self.target.base_url
        refused = _address_refusal(exc)
        if refused is not None:
            # Not retried: the name resolves somewhere the key must not go.
            return RelayError(
                gettext("The relay at %(url)s was not contacted: its address now points "
                        "somewhere the app never sends requests or keys to. %(reason)s")
                % {"url": where, "reason": short_reason(refused)},
                code="address_refused")
        if isinstance(exc, httpx.ConnectTimeout):
            return RelayError(
                gettext("Could not connect to the relay at %(url)s: it did not answer in "
                        "time.") % {"url": where},
                code="connect_timeout", retryable=True)
        if isinstance(exc, httpx.ConnectError):
            return RelayError(
                gettext("Could not connect to the relay at %(url)s (%(reason)s). Check the "
                        "address and that the relay is up.")
                % {"url": where, "reason": short_reason(exc)},
                code="connect_failed", retryable=True)
        if isinstance(exc, httpx.ReadTimeout):
            # Not retried: a relay that went silent may still be working (and
            # billing) on the first request; waiting again would double the wait.
            return RelayError(
                gettext("The relay stopped sending data for %(seconds)s seconds, so the "
                        "reply was abandoned.") % {"seconds": f"{self.read_timeout:g}"},
                code="idle_timeout")
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
            if answered:
                return RelayError(
                    gettext("The connection to the relay broke off in the middle of the "
                            "reply."),
                    code="connection_lost", retryable=True)
            return RelayError(gettext("The relay closed the connection without answering."),
                              code="connection_lost", retryable=True)
        if isinstance(exc, httpx.WriteTimeout | httpx.WriteError):
            # Often a proxy refusing a large upload by hanging up; sending it again won't help.
            return RelayError(
                gettext("Sending the request to the relay failed (%(reason)s); if it carried "
                        "large files, the relay may refuse its size.")
                % {"reason": short_reason(exc)},
                code="send_failed")
        return RelayError(
            gettext("Talking to the relay failed (%(kind)s: %(reason)s).")
            % {"kind": type(exc).__name__, "reason": short_reason(exc)},
            code="transport_error", retryable=isinstance(exc, httpx.TransportError))

    async def stream_collect(self, body: dict[str, Any]) -> Completion:
        """Stream a reply and gather it; handy for tests and scripts."""
        result = Completion()
        async for event in self.stream_chat(body):
            apply_event(result, event)
        return result

    # -- non-streaming -----------------------------------------------------

    async def complete_chat(self, body: dict[str, Any]) -> Completion:
        body = {key: value for key, value in body.items()
                if key not in {"steam", "stream_options"}}
        body["stream"] = False
        data = await self._request_json("POST", "/chat/completions", json_body=body)
        result = Completion()
        for event in events_from_completion(data):
            apply_event(result, event)
        return result

    async def list_models(self) -> list[str]:
        return [str(item["id"]) for item in await self.list_model_entries()]

    async def list_model_entries(self) -> list[dict]:
        """GET /v1/models: each entry as the relay gave it (some gateways add
        context and modality fields, PROTOCOL §1)."""
        data = await self._request_json("GET", "/models")
        items = data.get("data") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise RelayError(gettext("The relay's model list is not a list of models."),
                             code="bad_response")
        return [item for item in items if isinstance(item, dict) and "id" in item]

    async def fetch_pricing(self) -> Any:
        """new-api's GET /api/pricing (ratios per model)."""
        data = await self._request_json("GET", "/api/pricing", site=True)
        if isinstance(data, dict) and data.get("success") is False:
            # new-api's /api routes answer 200 with success=false and a message.
            raise RelayError(
                sentence(gettext("The relay would not share its prices"),
                          str(data.get("message") or "")),
                status=200, code="pricing_unavailable",
                relay_message=str(data.get("message") or ""),
            ).redact(self.target.api_key)
        return data

    async def fetch_billing(self, *, start: str, end: str) -> tuple[Any, Any]:
        """The OpenAI billing routes new-api and one-api serve for a key
        (PROTOCOL §7b): the subscription (limit in dollars) and the usage
        (in cents) from `start` to `end` (YYYY-MM-DD)."""
        subscription = await self._request_json("GET", "/dashboard/billing/subscription")
        usage = await self._request_json(
            "GET", f"/dashboard/billing/usage?start_date={start}&end_date={end}")
        return subscription, usage

    async def _request_json(
        self, method: str, path: str, *, json_body: dict | None = None, site: bool = False
    ) -> Any:
        url = f"{self.target.site_root if site else self.target.api_root}{path}"
        attempt = 0
        while True:
            try:
                return await self._request_json_once(method, url, json_body)
            except RelayError as exc:
                if not await self._should_retry(exc, attempt, started=False):
                    raise
                attempt += 1

    async def _request_json_once(self, method: str, url: str, json_body: dict | None) -> Any:
        try:
            response = await self._client.request(
                method,
                url,
                content=body_bytes(json_body) if json_body is not None else None,
                headers=self.target.headers(),
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, answered=False) from exc
        content_type = response.headers.get("content-type", "").lower()
        if not response.is_success:
            raise response_error(response, response.content)
        if "json" not in content_type and not response.content.lstrip().startswith(
            (b"{", b"[")
        ):
            raise unexpected_answer(response.status_code, response.content[:ERROR_BODY_LIMIT],
                                    content_type)
        return parse_json(response.content)


def _address_refusal(exc: BaseException) -> AddressRefused | None:
    """The connect-time address refusal behind an httpx error, if that is what it was."""
    seen: BaseException | None = exc
    for _ in range(8):  # httpx's error, httpcore's, the guard's
        if seen is None or isinstance(seen, AddressRefused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def stream_body(body: dict[str, Any]) -> dict[str, Any]:
    """The body as sent for streaming: `stream` (never the docs' typo `steam`) and usage."""
    body = {key: value for key, value in body.items() if key != "steam"}
    body["stream"] = True
    options = body.get("stream_options")
    # Always ask for usage (§1): it is how the product sees cost and dropped media.
    body["stream_options"] = {**(options if isinstance(options, dict) else {}),
                              "include_usage": True}
    return body


def body_bytes(body: dict[str, Any] | None) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def request_content(body: dict[str, Any]) -> tuple[bytes | AsyncIterator[bytes], int | None]:
    """Bytes for a plain body; for one carrying stored files (conversations.request_body),
    a fresh stream that reads them in chunks on each attempt, with its exact length."""
    streamed = streamed_content(body)
    return streamed if streamed is not None else (body_bytes(body), None)
