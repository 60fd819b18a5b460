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
import contextlib
import email.utils
import json
import logging
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from httpx_sse import EventSource, SSEError

from .netio import use_asyncio_network

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = {429, 500, 502, 503, 504}
DRAIN_AFTER_DONE = 1.0  # seconds
# A relay's Retry-After up to this many seconds is waited out before a retry;
# a longer one ends the attempt with the wait in the message.
MAX_RETRY_AFTER = 20.0
NON_RETRYABLE_CODES = {"convert_request_failed"}
ERROR_BODY_LIMIT = 64 * 1024
RELAY_MESSAGE_LIMIT = 300  # characters of the relay's own words quoted to the user


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


class RelayError(Exception):
    """A relay failed. `message` is what the user reads."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        relay_message: str = "",
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.relay_message = relay_message
        self.retryable = retryable
        self.retry_after = retry_after  # seconds the relay asked us to wait (Retry-After)

    def __str__(self) -> str:
        return self.message

    def redact(self, secret: str) -> RelayError:
        """Blank out `secret` wherever the relay echoed it (some quote the key).

        Too short a "key" (a test's "k") would blank out ordinary letters.
        """
        if len(secret) >= 6:
            self.message = self.message.replace(secret, "***")
            self.relay_message = self.relay_message.replace(secret, "***")
            self.args = (self.message,)
        return self


# Words new-api and one-api use (matched case-insensitively, first hit wins),
# with what they mean for the user. Order matters: specific before general.
KNOWN_RELAY_MESSAGES: list[tuple[str, str]] = [
    ("额度已用尽", "your key has run out of quota"),
    ("预扣费额度失败", "your relay account does not have enough quota for this request. "
     "new-api pre-charges prompt + max tokens, so lowering Max tokens may help"),
    ("用户额度不足", "your relay account does not have enough balance"),
    ("余额不足", "your relay account does not have enough balance"),
    ("无效的令牌", "the API key is not valid"),
    ("令牌已过期", "the API key has expired"),
    ("令牌已被禁用", "the API key has been disabled"),
    ("令牌状态不可用", "the API key has been disabled"),
    ("无权", "your key is not allowed to use this model"),
    # "当前分组上游负载已饱和": the group's upstream is busy, not a forbidden model.
    ("负载已饱和", "its upstream is overloaded right now; wait a moment and retry"),
    ("无可用渠道", "it has no channel that can serve this model right now"),
    ("invalid api key", "the API key is not valid"),
    ("incorrect api key", "the API key is not valid"),
    ("invalid token", "the API key is not valid"),
]

STATUS_EXPLANATIONS: dict[int, str] = {
    400: "The relay refused the request as invalid",
    401: "The relay rejected the API key (invalid, expired or out of quota)",
    402: "The relay says payment is required: the account is out of balance",
    403: "The relay refused the request: not enough quota, or this model is not allowed "
    "for your key",
    404: "The relay does not know this endpoint or model",
    408: "The relay timed out waiting for the request",
    413: "The request is too large for the relay: send fewer or smaller files",
    429: "The relay is rate-limiting requests; wait a moment and retry",
    500: "The relay hit an internal error",
    502: "The relay's upstream gateway failed",
    503: "The relay has no channel available for this model right now",
    504: "The relay's upstream gateway timed out",
}

# What a code means, said after "The relay says".
CODE_EXPLANATIONS: dict[str, str] = {
    "insufficient_user_quota": "your relay account does not have enough quota for this request. "
    "new-api pre-charges prompt + max tokens, so lowering Max tokens may help",
    "insufficient_quota": "your account has run out of quota",
    "prompt_blocked": "the model's safety filter blocked the prompt",
    "model_price_error": "it has no price set for this model, so it refuses to run it",
    "model_not_found": "it has no channel that serves this model",
    "convert_request_failed": "it could not convert the request for the upstream model, "
    "usually because of a media format it does not accept",
    "do_request_failed": "it could not reach the upstream model",
    "bad_response_status_code": "the upstream model answered with an error",
    "empty_response": "the upstream model returned an empty answer",
    "rate_limit_exceeded": "it is rate-limiting your requests; wait a moment and retry",
}

_REQUEST_ID = re.compile(r"\s*\(request id: [^)]*\)\s*$", re.I)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)


def _strip_request_id(message: str) -> str:
    return _REQUEST_ID.sub("", message).strip()


def _clip(text: str, limit: int = RELAY_MESSAGE_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _looks_html(text: str, content_type: str = "") -> bool:
    return "html" in content_type or text.lstrip()[:15].lower().startswith(("<!doctype", "<html"))


def _html_title(text: str) -> str:
    match = _TITLE.search(text)
    return _clip(match.group(1).strip(), 120) if match else ""


def _decode_body(body: bytes | str | dict | None) -> Any:
    """bytes → the parsed JSON if it is JSON, else the stripped text."""
    payload: Any = body
    if isinstance(body, bytes):
        payload = body.decode("utf-8", errors="replace")
    if isinstance(payload, str):
        payload = payload.strip()
        if payload.startswith(("{", "[")):
            try:
                return json.loads(payload)
            except ValueError:
                return payload
    return payload


def _read_error_object(payload: Any) -> tuple[str, str]:
    """(code, message) from the shapes relays use for errors."""
    if not isinstance(payload, dict):
        return "", ""
    error = payload.get("error", payload)
    code = message = ""
    if isinstance(error, dict):
        code = str(error.get("code") or "")
        kind = str(error.get("type") or "")
        if not code and kind in CODE_EXPLANATIONS:  # OpenAI puts some codes in `type`
            code = kind
        message = str(error.get("message") or "")
    elif isinstance(error, str):
        message = error
    for key in ("message", "detail", "msg"):
        if not message and isinstance(payload.get(key), str):
            message = payload[key]
    return code, message


def _reason(code: str, relay_message: str) -> str:
    if code in CODE_EXPLANATIONS:
        return CODE_EXPLANATIONS[code]
    lowered = relay_message.lower()
    for needle, meaning in KNOWN_RELAY_MESSAGES:
        if needle in lowered:
            return meaning
    return ""


def _sentence(lead: str, relay_message: str, *, empty: bool = False) -> str:
    text = lead.rstrip(".")
    if relay_message:
        text += f" (relay message: “{_clip(relay_message)}”)"
    elif empty:
        text += " (with an empty answer)"
    return text + "."


def _web_page(html: str) -> tuple[str, str]:
    """How to name an HTML answer in a message, and its title."""
    title = _html_title(html)
    return (f"a web page (“{title}”)" if title else "a web page"), title


def explain_error(
    status: int | None, body: bytes | str | dict | None, *, content_type: str = ""
) -> RelayError:
    """Turn a relay's error answer into a RelayError a person can read."""
    payload = _decode_body(body)
    code, relay_message = _read_error_object(payload)
    if isinstance(payload, str) and payload:
        if _looks_html(payload, content_type):
            page, title = _web_page(payload)
            return RelayError(
                f"The relay answered HTTP {status} with {page} instead of JSON; a proxy or "
                "gateway in front of it is probably failing.",
                status=status,
                code="html_response",
                relay_message=title,
                retryable=status in RETRYABLE_STATUSES,
            )
        relay_message = payload
    relay_message = _clip(_strip_request_id(relay_message), 2000)

    reason = _reason(code, relay_message)
    if reason:
        lead = f"The relay says {reason}"
    elif status is not None:
        lead = STATUS_EXPLANATIONS.get(status, f"The relay answered HTTP {status}")
    else:
        lead = "The relay reported an error"
    return RelayError(
        _sentence(lead, relay_message, empty=not payload),
        status=status,
        code=code,
        relay_message=relay_message,
        retryable=status in RETRYABLE_STATUSES and code not in NON_RETRYABLE_CODES,
    )


def unexpected_answer(status: int, body: bytes, content_type: str) -> RelayError:
    """A 200 that is neither a stream nor JSON: usually a base URL that misses the API."""
    text = body.decode("utf-8", errors="replace")
    if _looks_html(text, content_type):
        page, title = _web_page(text)
        return RelayError(
            f"The relay answered with {page} instead of a reply; check that the base URL "
            "points at the relay's API.",
            status=status,
            code="html_response",
            relay_message=title,
        )
    return RelayError(
        _sentence("The relay answered with something that is neither a stream nor JSON",
                  _clip(text, 120)),
        status=status,
        code="bad_response",
        relay_message=_clip(text, 120),
    )


@dataclass
class StreamEvent:
    """One thing a streaming relay told us."""

    kind: Literal["content", "reasoning", "finish", "usage", "image"]
    text: str = ""
    usage: dict | None = None


@dataclass
class Completion:
    """A whole answer, streamed or not."""

    content: str = ""
    reasoning: str = ""
    finish_reason: str = ""
    usage: dict | None = None
    images: list[str] = field(default_factory=list)


def _timeout(connect: float, read: float) -> httpx.Timeout:
    return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)


