"""The file types the app stores, their extensions, and the labels relays accept.

MIME labels follow new-api's Gemini allowlist: a QuickTime file is `video/mov`.
A stored type missing from RELAY_MIME is converted on upload (media/uploads.py).
"""

from __future__ import annotations

# The label relays accept for each stored type (new-api's Gemini allowlist).
# A stored type missing here is converted on upload (see attachments.py).
RELAY_MIME: dict[str, str] = {
    "image/png": "image/png",
    "image/jpeg": "image/jpeg",
    "image/webp": "image/webp",
    "image/heic": "image/heic",
    "image/heif": "image/heif",
    "audio/wav": "audio/wav",
    "audio/mpeg": "audio/mpeg",
    "video/mp4": "video/mp4",
    "video/quicktime": "video/mov",
    "video/mpeg": "video/mpeg",
    "video/x-msvideo": "video/avi",
    "video/x-ms-wmv": "video/wmv",
    "video/x-flv": "video/flv",
    "application/pdf": "application/pdf",
}


EXTENSIONS = {
    "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/heic": "heic",
    "image/heif": "heif", "audio/wav": "wav", "audio/mpeg": "mp3", "video/mp4": "mp4",
    "video/quicktime": "mov", "video/mpeg": "mpg", "video/x-msvideo": "avi",
    "video/x-ms-wmv": "wmv", "video/x-flv": "flv", "application/pdf": "pdf",
}


def relay_mime(mime: str) -> str:
    return RELAY_MIME.get(mime, mime)
