"""Pictures inside a relay's answer → decoded temporary files and short references.

An image model's picture arrives as base64 in a `data:image/…;base64,` URI
(PROTOCOL.md §7): inside the content as markdown (new-api; one SSE line of
several MB, or split across several deltas) or in `images[]` (OpenRouter).
It is decoded once, as it arrives, into a temporary file: the base64 text is
never kept, so reading a 20 MB line holds a network chunk, not the line.

Two cutters share one `Pictures` of a reply:

- `ByteCutter` runs on the raw bytes of the answer, before any JSON is
  parsed, and puts a token (`@@picture:N@@`) where each base64 run was;
- `TextCutter` runs on the content deltas: it turns tokens and data URIs
  that only came together across deltas into `picture:N`, the reference the
  reply's text keeps, and continues a picture whose base64 went on in the
  next delta.

Imports nothing from the app.
"""

from __future__ import annotations

import binascii
import re
import tempfile
from dataclasses import dataclass, field
from typing import BinaryIO

MAX_PICTURE_BYTES = 64 * 1024 * 1024  # decoded; a larger one is dropped with a warning
REFERENCE = "picture:{}"
REFERENCE_RE = re.compile(r"^picture:(\d+)$")

_MARKER = re.compile(rb"data:(image/[A-Za-z0-9.+-]{1,40});base64,")
_TEXT_MARKER = re.compile(r"data:(image/[A-Za-z0-9.+-]{1,40});base64,")
_TOKEN = re.compile(r"@@picture:(\d+)@@")
_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_B64_TEXT = re.compile(r"[A-Za-z0-9+/=]*")
_HOLD = 64  # a marker or token cut at a chunk's end is at most this long


@dataclass
class Picture:
    """One decoded picture: its bytes in a temporary file, as the relay labelled it."""

    number: int  # 1-based, in the order the reply carried them
    declared_mime: str
    file: BinaryIO = field(default_factory=lambda: tempfile.TemporaryFile(prefix="picture-"))
    size: int = 0
    too_large: bool = False
    broken: bool = False
    open: bool = True  # more base64 may follow
    may_continue: bool = False  # its run ended with its JSON string: the next delta may go on
    _rest: bytes = b""

    def write_b64(self, chars: bytes) -> None:
        if self.too_large or self.broken or not chars:
            return
        data = self._rest + chars
        whole = len(data) // 4 * 4
        self._rest = data[whole:]
        if whole:
            self._decode(data[:whole])

    def close(self) -> None:
        if not self.open:
            return
        self.open = self.may_continue = False
        if self._rest.strip(b"="):
            self._decode(self._rest + b"=" * (-len(self._rest) % 4))
        self._rest = b""
        self.file.seek(0)

    def _decode(self, quads: bytes) -> None:
        try:
            decoded = binascii.a2b_base64(quads)
        except binascii.Error:
            self.broken = True
            return
        if self.size + len(decoded) > MAX_PICTURE_BYTES:
            self.too_large = True
            return
        self.file.write(decoded)
        self.size += len(decoded)

    def read(self) -> bytes:
        self.file.seek(0)
        return self.file.read()

    def discard(self) -> None:
        self.file.close()


class Pictures:
    """The pictures of one answer, numbered as they come."""

    def __init__(self) -> None:
        self.items: list[Picture] = []
        self.finished: list[Picture] = []  # closed, not yet handed on

    def start(self, mime: str) -> Picture:
        picture = Picture(number=len(self.items) + 1, declared_mime=mime)
        self.items.append(picture)
        return picture

    def get(self, number: int) -> Picture | None:
        return self.items[number - 1] if 0 < number <= len(self.items) else None

    def finish(self, picture: Picture) -> None:
        if picture.open:
            picture.close()
        if picture not in self.finished:
            self.finished.append(picture)

    def take_finished(self) -> list[Picture]:
        done, self.finished = self.finished, []
        return done

    def close_all(self) -> list[Picture]:
        for picture in self.items:
            if picture.open:
                self.finish(picture)
        return self.take_finished()