_shared: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient] | None = None


def new_http_client(**options: Any) -> httpx.AsyncClient:
    """An httpx client for relays, reading through the plain-asyncio network
    backend (conversations.netio): a stream is one small read per token."""
    return use_asyncio_network(httpx.AsyncClient(**options))


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
                error.message += f" Tried {attempt + 1} times."
                error.args = (error.message,)
            return False
        delay = self.backoff * (2**attempt)
        if error.retry_after is not None:
            if error.retry_after > MAX_RETRY_AFTER:
                # Waiting that long would leave the page hanging; say when to try.
                error.message += (
                    f" The relay asks to wait {_duration(error.retry_after)} before trying again."
                )
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
                    raise await _error_from_response(response)
                content_type = response.headers.get("content-type", "").lower()
                if "event-stream" in content_type:
                    async for event in _events_from_sse(EventSource(response)):
                        yield event
                    return
                # Some relays answer a streaming request with one JSON completion.
                raw = await response.aread()
                if "json" not in content_type and not raw.lstrip().startswith(b"{"):
                    raise unexpected_answer(response.status_code, raw[:ERROR_BODY_LIMIT],
                                            content_type)
                for event in _events_from_completion(_parse_json(raw)):
                    yield event
        except RelayError:
            raise
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, answered=answered) from exc
        except SSEError as exc:
            raise RelayError(f"The relay sent an unreadable stream ({_short(exc)}).",
                             code="bad_stream") from exc

    def _transport_error(self, exc: httpx.HTTPError, *, answered: bool) -> RelayError:
        """Say in plain words what went wrong on the wire."""
        where = self.target.base_url
        if isinstance(exc, httpx.ConnectTimeout):
            return RelayError(
                f"Could not connect to the relay at {where}: it did not answer in time.",
                code="connect_timeout", retryable=True)
        if isinstance(exc, httpx.ConnectError):
            return RelayError(
                f"Could not connect to the relay at {where} ({_short(exc)}). Check the "
                "address and that the relay is up.",
                code="connect_failed", retryable=True)
        if isinstance(exc, httpx.ReadTimeout):
            # Not retried: a relay that went silent may still be working (and
            # billing) on the first request; waiting again would double the wait.
            return RelayError(
                f"The relay stopped sending data for {self.read_timeout:g} seconds, so the "
                "reply was abandoned.",
                code="idle_timeout")
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
            if answered:
                return RelayError(
                    "The connection to the relay broke off in the middle of the reply.",
                    code="connection_lost", retryable=True)
            return RelayError("The relay closed the connection without answering.",
                              code="connection_lost", retryable=True)
        if isinstance(exc, httpx.WriteTimeout | httpx.WriteError):
            # Often a proxy refusing a large upload by hanging up; sending it again won't help.
            return RelayError(
                f"Sending the request to the relay failed ({_short(exc)}); if it carried "
                "large files, the relay may refuse its size.",
                code="send_failed")
        return RelayError(
            f"Talking to the relay failed ({type(exc).__name__}: {_short(exc)}).",
            code="transport_error", retryable=isinstance(exc, httpx.TransportError))

    async def stream_collect(self, body: dict[str, Any]) -> Completion:
        """Stream a reply and gather it; handy for tests and scripts."""
        result = Completion()
        async for event in self.stream_chat(body):
            _apply(result, event)
        return result

    # -- non-streaming -----------------------------------------------------

    async def complete_chat(self, body: dict[str, Any]) -> Completion:
        body = {key: value for key, value in body.items()
                if key not in {"steam", "stream_options"}}
        body["stream"] = False
        data = await self._request_json("POST", "/chat/completions", json_body=body)
        result = Completion()
        for event in _events_from_completion(data):
            _apply(result, event)
        return result

    async def list_models(self) -> list[str]:
        data = await self._request_json("GET", "/models")
        items = data.get("data") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise RelayError("The relay's model list is not a list of models.",
                             code="bad_response")
        return [str(item["id"]) for item in items if isinstance(item, dict) and "id" in item]

    async def fetch_pricing(self) -> Any:
        """new-api's GET /api/pricing (ratios per model)."""
        data = await self._request_json("GET", "/api/pricing", site=True)
        if isinstance(data, dict) and data.get("success") is False:
            # new-api's /api routes answer 200 with success=false and a message.
            raise RelayError(
                _sentence("The relay would not share its prices",
                          str(data.get("message") or "")),
                status=200, code="pricing_unavailable",
                relay_message=str(data.get("message") or ""),
            ).redact(self.target.api_key)
        return data

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
            raise _response_error(response, response.content)
        if "json" not in content_type and not response.content.lstrip().startswith(
            (b"{", b"[")
        ):
            raise unexpected_answer(response.status_code, response.content[:ERROR_BODY_LIMIT],
                                    content_type)
        return _parse_json(response.content)


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
    from .request_body import streamed_content

    streamed = streamed_content(body)
    return streamed if streamed is not None else (body_bytes(body), None)


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise RelayError(
            "The relay answered with something that is not JSON.", code="bad_json"
        ) from exc


