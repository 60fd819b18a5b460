"""A relay's answer → StreamEvents: SSE chunks as new-api, one-api and
OpenRouter shape them, or a whole JSON completion.

The SSE lines are read from the raw bytes here rather than by httpx-sse: a
picture's base64 is cut out of the bytes as they arrive (relays/pictures.py),
so a line of several megabytes is never held, decoded or parsed whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from django.utils.translation import gettext

from conversations.relays.errors import RelayError, check_error_chunk
from conversations.relays.pictures import (
    ByteCutter,
    Picture,
    Pictures,
    TextCutter,
    picture_in_url,
    reference_tokens,
)

DRAIN_AFTER_DONE = 1.0  # seconds


@dataclass
class StreamEvent:
    """One thing a streaming relay told us."""

    kind: Literal["content", "reasoning", "finish", "usage", "image", "model"]
    text: str = ""
    usage: dict | None = None
    picture: Picture | None = None  # kind "image": decoded, in a temporary file


@dataclass
class Completion:
    """A whole answer, streamed or not."""

    content: str = ""
    reasoning: str = ""
    finish_reason: str = ""
    usage: dict | None = None
    images: list[Picture] = field(default_factory=list)
    model: str = ""  # what the relay says answered (PROTOCOL §7b), once


class _Reader:
    """One answer's pictures and the cutter that turns its content into references."""

    def __init__(self, pictures: Pictures | None = None) -> None:
        self.pictures = pictures or Pictures()
        self.text = TextCutter(self.pictures)

    def events(self, choice: dict) -> Iterable[StreamEvent]:
        for event in _events_from_delta(choice):
            if event.kind == "content":
                text = self.text.feed(event.text)
                if text:
                    yield StreamEvent("content", text=text)
                yield from self._finished()
            elif event.kind == "image":
                picture = picture_in_url(event.text, self.pictures)
                if picture is not None:
                    # The OpenRouter shape has no place in the text: give it one.
                    yield StreamEvent("content", text=f"\n\n![image](picture:{picture.number})\n\n")
                    yield from self._finished()
            elif event.kind == "reasoning":
                # A picture in the thinking is stored too; its text keeps the reference.
                yield StreamEvent("reasoning", text=reference_tokens(event.text))
            else:
                yield event

    def end(self) -> Iterable[StreamEvent]:
        text = self.text.flush()
        if text:
            yield StreamEvent("content", text=text)
        for picture in self.pictures.close_all():
            yield StreamEvent("image", picture=picture)

    def _finished(self) -> Iterable[StreamEvent]:
        for picture in self.pictures.take_finished():
            yield StreamEvent("image", picture=picture)


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
            gettext("The relay sent a piece of the reply that is not valid JSON."),
            code="bad_chunk",
        ) from None


def _answering_model(chunk: dict) -> StreamEvent | None:
    model = chunk.get("model")
    return StreamEvent("model", text=model) if isinstance(model, str) and model else None


async def sse_data(chunks: AsyncIterator[bytes], cutter: ByteCutter) -> AsyncIterator[str]:
    """The `data` of each server-sent event, from the raw bytes with pictures cut out.

    Lines end with LF, CRLF or CR; comment lines (`: PING`) and fields other
    than `data` are skipped; a blank line ends an event.
    """
    rest = b""  # an unfinished line
    data: list[str] = []
    finished = False
    iterator = chunks.__aiter__()
    while not finished:
        try:
            chunk = cutter.feed(await iterator.__anext__())
        except StopAsyncIteration:
            chunk, finished = cutter.flush() + b"\n", True
        text = rest + chunk
        if b"\r" in text:
            if text.endswith(b"\r") and not finished:
                text, held = text[:-1], b"\r"  # may be half of a CRLF still coming
            else:
                held = b""
            text = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        else:
            held = b""
        *lines, rest = text.split(b"\n")
        rest += held
        for line in lines:
            if not line:
                if data:
                    yield "\n".join(data)
                    data = []
                continue
            name, _, value = line.partition(b":")
            if name == b"data":
                data.append(value.removeprefix(b" ").decode("utf-8", "replace"))
    if data:
        yield "\n".join(data)


async def events_from_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[StreamEvent]:
    usage: dict | None = None
    # Told once the stream is over, like usage: before the first token an
    # event would count as the answer having begun.
    answering: StreamEvent | None = None
    reader = _Reader()
    events = sse_data(chunks, ByteCutter(reader.pictures))
    async for raw in events:
        data = raw.strip()
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
                    for event in reader.events(choice):
                        yield event
            if isinstance(chunk.get("usage"), dict) and chunk["usage"]:
                usage = chunk["usage"]  # some relays repeat it; the last one wins
    for event in reader.end():
        yield event
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


def events_from_completion(data: Any, pictures: Pictures | None = None) -> Iterable[StreamEvent]:
    """`pictures`: those already cut from the body's bytes (see `cut_body`)."""
    check_error_chunk(data, mid_stream=False)
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        raise RelayError(gettext("The relay's answer has no choices in it."),
                         code="bad_response")
    reader = _Reader(pictures)
    if answering := _answering_model(data):
        yield answering
    for choice in data["choices"]:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            yield from reader.events(choice)
    yield from reader.end()
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
    elif event.kind == "image" and event.picture is not None:
        result.images.append(event.picture)
    elif event.kind == "model":
        result.model = event.text


async def cut_body(chunks: AsyncIterator[bytes]) -> tuple[bytes, Pictures]:
    """A whole JSON answer read with its pictures cut out as they arrive."""
    pictures = Pictures()
    cutter = ByteCutter(pictures)
    body = bytearray()
    async for chunk in chunks:
        body += cutter.feed(chunk)
    body += cutter.flush()
    return bytes(body), pictures