class ByteCutter:
    """Raw answer bytes in, the same bytes with each base64 run replaced by a token."""

    def __init__(self, pictures: Pictures) -> None:
        self.pictures = pictures
        self.current: Picture | None = None
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._held + chunk
        self._held = b""
        out = bytearray()
        position = 0
        while position < len(data):
            if self.current is not None:
                position = self._read_run(data, position)
                if self.current is not None:
                    break  # the run goes on in the next chunk
                continue
            match = _MARKER.search(data, position)
            if match is None:
                keep = _partial_marker_start(data, position)
                out += data[position:keep]
                self._held = data[keep:]
                break
            out += data[position:match.start()]
            self.current = self.pictures.start(match[1].decode())
            out += f"@@picture:{self.current.number}@@".encode()
            position = match.end()
        return bytes(out)

    def _read_run(self, data: bytes, position: int) -> int:
        end = position
        size = len(data)
        run = bytearray()
        while end < size:
            byte = data[end]
            if byte in _B64:
                start = end
                while end < size and data[end] in _B64:
                    end += 1
                run += data[start:end]
                continue
            if byte == 0x5C:  # a JSON escape: `\/` is a slash, `\n`/`\r` are line wraps
                if end + 1 >= size:
                    self._held = data[end:]
                    end = size
                    break
                escaped = data[end + 1]
                if escaped == 0x2F:
                    run += b"/"
                    end += 2
                    continue
                if escaped in (0x6E, 0x72):
                    end += 2
                    continue
            break
        assert self.current is not None
        self.current.write_b64(bytes(run))
        if end < size:  # the run ended here
            self.current.may_continue = data[end] == 0x22  # its string ended: maybe more
            if not self.current.may_continue:
                self.pictures.finish(self.current)
            self.current = None
        return end

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        if self.current is not None:
            self.pictures.finish(self.current)
            self.current = None
        return held


def _partial_marker_start(data: bytes, position: int) -> int:
    """Where a marker that may be cut off by the chunk's end begins (len if none)."""
    size = len(data)
    # The chunk ends inside "data:image/" itself…
    index = data.find(b"d", max(position, size - len(b"data:image/")))
    while index != -1:
        if b"data:image/".startswith(data[index:]):
            return index
        index = data.find(b"d", index + 1)
    # …or after it, in the subtype or ";base64," (the search found no whole marker).
    index = data.rfind(b"data:image/", max(position, size - _HOLD))
    return index if index != -1 else size


def _could_begin(tail, marker) -> bool:
    """Whether `tail` (what is left of a chunk) may be the start of `marker` or of
    what follows it; the search already failed, so holding it back is all this decides."""
    return marker.startswith(tail) if len(tail) <= len(marker) else tail.startswith(marker)


class TextCutter:
    """Content deltas in, text with `picture:N` references out."""

    def __init__(self, pictures: Pictures) -> None:
        self.pictures = pictures
        self.current: Picture | None = None
        self._held = ""

    def feed(self, text: str) -> str:
        data = self._held + text
        self._held = ""
        out: list[str] = []
        position = 0
        if self.current is not None:
            position = self._read_run(data, 0)
        while position < len(data):
            token = _TOKEN.search(data, position)
            marker = _TEXT_MARKER.search(data, position)
            found = min((m for m in (token, marker) if m is not None),
                        key=lambda m: m.start(), default=None)
            if found is None:
                keep = _partial_text_start(data, position)
                out.append(data[position:keep])
                self._held = data[keep:]
                break
            out.append(data[position:found.start()])
            if found is token:
                picture = self.pictures.get(int(found[1]))
                position = found.end()
                if picture is None:
                    continue
                out.append(REFERENCE.format(picture.number))
                if picture.open and picture.may_continue:
                    self.current = picture
                    position = self._read_run(data, position)
            else:
                picture = self.pictures.start(found[1])
                out.append(REFERENCE.format(picture.number))
                self.current = picture
                position = self._read_run(data, found.end())
        return "".join(out)

    def _read_run(self, data: str, position: int) -> int:
        run = _B64_TEXT.match(data, position)
        end = run.end() if run else position
        assert self.current is not None
        self.current.write_b64(data[position:end].encode("ascii"))
        if end < len(data):
            self.pictures.finish(self.current)
            self.current = None
        return end

    def flush(self) -> str:
        held, self._held = self._held, ""
        if self.current is not None:
            self.pictures.finish(self.current)
            self.current = None
        return held


def _partial_text_start(data: str, position: int) -> int:
    tail_start = max(position, len(data) - _HOLD)
    for index in range(tail_start, len(data)):
        tail = data[index:]
        if _could_begin(tail, "data:image/") or _TOKEN_PREFIX.fullmatch(tail):
            return index
    return len(data)


_TOKEN_PREFIX = re.compile(r"@(@(p(i(c(t(u(r(e(:(\d+(@)?)?)?)?)?)?)?)?)?)?)?")


def reference_tokens(text: str) -> str:
    """Text where the byte cutter left tokens, with the references the reply keeps."""
    return _TOKEN.sub(lambda m: REFERENCE.format(m[1]), text) if "@@picture:" in text else text


def picture_in_url(url: str, pictures: Pictures) -> Picture | None:
    """An `images[]` entry's URL (already cut to a token, or a small data URI) → its picture."""
    token = _TOKEN.fullmatch(url)
    if token:
        picture = pictures.get(int(token[1]))
        if picture is not None:
            pictures.finish(picture)
        return picture
    marker = _TEXT_MARKER.match(url)
    if marker is None:
        return None
    picture = pictures.start(marker[1])
    picture.write_b64(url[marker.end():].encode("ascii", "ignore"))
    pictures.finish(picture)
    return picture
