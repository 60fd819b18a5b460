"""A relay simulator: a real OpenAI-compatible HTTP server (plain ASGI).

It stands in for a new-api relay in the demo and the tests. It streams at a
configurable token rate, shapes chunks and usage as new-api does, answers
honestly about what it received, records every request, and can be told per
request to fail in each way PROTOCOL.md §5 lists.

Behaviour is chosen per request by the `X-Sim` header or by the part of the
model id after `@` (so a model in the picker can fail on purpose), as a
comma-separated list, e.g. `gemini-2.5-flash@fail=401,message=该令牌额度已用尽`:

    fail=STATUS     answer STATUS with a new-api error body (code=, message=)
    empty           with fail=: an empty body
    html            with fail=: an HTML page from a "proxy"
    web_page        a 200 web page instead of an answer (a base URL that misses the API)
    text            with fail=: a plain-text body (an Envoy-style proxy message)
    flaky=N         fail (fail=, default 503) the first N times for this model, then work
    retry_after=S   with fail= or flaky=: send a `Retry-After: S` header with the failure
    stall           send headers and a role chunk, then nothing
    stall_after=N   stall after N content chunks
    cut_after=N     after N content chunks: usage + [DONE], no finish_reason
    error_after=N   after N content chunks: an {"error": …} chunk
    drop_after=N    after N content chunks: close the connection
    huge=BYTES      one delta carrying a markdown image data URI of about BYTES
    no_usage        one-api style: no usage chunk and no finish_reason
    reasoning       stream reasoning_content before the answer
    rate=N          N tokens a second (0 = as fast as possible)
    tokens=N        the answer's length in tokens (an echo + filler text)
    finish=REASON   finish_reason to send (default stop)
    finish_chunk    send finish_reason on its own chunk with an empty delta
    usage_every     repeat a running usage on every chunk (the last one is final)
    images          send a generated image (of huge= size) in `images[]` (OpenRouter)
    plain_json      answer a streaming request with a plain JSON completion
    linger          keep the connection open after `[DONE]`
    bench           every token is its own send time: ⟦monotonic⟧
    paragraph=N     with bench: a blank line after every N tokens (0: one paragraph)
    newapi          behave like new-api with media: drop `audio_url` and `video_url` objects
                    silently; 500 convert_request_failed for a type Gemini refuses
                    (video/quicktime, ogg, webm, …). Also on for base URLs ending /newapi

An unknown key or a malformed value is answered with HTTP 400, so a typo in a
test cannot silently turn into an ordinary reply.

Run on its own with `python manage.py relaysim` or `python -m conversations.simulator`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import re
import time
import uuid
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import unquote

from . import mediainfo

# Gemini token rates (PROTOCOL.md §2), used to derive usage from what arrived.
TOKENS_PER_IMAGE = 258
TOKENS_PER_AUDIO_SECOND = 32
TOKENS_PER_VIDEO_SECOND = 263
TOKENS_PER_PDF_PAGE = 258

SIMULATED_MODELS = [
    {"id": "gemini-2.5-flash", "inputs": ["text", "image", "audio", "video", "pdf"]},
    {"id": "gemini-2.5-flash-lite", "inputs": ["text", "image", "audio", "video", "pdf"]},
    {"id": "gemini-3.1-flash-lite-preview", "inputs": ["text", "image", "audio", "video", "pdf"]},
    {"id": "gpt-4o-mini", "inputs": ["text", "image"]},
]

FILLER = (
    "Here is a longer answer so that you can watch it stream. **Markdown** works: "
    "lists, `inline code`, and fenced blocks.\n\n"
    "1. The first point is short.\n"
    "2. The second point has *emphasis*.\n"
    "3. The third point links to [the docs](https://example.com/docs).\n\n"
    "```python\ndef greet(name: str) -> str:\n    return f\"Hello, {name}!\"\n```\n\n"
    "> A quotation, to show a block that is not a paragraph.\n\n"
    "That is the end of the simulated answer."
)

_TOKEN = re.compile(r"\s*\S+\s*|\s+")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text) or [text]


def estimate_text_tokens(text: str) -> int:
    # Roughly what Gemini counts: ~4 characters a token, CJK a token each.
    cjk = sum(1 for ch in text if ord(ch) > 0x2E80)
    return max(1, round((len(text) - cjk) / 4) + cjk) if text else 0


@dataclass
class Behaviour:
    fail: int | None = None
    code: str = ""
    message: str = ""
    empty: bool = False
    html: bool = False
    flaky: int = 0
    retry_after: int | None = None
    stall: bool = False
    stall_after: int | None = None
    cut_after: int | None = None
    error_after: int | None = None
    drop_after: int | None = None
    huge: int = 0
    no_usage: bool = False
    reasoning: bool = False
    rate: float | None = None
    tokens: int | None = None
    finish: str = "stop"
    bench: bool = False
    paragraph: int = 0
    text: bool = False
    finish_chunk: bool = False
    usage_every: bool = False
    images: bool = False
    plain_json: bool = False
    linger: bool = False
    web_page: bool = False
    newapi: bool = False

    @classmethod
    def parse(cls, spec: str) -> Behaviour:
        """Parse `key=value,flag,…`; the field's annotation says how to read a value.

        Raises ValueError naming the bad item, so the caller can answer 400.
        """
        behaviour = cls()
        kinds = {f.name: str(f.type) for f in fields(cls)}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            key, has_value, value = item.partition("=")
            key = key.strip().replace("-", "_")
            value = unquote(value.strip())
            kind = kinds.get(key)
            if kind is None:
                raise ValueError(f"unknown simulator behaviour {key!r}")
            try:
                if kind == "bool":
                    parsed: Any = value.lower() not in {"0", "false", "no", "off"}
                    if has_value and value.lower() not in {
                        "0", "1", "true", "false", "yes", "no", "on", "off"
                    }:
                        raise ValueError(value)
                elif kind.startswith("int"):
                    parsed = int(value)
                elif kind.startswith("float"):
                    parsed = float(value)
                else:
                    parsed = value
            except ValueError:
                raise ValueError(f"bad value {value!r} for simulator behaviour {key!r}") from None
            setattr(behaviour, key, parsed)
        return behaviour


# What a proxy in front of a relay says when the relay is down (Envoy's words).
PROXY_TEXT = "upstream connect error or disconnect/reset before headers. reset reason: overflow"

# What a relay's web site answers when the base URL misses the API.
WEB_PAGE = ("<!doctype html><html><head><title>New API</title></head>"
            "<body><div id=\"root\"></div></body></html>")

REASONING = "Let me think about what was sent and how to answer it."


def generated_image(size: int) -> str:
    """A data URI of about `size` characters, like an image model's output."""
    pixel = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * (size * 3 // 4))
    return f"data:image/png;base64,{pixel.decode()}"


# Default error bodies per status, as new-api words them.
DEFAULT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("prompt_blocked", "The prompt was blocked by the upstream safety filter"),
    401: ("", "该令牌额度已用尽"),
    403: ("insufficient_user_quota", "用户额度不足, 剩余额度: ＄0.012300"),
    404: ("model_not_found", "The model does not exist"),
    413: ("request_body_too_large", "request body too large"),
    429: ("rate_limit_exceeded", "当前分组上游负载已饱和，请稍后再试"),
    500: ("do_request_failed", "upstream error: do request failed"),
    502: ("bad_response_status_code", "bad response status code 502"),
    503: ("model_not_found", "当前分组 default 下对于模型 x 无可用渠道"),
}


