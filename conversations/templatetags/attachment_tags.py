"""Template helpers for attachments: upload limits for the composer, file facts."""

from __future__ import annotations

import json

from django import template
from django.conf import settings

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
        return f"{seconds:.1f} s" if seconds < 10 else f"{total} s"
    return f"{total // 60}:{total % 60:02d}"
