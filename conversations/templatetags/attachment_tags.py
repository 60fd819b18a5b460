"""Template helpers for attachments: upload limits for the composer, file facts."""

from __future__ import annotations

import json

from django import template
from django.conf import settings
from django.utils.formats import number_format
from django.utils.translation import gettext

from conversations.capabilities import (
    ASPECT_RATIOS,
    DEFAULT_ASPECT_RATIO,
    DEFAULT_IMAGE_SIZE,
    IMAGE_SIZES,
)

register = template.Library()


@register.simple_tag
def upload_limits() -> str:
    """The server's limits as JSON, so the composer can warn before a long upload."""
    return json.dumps({
        "perKind": settings.UPLOAD_LIMITS,
        "maxFiles": settings.UPLOAD_MAX_FILES,
        "maxTotal": settings.UPLOAD_MAX_MESSAGE_BYTES,
    })


@register.filter
def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    total = round(seconds)
    if total < 60:
        shown = number_format(f"{seconds:.1f}", decimal_pos=1) if seconds < 10 else str(total)
        # Translators: a short duration in seconds, e.g. "4.5 s".
        return gettext("%(seconds)s s") % {"seconds": shown}
    return f"{total // 60}:{total % 60:02d}"


@register.inclusion_tag("conversations/_picture_controls.html")
def picture_controls(conversation=None, *, any_model: bool = False, oob: bool = False):
    """The composer's aspect ratio and size, shown for image-output models; `oob`:
    as an out-of-band swap, when the settings change the conversation's model."""
    model = getattr(conversation, "model", None)
    return {
        "show": bool(model and model.outputs_images) or any_model,
        "aspect_ratios": ASPECT_RATIOS, "image_sizes": IMAGE_SIZES,
        "aspect_ratio": getattr(conversation, "image_aspect_ratio", DEFAULT_ASPECT_RATIO),
        "image_size": getattr(conversation, "image_size", DEFAULT_IMAGE_SIZE),
        "for_new": conversation is None,
        "oob": oob,
    }