def new_api_error_body(status: int, code: str = "", message: str = "") -> bytes:
    default_code, default_message = DEFAULT_ERRORS.get(status, ("", f"error {status}"))
    error = {
        "message": f"{message or default_message} (request id: sim{uuid.uuid4().hex[:16]})",
        "type": "new_api_error",
        "param": "",
        "code": code or default_code or None,
    }
    return json.dumps({"error": error}, ensure_ascii=False).encode()


@dataclass
class PartInfo:
    """What the simulator could tell about one content part."""

    type: str
    kind: str = "text"
    mime: str = ""
    bytes: int = 0
    detail: str = ""
    tokens: int = 0

    def describe(self) -> str:
        bits = [f"{self.kind}"]
        if self.mime:
            bits.append(self.mime)
        if self.bytes:
            bits.append(f"{self.bytes:,} bytes")
        if self.detail:
            bits.append(self.detail)
        return f"`{self.type}` part: " + ", ".join(bits)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float
    reply: str = ""
    parts: list[PartInfo] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # sent in `images[]`, not in the text
    usage: dict | None = None  # the final usage it reported


_DATA_URI = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[^,]*)?,", re.S)


def _decode_data_uri(url: str) -> tuple[str, bytes]:
    match = _DATA_URI.match(url)
    if not match:
        return "", b""
    mime = match.group(1) or ""
    payload = url[match.end():]
    try:
        return mime, base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        return mime, b""


