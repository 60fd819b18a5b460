"""Token counts written once: Gemini's published media rates and text estimation.

Used by the request builder (what a file should cost, to notice a dropped one),
the usage estimate (a relay that reports none) and the simulator (what it
reports). Imports nothing from the app.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

# Gemini's token accounting (https://ai.google.dev/gemini-api/docs/tokens):
# an image up to 384 px on both sides is 258 tokens, a larger one is cut into
# 768 px tiles of 258 tokens each; audio is 32 tokens a second; video 263 a
# second (frames + its audio track); a PDF page is read as an image.
TOKENS_PER_IMAGE = 258
SMALL_IMAGE_SIDE = 384
IMAGE_TILE_SIDE = 768
TOKENS_PER_AUDIO_SECOND = 32
TOKENS_PER_VIDEO_SECOND = 263
TOKENS_PER_PDF_PAGE = 258
# A generated 1024×1024 image is 1,290 output tokens on Gemini image models.
TOKENS_PER_GENERATED_IMAGE = 1290
# Without a known length, judge it from the bytes at common bitrates, so an
# estimate errs on the side of counting the media rather than ignoring it.
AUDIO_BYTES_PER_SECOND = 16_000  # 128 kbit/s mp3
VIDEO_BYTES_PER_SECOND = 250_000  # 2 Mbit/s mp4
PDF_BYTES_PER_PAGE = 100_000


# A generated image arrives as a markdown data URI (PROTOCOL.md §7); its
# base64 is not text the model wrote and must not be counted as millions of tokens.
_DATA_URI = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,[A-Za-z0-9+/=\s]*")
_CJK_START = 0x2E80


def estimate_text_tokens(text: str) -> int:
    """Roughly what Gemini counts: ~4 characters a token, a CJK character a token each."""
    if not text:
        return 0
    text = _DATA_URI.sub("", text)
    cjk = sum(1 for ch in text if ord(ch) >= _CJK_START)
    return max(1, round((len(text) - cjk) / 4) + cjk) if text.strip() else 0


def generated_images_in(text: str) -> int:
    return sum(1 for match in _DATA_URI.finditer(text or "") if match[1].startswith("image/"))


def image_tokens(width: int | None, height: int | None) -> int:
    if not width or not height or (width <= SMALL_IMAGE_SIDE and height <= SMALL_IMAGE_SIDE):
        return TOKENS_PER_IMAGE
    tiles = math.ceil(width / IMAGE_TILE_SIDE) * math.ceil(height / IMAGE_TILE_SIDE)
    return tiles * TOKENS_PER_IMAGE


def attachment_tokens(attachment) -> tuple[str, int]:
    """(kind, tokens) for one stored attachment, as the model would be charged for it."""
    kind = attachment.kind
    size = attachment.size or 0
    if kind == "image":
        return kind, image_tokens(attachment.width, attachment.height)
    if kind == "audio":
        seconds = attachment.duration_seconds or size / AUDIO_BYTES_PER_SECOND
        return kind, max(1, math.ceil(seconds * TOKENS_PER_AUDIO_SECOND))
    if kind == "video":
        seconds = attachment.duration_seconds or size / VIDEO_BYTES_PER_SECOND
        return kind, max(1, math.ceil(seconds * TOKENS_PER_VIDEO_SECOND))
    if kind == "pdf":
        pages = attachment.pages or max(1, math.ceil(size / PDF_BYTES_PER_PAGE))
        return kind, pages * TOKENS_PER_PDF_PAGE
    return kind, 0


def expected_tokens(attachment) -> int:
    """The least Gemini charges for one file sent (PROTOCOL.md §2): the flat rate per
    image and at least one second or page, so the dropped-media check errs towards
    believing the relay."""
    seconds = max(1.0, attachment.duration_seconds or 0)
    if attachment.kind == "image":
        return TOKENS_PER_IMAGE
    if attachment.kind == "audio":
        return round(seconds * TOKENS_PER_AUDIO_SECOND)
    if attachment.kind == "video":
        return round(seconds * TOKENS_PER_VIDEO_SECOND)
    return TOKENS_PER_PDF_PAGE * max(1, attachment.pages or 1)


@dataclass
class SentMedia:
    attachment: Any  # a stored Attachment
    expected_tokens: int


@dataclass
class SentRequest:
    """What a reply's request carried, as tokens: built by prompt.request_sent."""

    text_tokens: int = 0
    image_tokens: int = 0  # pictures inside earlier answers' text
    media: list[SentMedia] = field(default_factory=list)
    left_out: int = 0  # older messages of the branch not sent: they did not fit the window
    starts_at: int | None = None  # then the id of the first message sent
