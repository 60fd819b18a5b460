"""A relay's answer → StreamEvents: SSE chunks as new-api, one-api and
OpenRouter shape them, or a whole JSON completion.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from httpx_sse import EventSource

from conversations.relays.errors import RelayError, check_error_chunk

DRAIN_AFTER_DONE = 1.0  # seconds


@dataclass
class StreamEvent:
    """One thing a streaming relay told us."""

    kind: Literal["content", "reasoning", "finish", "usage", "image", "model"]
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
    model: str = ""  # what the relay says answered (PROTOCOL §7b), once


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


def _answering_model(chunk: dict) -> StreamEvent | None:
    model = chunk.get("model")
    return StreamEvent("model", text=model) if isinstance(model, str) and model else None


async def events_from_sse(source: EventSource) -> AsyncIterator[StreamEvent]:
    usage: dict | None = None
    # Told once the stream is over, like usage: before the first token an
    # event would count as the answer having begun.
    answering: StreamEvent | None = None
    events = source.aiter_sse()
    async for sse in events:
        data = sse.data.strip()
        if not data:
            continue
        if data == "[DONE]":
            await _read_to_end(events)
            break
        for chunk in _chunks_of(data):
            check_error_chunk(chunk, mid_stream=True)
            if not isinstance(chunk, dict):
                continue
            if answering is None:
                answering = _answering_model(chunk)
            for choice in chunk.get("choices") or []:
                if isinstance(choice, dict) and choice.get("index", 0) == 0:
                    for event in _events_from_delta(choice):
                        yield event
            if isinstance(chunk.get("usage"), dict) and chunk["usage"]:
                usage = chunk["usage"]  # some relays repeat it; the last one wins
    if answering is not None:
        yield answering
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


def events_from_completion(data: Any) -> Iterable[StreamEvent]:
    check_error_chunk(data, mid_stream=False)
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        raise RelayError("The relay's answer has no choices in it.", code="bad_response")
    if answering := _answering_model(data):
        yield answering
    for choice in data["choices"]:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            yield from _events_from_delta(choice)
    if isinstance(data.get("usage"), dict) and data["usage"]:
        yield StreamEvent("usage", usage=data["usage"])


def apply_event(result: Completion, event: StreamEvent) -> None:
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
    elif event.kind == "model":
        result.model = event.text