async def _error_from_response(response: httpx.Response) -> RelayError:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= ERROR_BODY_LIMIT:
            break
    return _response_error(response, b"".join(chunks))


def _response_error(response: httpx.Response, body: bytes) -> RelayError:
    """A relay's error answer explained, with how long it asks us to wait."""
    error = explain_error(response.status_code, body[:ERROR_BODY_LIMIT],
                          content_type=response.headers.get("content-type", "").lower())
    error.retry_after = retry_after_seconds(response.headers.get("retry-after"))
    return error


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from now."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if seconds == seconds else None  # NaN is no answer


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{round(seconds)} seconds"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} minutes"
    return f"{round(seconds / 3600)} hours"


def _check_error_chunk(chunk: Any, *, mid_stream: bool) -> None:
    """Raise if a chunk (or a 200 JSON answer) is really an `{"error": …}`."""
    if not (isinstance(chunk, dict) and chunk.get("error")):
        return
    error = explain_error(None, chunk)
    reason = _reason(error.code, error.relay_message)
    if mid_stream:
        lead = "The relay reported an error during the reply"
    else:
        lead = "The relay answered with an error"
    error.message = _sentence(f"{lead}: {reason}" if reason else lead, error.relay_message)
    error.args = (error.message,)
    error.retryable = False  # §3: the reply may have started; never send it twice
    raise error


