"""Relay usage objects → the Usage columns (PROTOCOL.md §6), or an estimate.

A relay that reports usage is believed as it is. One that reports none
(one-api's Gemini stream) still charges for the request, so the reply is
counted here from what was sent and received — text *and* media, at Gemini's
published token rates — and the row is marked `estimated`.
"""

from __future__ import annotations

from typing import Any

from conversations.tokens import (
    TOKENS_PER_GENERATED_IMAGE,
    SentRequest,
    attachment_tokens,
    estimate_text_tokens,
    generated_images_in,
)


def _int(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def usage_fields(raw: dict | None) -> dict[str, Any] | None:
    """Columns for a Usage row from what the relay reported; None when it reported none."""
    if not raw or not _reports_tokens(raw):
        return None
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


def estimate_usage(message, sent: SentRequest) -> dict[str, Any]:
    """A relay that streams no usage (one-api) still costs money: count it ourselves.

    The prompt is what the request carried (`sent`, from prompt.request_sent):
    its text, the earlier answers' pictures, and each file at Gemini's rates.
    The completion is the reply's text and reasoning plus any image it made.
    """
    audio_in = image_in = other_media_in = 0
    for item in sent.media:
        kind, tokens = attachment_tokens(item.attachment)
        if kind == "audio":
            audio_in += tokens
        elif kind == "image":
            image_in += tokens
        else:
            other_media_in += tokens
    image_in += sent.image_tokens
    text_in = sent.text_tokens
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
        "reasoning_tokens": estimate_text_tokens(message.reasoning),
        "completion_text_tokens": text_out,
        "completion_audio_tokens": 0,
        "completion_image_tokens": image_out_tokens,
        "estimated": True,
    }
