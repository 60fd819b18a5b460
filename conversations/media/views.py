"""Serving stored attachments: to their owner, and by signed link to a relay.

Every response names the stored type (never a guess from the name), forbids
sniffing, and carries a sandboxing CSP; anything a browser could run or
render as a document (PDF, HEIC, and whatever is not plain media) is sent as
a download. Signed links need no session, expire, and name one file.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator

from django.contrib.auth.decorators import login_required
from django.core import signing
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET

from conversations.media.formats import EXTENSIONS, relay_mime
from conversations.media.links import SIGNING_SALT
from conversations.models import Attachment

STREAM_CHUNK = 256 * 1024


# Shown in the page (<img>, <audio>, <video>); everything else is downloaded.
INLINE_TYPES = {
    "image/png", "image/jpeg", "image/webp", "image/gif",
    "audio/wav", "audio/mpeg", "audio/mp4", "audio/ogg", "audio/webm", "audio/flac",
    "video/mp4", "video/quicktime", "video/webm",
}


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@login_required
@require_GET
def attachment_file(request: HttpRequest, uuid) -> HttpResponse:
    attachment = Attachment.objects.filter(uuid=uuid, owner=request.user).first()
    if attachment is None:
        raise Http404("No such file")
    download = request.GET.get("download") == "1"
    return _serve(request, attachment, content_type=attachment.mime, download=download)


@require_GET
def signed_attachment(request: HttpRequest, token: str, name: str) -> HttpResponse:


    try:
        payload = signing.loads(token, salt=SIGNING_SALT)
    except signing.BadSignature as exc:
        raise Http404("No such file") from exc
    if not isinstance(payload, dict) or int(payload.get("e", 0)) < time.time():
        raise Http404("This link has expired")
    attachment = Attachment.objects.filter(uuid=payload.get("a")).first()
    if attachment is None:
        raise Http404("No such file")
    # Relays check the type against their allowlist (QuickTime is `video/mov`).
    return _serve(request, attachment, content_type=relay_mime(attachment.mime), download=True)


def _serve(
    request: HttpRequest, attachment: Attachment, *, content_type: str, download: bool
) -> HttpResponse:
    storage = attachment.file.storage
    try:
        size = storage.size(attachment.file.name)
    except OSError as exc:
        raise Http404("The file is missing from storage") from exc
    start, end = 0, size - 1
    status = 200
    wanted = _RANGE.match(request.headers.get("Range", "").strip())
    if wanted and size:
        first, last = wanted.groups()
        if first:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
        elif last:
            start = max(0, size - int(last))
        if start > end or start >= size:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        status = 206
    try:
        fh = storage.open(attachment.file.name, "rb")
    except OSError as exc:
        raise Http404("The file is missing from storage") from exc
    # Under ASGI the file is read in a thread, chunk by chunk, off the event loop.
    chunks = (_aread_range(fh, start, end) if isinstance(request, ASGIRequest)
              else _read_range(fh, start, end))
    response = StreamingHttpResponse(chunks, status=status, content_type=content_type)
    response["Content-Length"] = str(end - start + 1 if size else 0)
    response["Accept-Ranges"] = "bytes"
    if status == 206:
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    as_download = download or attachment.mime not in INLINE_TYPES
    response["Content-Disposition"] = content_disposition_header(
        as_download, _download_name(attachment)
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


def _read_range(fh, start: int, end: int) -> Iterator[bytes]:
    try:
        fh.seek(start)
        remaining = end - start + 1
        while remaining > 0:
            data = fh.read(min(STREAM_CHUNK, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data
    finally:
        fh.close()


async def _aread_range(fh, start: int, end: int) -> AsyncIterator[bytes]:
    try:
        await asyncio.to_thread(fh.seek, start)
        remaining = end - start + 1
        while remaining > 0:
            data = await asyncio.to_thread(fh.read, min(STREAM_CHUNK, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data
    finally:
        await asyncio.to_thread(fh.close)


def _download_name(attachment: Attachment) -> str:
    """The user's name, with the extension of what is stored (a converted memo is .mp3)."""


    name = attachment.original_name or "attachment"
    extension = EXTENSIONS.get(attachment.mime)
    if extension:
        stem, dot, current = name.rpartition(".")
        if current.lower() not in _SAME_EXTENSIONS.get(extension, {extension}):
            name = f"{stem if dot else name}.{extension}"
    return name


_SAME_EXTENSIONS = {"jpg": {"jpg", "jpeg"}, "mpg": {"mpg", "mpeg"}, "heif": {"heif", "heic"}}