def _image_urls(images: Iterable[Any] | None) -> list[str]:
    urls = []
    for image in images or []:
        if isinstance(image, dict):
            inner = image.get("image_url")
            url = inner.get("url") if isinstance(inner, dict) else inner
            url = url or image.get("url")
            if isinstance(url, str) and url:
                urls.append(url)
    return urls


def _events_from_delta(choice: dict) -> Iterable[StreamEvent]:
    delta = choice.get("delta") or choice.get("message") or {}
    if not isinstance(delta, dict):
        delta = {}
    # OpenRouter sends the same text as both `reasoning` and `reasoning_content`.
    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        yield StreamEvent("reasoning", text=reasoning)
    content = delta.get("content")
    if isinstance(content, list):  # some relays send content parts
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    if isinstance(content, str) and content:
        yield StreamEvent("content", text=content)
    for url in _image_urls(delta.get("images")):
        yield StreamEvent("image", text=url)
    if choice.get("finish_reason"):
        yield StreamEvent("finish", text=str(choice["finish_reason"]))


def _chunks_of(data: str) -> list[Any]:
    """The JSON chunk(s) in one SSE event's data."""
    try:
        return [json.loads(data)]
    except ValueError:
        # A relay that ends `data:` lines with one newline instead of two makes
        # several chunks arrive as one multi-line event.
        if "\n" in data:
            try:
                return [json.loads(line.removeprefix("data:").strip())
                        for line in data.split("\n")
                        if line.strip() and line.strip() != "[DONE]"]
            except ValueError:
                pass
        raise RelayError(
            "The relay sent a piece of the reply that is not valid JSON.", code="bad_chunk"
        ) from None


async def _events_from_sse(source: EventSource) -> AsyncIterator[StreamEvent]:
    usage: dict | None = None
    events = source.aiter_sse()
    async for sse in events:
        data = sse.data.strip()
        if not data:
            continue
        if data == "[DONE]":
            await _read_to_end(events)
            break
        for chunk in _chunks_of(data):
            _check_error_chunk(chunk, mid_stream=True)
            if not isinstance(chunk, dict):
                continue
            for choice in chunk.get("choices") or []:
                if isinstance(choice, dict) and choice.get("index", 0) == 0:
                    for event in _events_from_delta(choice):
                        yield event
            if isinstance(chunk.get("usage"), dict) and chunk["usage"]:
                usage = chunk["usage"]  # some relays repeat it; the last one wins
    if usage is not None:
        yield StreamEvent("usage", usage=usage)


async def _read_to_end(events: AsyncIterator[Any]) -> None:
    """Read what follows `[DONE]` (normally just the end of the body, already
    here): a response read to its end leaves its connection in the pool for
    the next reply, where one left unread is closed. A relay that keeps the
    stream open after `[DONE]` is not waited for long."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(DRAIN_AFTER_DONE):
            async for _ in events:
                pass


def _events_from_completion(data: Any) -> Iterable[StreamEvent]:
    _check_error_chunk(data, mid_stream=False)
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        raise RelayError("The relay's answer has no choices in it.", code="bad_response")
    for choice in data["choices"]:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            yield from _events_from_delta(choice)
    if isinstance(data.get("usage"), dict) and data["usage"]:
        yield StreamEvent("usage", usage=data["usage"])


def _apply(result: Completion, event: StreamEvent) -> None:
    if event.kind == "content":
        result.content += event.text
    elif event.kind == "reasoning":
        result.reasoning += event.text
    elif event.kind == "finish":
        result.finish_reason = event.text
    elif event.kind == "usage":
        result.usage = event.usage
    elif event.kind == "image":
        result.images.append(event.text)