def _media_details(kind: str, mime: str, data: bytes) -> tuple[str, int]:
    """A human description and the Gemini token cost of one medium."""
    per_kind = {"image": TOKENS_PER_IMAGE, "audio": TOKENS_PER_AUDIO_SECOND * 5,
                "video": TOKENS_PER_VIDEO_SECOND * 5, "pdf": TOKENS_PER_PDF_PAGE}
    if not data:
        return "", {"image": TOKENS_PER_IMAGE}.get(kind, 0)
    true_mime, details = mediainfo.describe_bytes(data, mime)
    if details is None:
        return "", per_kind.get(kind, 0)
    if details.problem:
        return f"unreadable ({details.problem})", 0
    bits = []
    if details.width and details.height:
        bits.append(f"{details.width}×{details.height}")
    if details.duration is not None:
        bits.append(f"{details.duration:.1f} s")
    if details.pages is not None:
        bits.append(f"{details.pages} page{'s' if details.pages != 1 else ''}")
    label = mediainfo.format_label(true_mime)
    detail = f"{label} {', '.join(bits)}".strip() if bits else label
    seconds = details.duration if details.duration is not None else 5.0
    true_kind = _kind_of(true_mime, kind)
    if true_kind == "audio":
        tokens = max(1, round(seconds * TOKENS_PER_AUDIO_SECOND))
    elif true_kind == "video":
        tokens = max(1, round(seconds * TOKENS_PER_VIDEO_SECOND))
    elif true_kind == "pdf":
        tokens = TOKENS_PER_PDF_PAGE * max(1, details.pages or 1)
    else:
        tokens = TOKENS_PER_IMAGE
    return detail, tokens


def _kind_of(mime: str, fallback: str) -> str:
    if mime == "application/pdf":
        return "pdf"
    major = mime.split("/")[0] if mime else ""
    return major if major in {"image", "audio", "video"} else fallback


Links = dict[str, tuple[str, bytes, int]]  # url → (content type, body, HTTP status)


def describe_part(part: dict, links: Links | None = None) -> PartInfo:
    """Describe one OpenAI content part, whatever dialect spelled it.

    `links`: what the simulator downloaded for http(s) URLs (loopback only).
    """
    part_type = str(part.get("type", "?"))
    if part_type == "text":
        text = str(part.get("text", ""))
        return PartInfo(part_type, "text", tokens=estimate_text_tokens(text))
    if part_type == "input_audio":
        audio = part.get("input_audio") or {}
        try:
            data = base64.b64decode(audio.get("data", ""), validate=False)
        except (binascii.Error, ValueError):
            data = b""
        mime = f"audio/{audio.get('format', '?')}"
        detail, tokens = _media_details("audio", mime, data)
        return PartInfo(part_type, "audio", mime, len(data), detail, tokens)
    if part_type == "file":
        file = part.get("file") or {}
        mime, data = _decode_data_uri(str(file.get("file_data", "")))
        detail, tokens = _media_details("pdf", mime, data)
        name = file.get("filename", "")
        detail = ", ".join(filter(None, [f"named {name}" if name else "", detail]))
        return PartInfo(part_type, _kind_of(mime, "file"), mime, len(data), detail, tokens)
    url = _part_url(part)
    fallback = {"image_url": "image", "audio_url": "audio", "video_url": "video"}.get(
        part_type, "unknown"
    )
    if url.startswith("data:"):
        mime, data = _decode_data_uri(url)
    elif links and url in links and links[url][2] == 200:
        mime, data = links[url][0].split(";")[0].strip(), links[url][1]
    else:
        detail, tokens = _media_details(fallback, "", b"")
        return PartInfo(part_type, fallback, "", 0, f"a link to {url[:80]}" if url else "",
                        tokens)
    kind = _kind_of(mime, fallback)
    detail, tokens = _media_details(kind, mime, data)
    if not url.startswith("data:"):
        detail = ", ".join(filter(None, [detail, "downloaded from its link"]))
    return PartInfo(part_type, kind, mime, len(data), detail, tokens)


def _part_url(part: dict) -> str:
    inner = part.get(str(part.get("type", "")))
    return str(inner.get("url", "")) if isinstance(inner, dict) else str(inner or "")


