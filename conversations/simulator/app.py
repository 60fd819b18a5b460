"""The simulator as an ASGI app: /v1/chat/completions, /v1/models, /api/pricing.

See the package docstring for the behaviours a request can ask for.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import time
import uuid
from typing import Any

from conversations.simulator import billing
from conversations.simulator.behaviour import (
    FILLER,
    PROXY_TEXT,
    REASONING,
    SIMULATED_MODELS,
    SUBSTITUTE,
    WEB_PAGE,
    Behaviour,
    generated_image,
    new_api_error_body,
    tokenize,
)
from conversations.simulator.pictures import OUTPUT_TOKENS, data_uri, make_png, picture_size
from conversations.simulator.received import (
    Links,
    PartInfo,
    RecordedRequest,
    describe_part,
    fetch_loopback_links,
    link_failures,
    newapi_drop_unknown_parts,
    newapi_refusal,
)
from conversations.tokens import estimate_text_tokens


class Simulator:
    """The simulator's state: what it was asked, and its flaky counters.

    `api_key`: when set, every request must carry it as its Bearer key (the app's
    own mount, where only the simulated relay holds it); otherwise any key will do.
    `record`: keep what each request carried in `requests` (tests read it).
    `request_log`: also serve that record at /_sim/requests (a standalone
    simulator for benchmarks; never the mounted one, which sees users' prompts).
    """

    def __init__(self, *, token_rate: float = 40.0, api_key: str | None = None,
                 record: bool = True, request_log: bool = False) -> None:
        self.token_rate = token_rate
        self.api_key = api_key
        self.record = record
        self.request_log = request_log and record
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
        if self.api_key is not None and not self._holds_key(scope):
            await self._raw(send, 401, new_api_error_body(401, "", "无效的令牌"),
                            b"application/json")
            return
        if method == "GET" and path.endswith("/v1/models"):
            await self._json(send, 200, {"object": "list", "data": [
                {"id": m["id"], "object": "model", "owned_by": "simulator",
                 "input_modalities": m["inputs"]} for m in SIMULATED_MODELS]})
            return
        if method == "GET" and path.endswith("/api/pricing"):
            await self._json(send, 200, self.pricing())
            return
        if method == "GET" and "/v1/dashboard/billing/" in path and "/nobilling/" not in path:
            if path.endswith("/subscription"):
                await self._json(send, 200, billing.subscription())
                return
            if path.endswith("/usage"):
                await self._json(send, 200, billing.usage(requests=self.chat_requests,
                                                          pricing=self.pricing()))
                return
        if self.request_log and method == "GET" and path.endswith("/_sim/requests"):
            await self._json(send, 200, [
                {"path": r.path, "body": r.body, "reply": r.reply,
                 "parts": [p.__dict__ for p in r.parts]} for r in self.requests])
            return
        if self.request_log and method == "DELETE" and path.endswith("/_sim/requests"):
            self.reset()
            await self._json(send, 200, {"ok": True})
            return
        if method == "POST" and path.endswith("/chat/completions"):
            await self._chat(scope, receive, send, path)
            return
        await self._json(send, 404, {"error": {"message": f"no route {path}", "type": "sim",
                                               "code": "not_found"}})

    def _holds_key(self, scope) -> bool:
        authorization = next((v for k, v in scope.get("headers", [])
                              if k.lower() == b"authorization"), b"")
        given = authorization.decode("latin-1").removeprefix("Bearer ").strip()
        return bool(given) and hmac.compare_digest(given.encode(), self.api_key.encode())

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
            # $0.30 in, $30 per million image-output tokens (new-api has one output ratio).
            {"model_name": "gemini-2.5-flash-image", "quota_type": 0, "model_ratio": 0.15,
             "completion_ratio": 100, "enable_groups": ["default"]},
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
        if self.record:
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
        limit = body.get("max_tokens")
        if isinstance(limit, int) and 0 < limit < len(tokenize(reply)):
            # As a model does: cut at max_tokens, and say so.
            reply, behaviour.finish = "".join(tokenize(reply)[:limit]), "length"
        picture = None
        if behaviour.picture or "-image" in base_model:
            picture = self._picture(body, behaviour)
            if not behaviour.images:
                reply += f"\n\n![image]({picture})\n\nHere is the picture."
        if behaviour.images:
            record.images = [picture or generated_image(behaviour.huge or 96)]
        record.reply = reply
        usage = self._usage(body, parts, reply, behaviour, links)
        if picture is not None:
            tokens = OUTPUT_TOKENS[self._image_config(body, behaviour)[1]]
            usage["completion_tokens"] += tokens
            usage["total_tokens"] += tokens
            usage["completion_tokens_details"]["image_tokens"] = tokens
        record.usage = usage
        # A relay that answers with another model says so only in `model`.
        base_model = behaviour.substitute or (
            SUBSTITUTE if "/substitutes/" in path else base_model)
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
        if behaviour.huge and not behaviour.images and not (
                behaviour.picture or "-image" in str(body.get("model", ""))):
            reply += f"\n\n![generated image]({generated_image(behaviour.huge)})"
        return reply

    @staticmethod
    def _image_config(body: dict, behaviour: Behaviour) -> tuple[str, str]:
        """(aspect ratio, size) asked for in extra_body.google.image_config; 1:1 1K when
        told to ignore it, as new-api's native Gemini route has been seen to."""
        config = ((body.get("extra_body") or {}).get("google") or {}).get("image_config") or {}
        if behaviour.ignore_image_config or not isinstance(config, dict):
            return "1:1", "1K"
        size = config.get("image_size", "1K")
        return str(config.get("aspect_ratio", "1:1")), size if size in OUTPUT_TOKENS else "1K"

    def _picture(self, body: dict, behaviour: Behaviour) -> str:
        ratio, size = self._image_config(body, behaviour)
        width, height = picture_size(ratio, size)
        return data_uri(make_png(width, height, at_least=behaviour.huge * 3 // 4))

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
            if behaviour.split:
                tokens = [piece for token in tokens for piece in _split_data_uri(
                    token, behaviour.split)]
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


def _split_data_uri(token: str, pieces: int) -> list[str]:
    """A token carrying a data URI cut into `pieces` deltas (some relays do), the
    cut falling inside the `data:` prefix too; other tokens as they are."""
    start = token.find("data:image/")
    if start < 0 or pieces < 2:
        return [token]
    cuts = [start + 7] + [start + 30 + (len(token) - start - 30) * i // (pieces - 1)
                          for i in range(1, pieces - 1)]
    edges = [0, *cuts, len(token)]
    return [token[a:b] for a, b in itertools.pairwise(edges) if b > a]
