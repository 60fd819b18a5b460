"""What the simulator makes of a request: each content part described as a
relay would see it, new-api's drops and refusals, and the links it downloads
(loopback only)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from conversations.media import probe
from conversations.tokens import (
    TOKENS_PER_AUDIO_SECOND,
    TOKENS_PER_IMAGE,
    TOKENS_PER_PDF_PAGE,
    TOKENS_PER_VIDEO_SECOND,
    estimate_text_tokens,
)


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
    true_mime, details = probe.describe_bytes(data, mime)
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
    label = probe.format_label(true_mime)
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