def _content_parts(body: dict) -> list[dict]:
    return [p for m in body.get("messages") or [] if isinstance(m.get("content"), list)
            for p in m["content"] if isinstance(p, dict)]


_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


async def fetch_loopback_links(body: dict) -> Links:
    """Download the http(s) links in a request, as a relay would; loopback hosts only,
    so the simulator never reaches out of the machine."""
    from urllib.parse import urlsplit

    import httpx

    urls = {_part_url(p) for p in _content_parts(body)}
    wanted = [u for u in urls if u.startswith(("http://", "https://"))
              and (urlsplit(u).hostname or "") in _LOOPBACK]
    links: Links = {}
    if not wanted:
        return links
    async with httpx.AsyncClient(timeout=30) as client:
        for url in wanted:
            try:
                response = await client.get(url)
            except httpx.HTTPError:
                links[url] = ("", b"", 0)
                continue
            links[url] = (response.headers.get("content-type", ""), response.content,
                          response.status_code)
    return links


# new-api's Gemini MIME allowlist (PROTOCOL.md §2): anything else is a 500.
NEWAPI_GEMINI_MIME = {
    "application/pdf", "audio/mpeg", "audio/mp3", "audio/wav", "image/png", "image/jpeg",
    "image/webp", "image/heic", "image/heif", "text/plain", "video/mov", "video/mpeg",
    "video/mp4", "video/mpg", "video/avi", "video/wmv", "video/mpegps", "video/flv",
}


def newapi_refusal(body: dict, links: Links | None = None) -> str:
    """new-api's `convert_request_failed` message for a MIME type Gemini would refuse."""
    for part in newapi_kept_parts(body):
        url = _part_url(part)
        if part.get("type") == "file":
            url = str((part.get("file") or {}).get("file_data", ""))
        if url.startswith("data:"):
            mime = _decode_data_uri(url.split(",", 1)[0] + ",")[0]
        elif links and url in links:
            mime = links[url][0].split(";")[0].strip()
        else:
            continue
        if mime and mime not in NEWAPI_GEMINI_MIME:
            return f"mime type is not supported by Gemini: '{mime}', url: {url[:40]}"
    return ""


def newapi_kept_parts(body: dict) -> list[dict]:
    return [p for p in _content_parts(body) if not _newapi_drops(p)]


def _newapi_drops(part: dict) -> bool:
    """new-api reads `audio_url` not at all and `video_url` only as a bare string."""
    kind = part.get("type")
    return kind == "audio_url" or (kind == "video_url" and isinstance(part.get("video_url"),
                                                                       dict))


def newapi_drop_unknown_parts(body: dict) -> dict:
    """The body as new-api passes it on: the parts it does not know are gone, silently."""
    messages = []
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            message = {**message, "content": [p for p in content if not (
                isinstance(p, dict) and _newapi_drops(p))]}
        messages.append(message)
    return {**body, "messages": messages}


def link_failures(links: Links) -> list[str]:
    return [f"failed to get file from url {url[:60]}: HTTP {status or 'connection failed'}"
            for url, (_, _, status) in links.items() if status != 200]


