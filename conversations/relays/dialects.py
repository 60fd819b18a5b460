"""How a stored file is spelled for a relay's dialect (PROTOCOL.md §2).

| dialect             | image       | audio        | video        | PDF          |
|---------------------|-------------|--------------|--------------|--------------|
| `openai`            | `image_url` | `input_audio`| ✗            | `file`       |
| `image_url-for-all` | `image_url` | `image_url`  | `image_url`  | `image_url`  |
| `media-url-parts`   | `image_url` | `audio_url`  | `video_url`  | `image_url`  |
| `openrouter`        | `image_url` | `input_audio`| `video_url`  | `file`       |
| `images-only`       | `image_url` | ✗            | ✗            | ✗            |

A file goes inline as a `data:` URI (an `InlineData` placeholder, streamed
from storage while the request is sent), or, when PUBLIC_BASE_URL is set and
the file is large, as a signed link the relay downloads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings

from conversations.media.formats import relay_mime
from conversations.media.links import signed_url
from conversations.models import Attachment, Dialect
from conversations.relays.request_body import InlineData

# input_audio's `format`.
AUDIO_FORMATS = {"audio/wav": "wav", "audio/mpeg": "mp3"}






def media_part(attachment: Attachment, dialect: str) -> dict[str, Any]:
    """The content part for one stored file, spelled for `dialect`."""
    return spell_part(
        kind=attachment.kind, dialect=dialect, mime=attachment.mime,
        name=attachment.original_name,
        inline=lambda bare: _inline(attachment, bare=bare), url=lambda: _url(attachment),
    )


def spell_part(
    *, kind: str, dialect: str, mime: str, name: str,
    inline: Callable[[bool], Any], url: Callable[[], Any],
) -> dict[str, Any]:
    """A content part for a file of `kind` in `dialect`: `inline(bare)` gives
    its data (a bare base64 string or a data: URI), `url()` its link or data URI."""
    if dialect in (Dialect.OPENAI, Dialect.OPENROUTER):
        if kind == "audio":
            return {"type": "input_audio", "input_audio": {
                "data": inline(True), "format": AUDIO_FORMATS.get(mime, "mp3"),
            }}
        if kind == "pdf":
            return {"type": "file", "file": {
                "filename": _pdf_filename(name), "file_data": inline(False),
            }}
    if dialect == Dialect.MEDIA_URL_PARTS and kind in ("audio", "video"):
        key = f"{kind}_url"
        return {"type": key, key: {"url": url()}}
    if dialect == Dialect.OPENROUTER and kind == "video":
        return {"type": "video_url", "video_url": {"url": url()}}
    return {"type": "image_url", "image_url": {"url": url()}}


def _pdf_filename(name: str) -> str:
    return name if name.lower().endswith(".pdf") else f"{name}.pdf"


def _inline(attachment: Attachment, *, bare: bool = False) -> InlineData:
    return InlineData(
        storage=attachment.file.storage, name=attachment.file.name, size=attachment.size,
        mime=relay_mime(attachment.mime), bare=bare, label=attachment.original_name,
    )


def _url(attachment: Attachment) -> InlineData | str:
    """A signed link when the relay can reach us and the file is large; else inline."""
    if settings.PUBLIC_BASE_URL and attachment.size >= settings.MEDIA_LINK_MIN_BYTES:
        return signed_url(attachment)
    return _inline(attachment)
