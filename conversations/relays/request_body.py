"""A chat request whose media are read from storage while it is being sent.

A 200 MB video inlined as a data URI is a 267 MB JSON string. Building it in
memory (file bytes, their base64, the JSON text, httpx's copy) costs three to
five times the file. Instead `parts` puts an `InlineData` placeholder where
the string goes; the body stays an ordinary dict that tests can inspect (and
`render_body` turns into the exact JSON object sent), and the relay client
asks `streamed_content` for an async byte stream with a known length. The
stream opens the files when it starts, so each retry reads them afresh.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from django.core.files.storage import Storage
from django.utils.translation import gettext

from conversations.relays.errors import RelayError

# A multiple of 3, so every chunk's base64 stands alone (padding only at the end).
CHUNK_BYTES = 3 * 512 * 1024


class MediaReadError(RelayError):
    """An attachment could not be read back from storage while sending (never retried)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="attachment_unreadable")


@dataclass(eq=False, repr=False)
class InlineData:
    """A JSON string made of one stored file: `data:<mime>;base64,…` or bare base64."""

    storage: Storage
    name: str
    size: int
    mime: str
    bare: bool = False  # OpenAI's input_audio wants the base64 alone
    label: str = ""  # the user's name for the file, for error messages

    @property
    def prefix(self) -> bytes:
        return b"" if self.bare else f"data:{self.mime};base64,".encode("ascii")

    @property
    def encoded_length(self) -> int:
        return len(self.prefix) + 4 * ((self.size + 2) // 3)

    def render(self) -> str:
        """The whole string at once: for tests and previews, never for sending."""
        with self.storage.open(self.name, "rb") as fh:
            data = fh.read()
        return (self.prefix + base64.b64encode(data)).decode("ascii")

    async def iter_encoded(self, chunk_bytes: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
        assert chunk_bytes % 3 == 0
        try:
            fh = await asyncio.to_thread(self.storage.open, self.name, "rb")
        except OSError as exc:
            raise MediaReadError(
                gettext("The attachment “%(name)s” could not be read from storage, so the "
                        "request was not sent.") % {"name": self.label or self.name}
            ) from exc
        def read_ahead() -> asyncio.Future:
            return asyncio.ensure_future(asyncio.to_thread(_read_encoded, fh, chunk_bytes))

        pending = None
        try:
            yield self.prefix
            total = 0
            pending = read_ahead()
            while True:
                encoded, raw = await pending
                pending = None
                if not raw:
                    break
                total += raw
                if total > self.size:
                    break
                # The next chunk is read and encoded while this one goes out.
                pending = read_ahead()
                yield encoded
            if total != self.size:
                raise MediaReadError(
                    gettext("The attachment “%(name)s” changed in storage while it was being "
                            "sent; retry to send it again.") % {"name": self.label or self.name}
                )
        finally:
            if pending is not None:  # a thread still reading: let it finish before closing
                with contextlib.suppress(Exception):
                    await pending
            await asyncio.to_thread(fh.close)

    def __repr__(self) -> str:
        return f"<InlineData {self.label or self.name!r} {self.mime} {self.size} bytes>"


def _read_encoded(fh, want: int) -> tuple[bytes, int]:
    data = fh.read(want)
    while data and len(data) < want:  # some storages return short reads before the end
        more = fh.read(want - len(data))
        if not more:
            break
        data += more
    return base64.b64encode(data), len(data)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _pieces(value: Any) -> Iterator[bytes | InlineData]:
    if isinstance(value, InlineData):
        yield b'"'
        yield value
        yield b'"'
    elif isinstance(value, dict):
        yield b"{"
        for index, (key, item) in enumerate(value.items()):
            if index:
                yield b","
            yield _dumps(str(key)) + b":"
            yield from _pieces(item)
        yield b"}"
    elif isinstance(value, (list, tuple)):
        yield b"["
        for index, item in enumerate(value):
            if index:
                yield b","
            yield from _pieces(item)
        yield b"]"
    else:
        yield _dumps(value)


def segments(body: Any) -> list[bytes | InlineData]:
    """The body as runs of plain JSON bytes between inline files."""
    out: list[bytes | InlineData] = []
    run: list[bytes] = []
    for piece in _pieces(body):
        if isinstance(piece, InlineData):
            out.append(b"".join(run))
            run = []
            out.append(piece)
        else:
            run.append(piece)
    out.append(b"".join(run))
    return [s for s in out if not isinstance(s, bytes) or s]


def has_inline_data(value: Any) -> bool:
    if isinstance(value, InlineData):
        return True
    if isinstance(value, dict):
        return any(has_inline_data(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_inline_data(v) for v in value)
    return False


def streamed_content(body: Any) -> tuple[AsyncIterator[bytes], int] | None:
    """(a fresh byte stream, its exact length), or None for a body with no inline files."""
    if not has_inline_data(body):
        return None
    parts = segments(body)
    length = sum(len(p) if isinstance(p, bytes) else p.encoded_length for p in parts)
    return _stream(parts), length


async def _stream(parts: list[bytes | InlineData]) -> AsyncIterator[bytes]:
    for part in parts:
        if isinstance(part, bytes):
            yield part
        else:
            async for chunk in part.iter_encoded():
                yield chunk


def render_body(body: Any) -> Any:
    """The exact JSON object that is sent, with every file inlined (tests, debugging)."""
    if isinstance(body, InlineData):
        return body.render()
    if isinstance(body, dict):
        return {key: render_body(value) for key, value in body.items()}
    if isinstance(body, (list, tuple)):
        return [render_body(value) for value in body]
    return body


def inline_files(body: Any) -> list[InlineData]:
    found: list[InlineData] = []
    if isinstance(body, InlineData):
        found.append(body)
    elif isinstance(body, dict):
        for value in body.values():
            found.extend(inline_files(value))
    elif isinstance(body, (list, tuple)):
        for value in body:
            found.extend(inline_files(value))
    return found
