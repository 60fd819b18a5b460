"""The only module that speaks HTTP to relays.

Everything a relay can do wrong (PROTOCOL.md §3 and §5) ends up as one
exception, `RelayError`, whose `message` is written for the person using the
app, not for a log file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from httpx_sse import EventSource, SSEError

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = {429, 500, 502, 503, 504}
NON_RETRYABLE_CODES = {"convert_request_failed"}
ERROR_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True)
class RelayTarget:
    """What the client needs to know about a relay; built from the Relay model."""

    base_url: str
    api_key: str
    name: str = "relay"

    @property
    def api_root(self) -> str:
        root = self.base_url.rstrip("/")
        return root if root.endswith("/v1") else f"{root}/v1"

    @property
    def site_root(self) -> str:
        root = self.base_url.rstrip("/")
        return root.removesuffix("/v1")

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
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.relay_message = relay_message
        self.retryable = retryable

    def __str__(self) -> str:
        return self.message


# Messages new-api and one-api send, with what they mean for the user.
KNOWN_RELAY_MESSAGES: list[tuple[str, str]] = [
    ("该令牌额度已用尽", "your key has run out of quota"),
    ("令牌额度已用尽", "your key has run out of quota"),
    ("额度已用尽", "your key has run out of quota"),
    ("用户额度不足", "your relay account does not have enough balance"),
    ("无效的令牌", "the API key is not valid"),
    ("令牌已过期", "the API key has expired"),
    ("该令牌已过期", "the API key has expired"),
    ("令牌已被禁用", "the API key has been disabled"),
    ("该令牌状态不可用", "the API key has been disabled"),
    ("无可用渠道", "no channel of the relay can serve this model right now"),
    ("当前分组", "your key's group is not allowed to use this model"),
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

CODE_EXPLANATIONS: dict[str, str] = {
    "insufficient_user_quota": "your relay account does not have enough quota for this request. "
    "new-api pre-charges prompt + max tokens, so lowering Max tokens may help",
    "prompt_blocked": "the model's safety filter blocked the prompt",
    "model_price_error": "the relay has no price set for this model, so it refuses to run it",
    "model_not_found": "the relay has no channel that serves this model",
    "convert_request_failed": "the relay could not convert the request for the upstream "
    "model, usually because of a media format it does not accept",
    "do_request_failed": "the relay could not reach the upstream model",
    "bad_response_status_code": "the upstream model answered with an error",
    "empty_response": "the upstream model returned an empty answer",
    "rate_limit_exceeded": "too many requests; wait a moment and retry",
}

_REQUEST_ID = re.compile(r"\s*\(request id: [^)]*\)\s*$")


def _strip_request_id(message: str) -> str:
    return _REQUEST_ID.sub("", message).strip()


def explain_error(
    status: int | None, body: bytes | str | dict | None, *, content_type: str = ""
) -> RelayError:
    """Turn a relay's error answer into a RelayError a person can read."""
    code = ""
    relay_message = ""
    payload: Any = body
    if isinstance(body, bytes):
        payload = body.decode("utf-8", errors="replace")
    if isinstance(payload, str):
        text = payload.strip()
        if text.startswith(("{", "[")):
            try:
                payload = json.loads(text)
            except ValueError:
                payload = text
        else:
            payload = text
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict):
            code = str(error.get("code") or error.get("type") or "")
            relay_message = str(error.get("message") or "")
        elif isinstance(error, str):
            relay_message = error
        if not relay_message and isinstance(payload.get("message"), str):
            relay_message = payload["message"]
    elif isinstance(payload, str) and payload:
        looks_html = "html" in content_type or payload.lstrip()[:15].lower().startswith(
            ("<!doctype", "<html")
        )
        if looks_html:
            title = re.search(r"<title[^>]*>(.*?)</title>", payload, re.I | re.S)
            relay_message = f"an HTML page ({title.group(1).strip()})" if title else ""
            code = "html_response"
        else:
            relay_message = payload[:500]

    relay_message = _strip_request_id(relay_message)
    if code == "html_response":
        base = (
            f"The relay answered HTTP {status} with a web page instead of JSON, usually a "
            "proxy or gateway in front of it failing"
        )
        if relay_message:
            base += f": {relay_message}"
        relay_message = ""
    elif status is not None:
        base = STATUS_EXPLANATIONS.get(status, f"The relay answered HTTP {status}")
    else:
        base = "The relay reported an error"

    reason = CODE_EXPLANATIONS.get(code, "")
    for needle, meaning in KNOWN_RELAY_MESSAGES:
        if needle in relay_message:
            reason = meaning
            break

    parts = [base]
    if reason:
        parts = [f"The relay says {reason}"]
    if relay_message:
        parts.append(f"(relay message: “{relay_message}”)")
    elif not payload:
        parts.append("(with an empty answer)")
    message = " ".join(parts).rstrip(".") + "."

    retryable = status in RETRYABLE_STATUSES and code not in NON_RETRYABLE_CODES
    return RelayError(
        message, status=status, code=code, relay_message=relay_message, retryable=retryable
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
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=_timeout(connect_timeout, read_timeout),
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

    # -- streaming ---------------------------------------------------------

    async def stream_chat(
        self, body: dict[str, Any], *, extra_headers: dict[str, str] | None = None
    ) -> AsyncIterator[StreamEvent]:
        """Yield events of one streamed reply; raise RelayError on any failure.

        Retries (429/5xx, connection errors) happen only before the first
        event reaches the caller, so a retry can never duplicate text.
        """
        body = {**body, "stream": True}
        body.setdefault("stream_options", {"include_usage": True})
        attempt = 0
        while True:
            yielded = False
            try:
                async for event in self._stream_once(body, extra_headers):
                    yielded = True
                    yield event
                return
            except RelayError as exc:
                if yielded or not exc.retryable or attempt >= self.max_retries:
                    raise
                attempt += 1
                delay = self.backoff * (2 ** (attempt - 1))
                logger.info("relay %s: %s; retry %d in %.1fs", self.target.name, exc, attempt,
                            delay)
                await asyncio.sleep(delay)

    async def _stream_once(
        self, body: dict[str, Any], extra_headers: dict[str, str] | None
    ) -> AsyncIterator[StreamEvent]:
        headers = {**self.target.headers(), "Accept": "text/event-stream"}
        if extra_headers:
            headers.update(extra_headers)
        url = f"{self.target.api_root}/chat/completions"
        content = body_bytes(body)
        try:
            async with self._client.stream(
                "POST", url, content=content, headers=headers
            ) as response:
                if response.status_code != 200:
                    raise await _error_from_response(response)
                content_type = response.headers.get("content-type", "")
                if "json" in content_type:
                    raw = await response.aread()
                    for event in _events_from_completion(_parse_json(raw)):
                        yield event
                    return
                async for event in _events_from_sse(EventSource(response)):
                    yield event
        except RelayError:
            raise
        except httpx.ConnectTimeout as exc:
            raise RelayError(
                f"Could not connect to the relay at {self.target.base_url}: it did not answer "
                "in time.",
                retryable=True,
            ) from exc
        except httpx.ConnectError as exc:
            raise RelayError(
                f"Could not connect to the relay at {self.target.base_url} "
                f"({_short(exc)}). Check the address and that the relay is up.",
                retryable=True,
            ) from exc
        except httpx.ReadTimeout as exc:
            raise RelayError(
                f"The relay stopped sending data for {self.read_timeout:g} seconds, so the "
                "reply was abandoned.",
                code="idle_timeout",
                retryable=True,
            ) from exc
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise RelayError(
                "The connection to the relay broke off in the middle of the reply.",
                code="connection_lost",
                retryable=True,
            ) from exc
        except SSEError as exc:
            raise RelayError(f"The relay sent an unreadable stream ({exc}).") from exc
        except httpx.HTTPError as exc:
            raise RelayError(
                f"Talking to the relay failed ({type(exc).__name__}: {_short(exc)}).",
                retryable=True,
            ) from exc

    async def stream_collect(self, body: dict[str, Any]) -> Completion:
        """Stream a reply and gather it; handy for tests and scripts."""
        result = Completion()
        async for event in self.stream_chat(body):
            _apply(result, event)
        return result

    # -- non-streaming -----------------------------------------------------

    async def complete_chat(self, body: dict[str, Any]) -> Completion:
        body = {**body, "stream": False}
        body.pop("stream_options", None)
        data = await self._request_json("POST", "/chat/completions", json_body=body)
        result = Completion()
        for event in _events_from_completion(data):
            _apply(result, event)
        return result

    async def list_models(self) -> list[str]:
        data = await self._request_json("GET", "/models")
        items = data.get("data", []) if isinstance(data, dict) else data
        return [str(item["id"]) for item in items if isinstance(item, dict) and "id" in item]

    async def fetch_pricing(self) -> Any:
        """new-api's GET /api/pricing (ratios per model)."""
        return await self._request_json("GET", "/api/pricing", site=True)

    async def _request_json(
        self, method: str, path: str, *, json_body: dict | None = None, site: bool = False
    ) -> Any:
        url = f"{self.target.site_root if site else self.target.api_root}{path}"
        attempt = 0
        while True:
            try:
                response = await self._client.request(
                    method,
                    url,
                    content=body_bytes(json_body) if json_body is not None else None,
                    headers=self.target.headers(),
                )
                if response.status_code != 200:
                    raise explain_error(
                        response.status_code,
                        response.content[:ERROR_BODY_LIMIT],
                        content_type=response.headers.get("content-type", ""),
                    )
                return _parse_json(response.content)
            except RelayError as exc:
                if not exc.retryable or attempt >= self.max_retries:
                    raise
            except httpx.HTTPError as exc:
                if attempt >= self.max_retries:
                    raise RelayError(
                        f"Could not reach the relay at {self.target.base_url} "
                        f"({type(exc).__name__}: {_short(exc)}).",
                        retryable=True,
                    ) from exc
            attempt += 1
            await asyncio.sleep(self.backoff * (2 ** (attempt - 1)))


def body_bytes(body: dict[str, Any] | None) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


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
    return explain_error(
        response.status_code,
        b"".join(chunks)[:ERROR_BODY_LIMIT],
        content_type=response.headers.get("content-type", ""),
    )


def _check_error_chunk(chunk: Any) -> None:
    if isinstance(chunk, dict) and chunk.get("error"):
        error = explain_error(None, chunk)
        error.message = (
            "The relay reported an error in the middle of the reply: "
            + error.message[0].lower()
            + error.message[1:]
        )
        error.retryable = False
        raise error


def _image_urls(images: Iterable[Any] | None) -> list[str]:
    urls = []
    for image in images or []:
        if isinstance(image, dict):
            url = (image.get("image_url") or {}).get("url") if image.get("image_url") else None
            url = url or image.get("url")
            if url:
                urls.append(url)
    return urls


def _events_from_delta(choice: dict) -> Iterable[StreamEvent]:
    delta = choice.get("delta") or choice.get("message") or {}
    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
    if reasoning:
        yield StreamEvent("reasoning", text=reasoning)
    content = delta.get("content")
    if isinstance(content, list):  # some relays send content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if content:
        yield StreamEvent("content", text=content)
    for url in _image_urls(delta.get("images")):
        yield StreamEvent("image", text=url)
    if choice.get("finish_reason"):
        yield StreamEvent("finish", text=str(choice["finish_reason"]))


async def _events_from_sse(source: EventSource) -> AsyncIterator[StreamEvent]:
    usage: dict | None = None
    async for sse in source.aiter_sse():
        data = sse.data
        if not data:
            continue
        if data.strip() == "[DONE]":
            break
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise RelayError(
                "The relay sent a piece of the reply that is not valid JSON.", code="bad_chunk"
            ) from exc
        _check_error_chunk(chunk)
        if not isinstance(chunk, dict):
            continue
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                for event in _events_from_delta(choice):
                    yield event
        if chunk.get("usage"):
            usage = chunk["usage"]  # some relays repeat it; the last one wins
    if usage is not None:
        yield StreamEvent("usage", usage=usage)


def _events_from_completion(data: Any) -> Iterable[StreamEvent]:
    _check_error_chunk(data)
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        raise RelayError("The relay's answer has no choices in it.", code="bad_response")
    for choice in data["choices"]:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            yield from _events_from_delta(choice)
    if data.get("usage"):
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
