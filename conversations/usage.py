"""Relay usage objects → the Usage columns (PROTOCOL.md §6)."""

from __future__ import annotations

from typing import Any

from .simulator import estimate_text_tokens


def _int(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def usage_fields(raw: dict | None, *, message=None) -> dict[str, Any]:
    """Columns for a Usage row; estimated from the text when the relay sent none."""
    if not raw:
        return estimate_usage(message)
    prompt_details = raw.get("prompt_tokens_details") or {}
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


def estimate_usage(message) -> dict[str, Any]:
    """A relay that streams no usage (one-api) still costs money: count it ourselves."""
    completion = 0
    prompt = 0
    if message is not None:
        completion = estimate_text_tokens(message.text) + estimate_text_tokens(message.reasoning)
        history = message.conversation.messages.filter(created_at__lt=message.created_at)
        prompt = sum(estimate_text_tokens(m.text) for m in history.only("text"))
        prompt += estimate_text_tokens(message.conversation.system_prompt)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "estimated": True,
    }