class Simulator:
    """The simulator's state: what it was asked, and its flaky counters."""

    def __init__(self, *, token_rate: float = 40.0) -> None:
        self.token_rate = token_rate
        self.requests: list[RecordedRequest] = []
        self._flaky_counts: dict[str, int] = {}

    def reset(self) -> None:
        self.requests.clear()
        self._flaky_counts.clear()

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # -- ASGI -------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        method = scope["method"]
        if method == "GET" and path.endswith("/v1/models"):
            await self._json(send, 200, {"object": "list", "data": [
                {"id": m["id"], "object": "model", "owned_by": "simulator",
                 "input_modalities": m["inputs"]} for m in SIMULATED_MODELS]})
            return
        if method == "GET" and path.endswith("/api/pricing"):
            await self._json(send, 200, self.pricing())
            return
        if method == "GET" and path.endswith("/_sim/requests"):
            await self._json(send, 200, [
                {"path": r.path, "body": r.body, "reply": r.reply,
                 "parts": [p.__dict__ for p in r.parts]} for r in self.requests])
            return
        if method == "DELETE" and path.endswith("/_sim/requests"):
            self.reset()
            await self._json(send, 200, {"ok": True})
            return
        if method == "POST" and path.endswith("/chat/completions"):
            await self._chat(scope, receive, send, path)
            return
        await self._json(send, 404, {"error": {"message": f"no route {path}", "type": "sim",
                                               "code": "not_found"}})

    @staticmethod
    def pricing() -> dict:
        return {"success": True, "data": [
            {"model_name": "gemini-2.5-flash", "quota_type": 0, "model_ratio": 0.15,
             "completion_ratio": 8.333, "cache_ratio": 0.25, "enable_groups": ["default"]},
            {"model_name": "gemini-2.5-flash-lite", "quota_type": 0, "model_ratio": 0.05,
             "completion_ratio": 4, "cache_ratio": 0.25, "enable_groups": ["default"]},
            {"model_name": "gemini-3.1-flash-lite-preview", "quota_type": 0,
             "model_ratio": 0.125, "completion_ratio": 6, "enable_groups": ["default"]},
            {"model_name": "gpt-4o-mini", "quota_type": 0, "model_ratio": 0.075,
             "completion_ratio": 4, "cache_ratio": 0.5, "enable_groups": ["default"]},
        ], "group_ratio": {"default": 1}}

    @staticmethod
    async def _json(send, status: int, payload: Any) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def _raw(send, status: int, body: bytes, content_type: bytes,
                   extra_headers: list[tuple[bytes, bytes]] = ()) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type),
                                (b"content-length", str(len(body)).encode()),
                                *extra_headers]})
        await send({"type": "http.response.body", "body": body})

    async def _read_body(self, receive) -> bytes:
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ConnectionError("client went away")
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _chat(self, scope, receive, send, path: str) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        try:
            raw = await self._read_body(receive)
        except ConnectionError:
            return
        try:
            body = json.loads(raw)
        except ValueError:
            await self._raw(send, 400, new_api_error_body(400, "invalid_request",
                                                          "invalid JSON body"),
                            b"application/json")
            return
        model = str(body.get("model", ""))
        base_model, _, model_spec = model.partition("@")
        spec = ",".join(filter(None, [model_spec, headers.get("x-sim", "")]))
        record = RecordedRequest("POST", path, headers, body, time.monotonic())
        self.requests.append(record)
        try:
            behaviour = Behaviour.parse(spec)
        except ValueError as exc:
            await self._raw(send, 400, new_api_error_body(400, "invalid_request", str(exc)),
                            b"application/json")
            return

        if not headers.get("authorization", "").removeprefix("Bearer ").strip():
            await self._raw(send, 401, new_api_error_body(401, "", "无效的令牌"),
                            b"application/json")
            return
        if behaviour.flaky:
            seen = self._flaky_counts.get(model, 0)
            self._flaky_counts[model] = seen + 1
            if seen < behaviour.flaky:
                behaviour.fail = behaviour.fail or 503
            else:
                behaviour.fail = None
        if behaviour.fail:
            extra = ([(b"retry-after", str(behaviour.retry_after).encode())]
                     if behaviour.retry_after is not None else [])
            if behaviour.empty:
                await self._raw(send, behaviour.fail, b"", b"text/plain", extra)
            elif behaviour.html:
                page = (f"<html><head><title>{behaviour.fail} Bad Gateway</title></head>"
                        "<body><center><h1>Bad Gateway</h1></center><hr>"
                        "<center>nginx</center></body></html>").encode()
                await self._raw(send, behaviour.fail, page, b"text/html", extra)
            elif behaviour.text:
                await self._raw(send, behaviour.fail, PROXY_TEXT.encode(),
                                b"text/plain; charset=utf-8", extra)
            else:
                await self._raw(send, behaviour.fail,
                                new_api_error_body(behaviour.fail, behaviour.code,
                                                   behaviour.message),
                                b"application/json", extra)
            return
        if behaviour.web_page:
            await self._raw(send, 200, WEB_PAGE.encode(), b"text/html; charset=utf-8")
            return

        links = await fetch_loopback_links(body)
        failures = link_failures(links)
        if failures:
            await self._raw(send, 400, new_api_error_body(400, "invalid_request", failures[0]),
                            b"application/json")
            return
        if behaviour.newapi or "/newapi/" in path:
            refusal = newapi_refusal(body, links)
            if refusal:
                await self._raw(send, 500, new_api_error_body(500, "convert_request_failed",
                                                              refusal), b"application/json")
                return
            body = newapi_drop_unknown_parts(body)
        parts = self._parts_of(body, links)
        record.parts = parts
        reply = self._reply_text(body, parts, behaviour)
        record.reply = reply
        if behaviour.images:
            record.images = [generated_image(behaviour.huge or 96)]
        usage = self._usage(body, parts, reply, behaviour, links)
        record.usage = usage
        if body.get("stream") and not behaviour.plain_json:
            await self._stream(send, receive, base_model, reply, usage, behaviour, record)
        else:
            message: dict[str, Any] = {"role": "assistant", "content": reply}
            if behaviour.reasoning:
                message["reasoning_content"] = REASONING
            if record.images:
                message["images"] = [{"type": "image_url", "image_url": {"url": url}}
                                     for url in record.images]
            await self._json(send, 200, {
                "id": f"chatcmpl-sim{uuid.uuid4().hex[:20]}", "model": base_model,
                "object": "chat.completion", "created": int(time.time()),
                "choices": [{"index": 0, "message": message,
                             "finish_reason": behaviour.finish}],
                "usage": usage,
            })

    @staticmethod
    def _parts_of(body: dict, links: Links | None = None) -> list[PartInfo]:
        messages = body.get("messages") or []
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
        if not last_user:
            return []
        content = last_user.get("content")
        if isinstance(content, str):
            return [PartInfo("text", "text", tokens=estimate_text_tokens(content))]
        return [describe_part(p, links) for p in content or [] if isinstance(p, dict)]

    def _reply_text(self, body: dict, parts: list[PartInfo], behaviour: Behaviour) -> str:
        if behaviour.bench:
            return ""  # bench tokens are made as they are sent
        messages = body.get("messages") or []
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        content = last_user.get("content")
        if isinstance(content, list):
            text = " ".join(str(p.get("text", "")) for p in content
                            if isinstance(p, dict) and p.get("type") == "text")
        else:
            text = str(content or "")
        lines = [f"You said: {text.strip()}" if text.strip() else "You sent no text."]
        media = [p for p in parts if p.kind != "text"]
        if media:
            lines.append("")
            lines.append(f"I received {len(media)} attachment(s):")
            lines.extend(f"- {p.describe()}" for p in media)
        reply = "\n".join(lines) + "\n\n" + FILLER
        if behaviour.tokens is not None:
            tokens = tokenize(reply)
            while len(tokens) < behaviour.tokens:
                tokens += tokenize(" " + FILLER)
            reply = "".join(tokens[: behaviour.tokens])
        if behaviour.huge and not behaviour.images:
            reply += f"\n\n![generated image]({generated_image(behaviour.huge)})"
        return reply

    @staticmethod
    def _usage(body: dict, parts: list[PartInfo], reply: str, behaviour: Behaviour,
               links: Links | None = None) -> dict:
        # The whole prompt counts, earlier turns' files included, as a relay bills it.
        parts = list(parts)
        for message in (body.get("messages") or [])[:-1]:
            content = message.get("content")
            if isinstance(content, str):
                parts.append(PartInfo("text", "text", tokens=estimate_text_tokens(content)))
            elif isinstance(content, list):
                parts.extend(describe_part(p, links) for p in content if isinstance(p, dict))
        text_tokens = sum(p.tokens for p in parts if p.kind == "text")
        audio_tokens = sum(p.tokens for p in parts if p.kind == "audio")
        media_tokens = sum(p.tokens for p in parts if p.kind not in {"text", "audio"})
        prompt = text_tokens + audio_tokens + media_tokens
        completion = len(tokenize(reply)) if reply else 0
        reasoning = 12 if behaviour.reasoning else 0
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion + reasoning,
            "total_tokens": prompt + completion + reasoning,
            "prompt_tokens_details": {"cached_tokens": 0, "text_tokens": text_tokens,
                                      "audio_tokens": audio_tokens, "image_tokens": 0},
            "completion_tokens_details": {"text_tokens": 0, "audio_tokens": 0,
                                          "reasoning_tokens": reasoning},
            "input_tokens": 0, "output_tokens": 0, "input_tokens_details": None,
            "claude_cache_creation_5_m_tokens": 0, "claude_cache_creation_1_h_tokens": 0,
        }

    async def _stream(self, send, receive, model: str, reply: str, usage: dict,
                      behaviour: Behaviour, record: RecordedRequest) -> None:
        chunk_id = f"chatcmpl-sim{uuid.uuid4().hex[:20]}"
        created = int(time.time())
        rate = self.token_rate if behaviour.rate is None else behaviour.rate
        interval = 1.0 / rate if rate > 0 else 0.0
        disconnected = asyncio.Event()

        async def watch_disconnect() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    return

        watcher = asyncio.create_task(watch_disconnect())
        dropped = False
        if behaviour.no_usage:
            record.usage = None

        def running_usage(completion: int) -> dict:
            # Relays that repeat usage count what was sent so far; the last one is final.
            return {**usage, "completion_tokens": completion,
                    "total_tokens": usage["prompt_tokens"] + completion}

        def chunk(delta: dict | None, finish: str | None = None, **extra) -> bytes:
            payload = {"id": chunk_id, "object": "chat.completion.chunk", "created": created,
                       "model": model, "system_fingerprint": None,
                       "choices": [] if delta is None else [
                           {"index": 0, "delta": delta, "logprobs": None,
                            "finish_reason": finish}],
                       "usage": None, **extra}
            return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"

        async def emit(data: bytes) -> bool:
            if disconnected.is_set():
                return False
            await send({"type": "http.response.body", "body": data, "more_body": True})
            return True

        try:
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]})
            await emit(b": PING\n\n")
            await emit(chunk({"role": "assistant", "content": ""}))
            if behaviour.stall:
                await disconnected.wait()
                return
            if behaviour.reasoning:
                for token in tokenize(REASONING):
                    if not await emit(chunk({"reasoning_content": token})):
                        return
                    if interval:
                        await asyncio.sleep(interval)
            tokens = self._bench_tokens(behaviour) if behaviour.bench else tokenize(reply)
            sent: list[str] = []
            for index, token in enumerate(tokens):
                if index and interval:
                    await asyncio.sleep(interval)
                if behaviour.bench:
                    ends_paragraph = behaviour.paragraph and (index + 1) % behaviour.paragraph == 0
                    token = f"⟦{time.monotonic():.6f}⟧" + ("\n\n" if ends_paragraph else " ")
                if index == behaviour.stall_after:
                    await disconnected.wait()
                    return
                if index == behaviour.drop_after:
                    dropped = True  # returning unfinished makes the server cut the connection
                    return
                if index == behaviour.cut_after:
                    await emit(chunk(None, usage=usage))
                    await emit(b"data: [DONE]\n\n")
                    return
                if index == behaviour.error_after:
                    error = json.loads(new_api_error_body(
                        500, behaviour.code or "bad_response_status_code",
                        behaviour.message or "upstream stream error"))
                    await emit(b"data: " + json.dumps(error).encode() + b"\n\n")
                    await emit(b"data: [DONE]\n\n")
                    return
                sent.append(token)
                is_last = (index == len(tokens) - 1 and not behaviour.no_usage
                           and not behaviour.finish_chunk and not record.images)
                extra = {"usage": running_usage(len(sent))} if behaviour.usage_every else {}
                if not await emit(chunk({"content": token},
                                        behaviour.finish if is_last else None, **extra)):
                    return
                if index and index % 50 == 0:
                    await emit(b": PING\n\n")
            if behaviour.bench:
                record.reply = "".join(sent)
                completion = len(sent)
                usage = {**usage, "completion_tokens": completion,
                         "total_tokens": usage["prompt_tokens"] + completion}
                record.usage = usage
            if record.images:  # OpenRouter: the image rides on a delta of its own
                await emit(chunk({"content": "", "images": [
                    {"type": "image_url", "image_url": {"url": url}} for url in record.images
                ]}))
            if not tokens or (not behaviour.no_usage
                              and (behaviour.finish_chunk or record.images)):
                await emit(chunk({}, behaviour.finish))
            if not behaviour.no_usage:
                await emit(chunk(None, usage=usage))
            await emit(b"data: [DONE]\n\n")
            if behaviour.linger:
                await disconnected.wait()
        finally:
            watcher.cancel()
            if not disconnected.is_set() and not dropped:
                with contextlib.suppress(Exception):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    def _bench_tokens(behaviour: Behaviour) -> list[str]:
        return [""] * (behaviour.tokens or 100)


def main() -> None:  # pragma: no cover - a convenience entry point
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description="Run the relay simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--rate", type=float, default=40.0, help="tokens per second")
    args = parser.parse_args()
    uvicorn.run(Simulator(token_rate=args.rate), host=args.host, port=args.port,
                log_level="warning")


if __name__ == "__main__":  # pragma: no cover
    main()
