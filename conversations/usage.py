"""Relay usage objects → the Usage columns (PROTOCOL.md §6), or an estimate.

A relay that reports usage is believed as it is. One that reports none
(one-api's Gemini stream) still charges for the request, so the reply is
counted here from what was sent and received — text *and* media, at Gemini's
published token rates — and the row is marked `estimated`.
"""

from __future__ import annotations

import math
import re
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


def _int(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def usage_fields(raw: dict | None, *, message=None) -> dict[str, Any]:
    """Columns for a Usage row; estimated from the text and media when the relay sent none."""
    if not raw or not _reports_tokens(raw):
        return estimate_usage(message)
    prompt_details = raw.get("prompt_tokens_details") or raw.get("input_tokens_details") or {}
    completion_details = (
        raw.get("completion_tokens_details") or raw.get("output_tokens_details") or {}
    )
    prompt = _int(raw.get("prompt_tokens") or raw.get("input_tokens"))
    completion = _int(raw.get("completion_tokens") or raw.get("output_tokens"))
    total = _int(raw.get("total_tokens")) or prompt + completion
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total,
        "cached_tokens": _int(prompt_details.get("cached_tokens")),
        "prompt_text_tokens": _int(prompt_details.get("text_tokens")),
        "prompt_audio_tokens": _int(prompt_details.get("audio_tokens")),
        "prompt_image_tokens": _int(prompt_details.get("image_tokens")),
        "reasoning_tokens": _int(completion_details.get("reasoning_tokens")),
        "completion_text_tokens": _int(completion_details.get("text_tokens")),
        "completion_audio_tokens": _int(completion_details.get("audio_tokens")),
        "completion_image_tokens": _int(completion_details.get("image_tokens")),
        "estimated": False,
    }


def _reports_tokens(raw: dict) -> bool:
    # `{"prompt_tokens": 0, "completion_tokens": 0}` from a relay that counts
    # nothing is no usage at all: an estimate beats a silent zero.
    return any(
        _int(raw.get(key))
        for key in ("prompt_tokens", "completion_tokens", "total_tokens", "input_tokens",
                    "output_tokens")
    )


# -- estimates ---------------------------------------------------------------


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


def _attachments_sent(message) -> set[int] | None:
    """Ids of the files the reply's request really carried, as parts.py built it."""
    model = message.model or message.conversation.model
    if model is None:
        return None
    try:
        from .parts import media_sent_for
    except ImportError:  # pragma: no cover - parts is always there in this app
        return None
    sent, _text_tokens = media_sent_for(reply=message, relay=model.relay)
    return {item.attachment.pk for item in sent}


def _replayed_statuses() -> set[str]:
    try:
        from .parts import REPLAYED_STATUSES
    except ImportError:  # pragma: no cover - parts is always there in this app
        return {"complete", "cancelled"}
    return {str(s) for s in REPLAYED_STATUSES}


def estimate_usage(message) -> dict[str, Any]:
    """A relay that streams no usage (one-api) still costs money: count it ourselves.

    The prompt is what `parts.build_messages` sends: the system prompt, every
    earlier user message with its attachments, and the earlier answers the
    user saw. The completion is the reply's text and reasoning plus any image
    it generated.
    """
    text_in = audio_in = image_in = other_media_in = 0
    text_out = images_out = 0
    if message is not None:
        conversation = message.conversation
        text_in = estimate_text_tokens(conversation.system_prompt)
        replayed = _replayed_statuses()
        history = (
            conversation.messages.filter(created_at__lt=message.created_at)
            .exclude(pk=message.pk)
            .prefetch_related("attachments")
        )
        sent = _attachments_sent(message)
        for earlier in history:
            if earlier.role == "assistant":
                if earlier.status in replayed:
                    text_in += estimate_text_tokens(earlier.text)
                    image_in += generated_images_in(earlier.text) * TOKENS_PER_IMAGE
                continue
            text_in += estimate_text_tokens(earlier.text)
            for attachment in earlier.attachments.all():
                if sent is not None and attachment.pk not in sent:
                    continue  # refused for this model or relay, or not re-sent
                kind, tokens = attachment_tokens(attachment)
                if kind == "audio":
                    audio_in += tokens
                elif kind == "image":
                    image_in += tokens
                else:
                    other_media_in += tokens
        text_out = estimate_text_tokens(message.text) + estimate_text_tokens(message.reasoning)
        images_out = generated_images_in(message.text)
        if message.pk:
            images_out += message.attachments.filter(generated=True).count()
    image_out_tokens = images_out * TOKENS_PER_GENERATED_IMAGE
    prompt = text_in + audio_in + image_in + other_media_in
    completion = text_out + image_out_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cached_tokens": 0,
        "prompt_text_tokens": text_in,
        "prompt_audio_tokens": audio_in,
        "prompt_image_tokens": image_in,
        "reasoning_tokens": estimate_text_tokens(message.reasoning) if message else 0,
        "completion_text_tokens": text_out,
        "completion_audio_tokens": 0,
        "completion_image_tokens": image_out_tokens,
        "estimated": True,
    }
