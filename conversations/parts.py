"""Conversation history → the `messages` of a chat-completions request.

Media are spelled the way the relay's dialect wants them (PROTOCOL.md §2):

| dialect             | image       | audio        | video        | PDF          |
|---------------------|-------------|--------------|--------------|--------------|
| `openai`            | `image_url` | `input_audio`| ✗            | `file`       |
| `image_url-for-all` | `image_url` | `image_url`  | `image_url`  | `image_url`  |
| `media-url-parts`   | `image_url` | `audio_url`  | `video_url`  | `image_url`  |
| `openrouter`        | `image_url` | `input_audio`| `video_url`  | `file`       |
| `images-only`       | `image_url` | ✗            | ✗            | ✗            |

A file goes inline as a `data:` URI (an `InlineData` placeholder, streamed
from storage while the request is sent), or, when PUBLIC_BASE_URL is set and
the file is large, as a signed link the relay downloads. MIME labels follow
new-api's Gemini allowlist: a QuickTime file is `video/mov`.

After the reply, `silent_drop_warnings` compares the usage with what the
media should have cost, because new-api drops parts it does not know without
an error.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Prefetch

from .models import Attachment, ChatModel, Conversation, Dialect, Message, Relay, Usage
from .request_body import InlineData
from .services import ServiceError
from .simulator import (
    TOKENS_PER_AUDIO_SECOND,
    TOKENS_PER_IMAGE,
    TOKENS_PER_PDF_PAGE,
    TOKENS_PER_VIDEO_SECOND,
    estimate_text_tokens,
)

# Assistant turns that the model should see again: what the user saw as an answer.
REPLAYED_STATUSES = {Message.Status.COMPLETE, Message.Status.CANCELLED}

KIND_WORDS = {"image": "an image", "audio": "audio", "video": "a video", "pdf": "a PDF"}

# What each dialect has a way to send at all.
DIALECT_KINDS: dict[str, set[str]] = {
    Dialect.OPENAI: {"image", "audio", "pdf"},
    Dialect.IMAGE_URL_FOR_ALL: {"image", "audio", "video", "pdf"},
    Dialect.MEDIA_URL_PARTS: {"image", "audio", "video", "pdf"},
    Dialect.OPENROUTER: {"image", "audio", "video", "pdf"},
    Dialect.IMAGES_ONLY: {"image"},
}

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

# input_audio's `format`.
AUDIO_FORMATS = {"audio/wav": "wav", "audio/mpeg": "mp3"}

EXTENSIONS = {
    "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/heic": "heic",
    "image/heif": "heif", "audio/wav": "wav", "audio/mpeg": "mp3", "video/mp4": "mp4",
    "video/quicktime": "mov", "video/mpeg": "mpg", "video/x-msvideo": "avi",
    "video/x-ms-wmv": "wmv", "video/x-flv": "flv", "application/pdf": "pdf",
}


def relay_mime(mime: str) -> str:
    return RELAY_MIME.get(mime, mime)


def dialect_name(dialect: str) -> str:
    return f"“{dialect}”"


def kind_refusal(*, kind: str, model: ChatModel | None, relay: Relay) -> str:
    """Why a file of `kind` cannot be sent to this model through this relay, or ''."""
    if kind not in DIALECT_KINDS.get(relay.dialect, set()):
        others = [d for d, kinds in DIALECT_KINDS.items() if kind in kinds]
        return (
            f"the relay “{relay.name}” is set to the {dialect_name(relay.dialect)} dialect, "
            f"which has no way to send {KIND_WORDS[kind]}. If its models take "
            f"{KIND_WORDS[kind]}, change the relay's dialect (e.g. "
            f"{dialect_name(others[0] if relay.dialect != others[0] else others[-1])}) "
            "in the admin, or pick a model on another relay"
        )
    if model is not None and not getattr(model, f"accepts_{kind}", False):
        return (
            f"{model} does not accept {KIND_WORDS[kind]}. Pick a model that does in the "
            "conversation's settings"
        )
    return ""


# -- building the request -----------------------------------------------------


def build_messages(
    *, conversation: Conversation, reply: Message, relay: Relay
) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if conversation.system_prompt.strip():
        messages.append({"role": "system", "content": conversation.system_prompt})
    history = _history(conversation, reply)
    model = reply.model or conversation.model
    media_sent = _turns_with_media_sent(history)
    current = _current_user_message(history)
    for message in history:
        if message.role == Message.Role.USER:
            content = user_content(
                message, relay, model=model, include_media=message.pk in media_sent,
                strict=message is current,
            )
            messages.append({"role": "user", "content": content})
        elif message.status in REPLAYED_STATUSES and message.text.strip():
            messages.append({"role": "assistant", "content": message.text})
    return messages


def _history(conversation: Conversation, reply: Message) -> list[Message]:
    return list(
        conversation.messages.filter(created_at__lt=reply.created_at)
        .exclude(pk=reply.pk)
        # A plain list on each message, not the related manager's cache: that
        # cache is a queryset pointing back at its message, a reference cycle
        # per message that only the garbage collector frees (a pause felt by
        # every stream).
        .prefetch_related(Prefetch("attachments", to_attr="attachment_list"))
        .order_by("created_at", "pk")
    )


def _current_user_message(history: list[Message]) -> Message | None:
    return next((m for m in reversed(history) if m.role == Message.Role.USER), None)


def _turns_with_media_sent(history: list[Message]) -> set[int]:
    """User turns whose files go out again: all, or the last HISTORY_MAX_MEDIA_TURNS
    earlier ones (0 = no cap) plus the turn being answered."""
    with_media = [m.pk for m in history
                  if m.role == Message.Role.USER and _attachments(m)]
    current = _current_user_message(history)
    cap = settings.HISTORY_MAX_MEDIA_TURNS
    earlier = [pk for pk in with_media if current is None or pk != current.pk]
    kept = set(earlier if cap <= 0 else earlier[-cap:])
    if current is not None and current.pk in with_media:
        kept.add(current.pk)
    return kept


def _attachments(message: Message) -> list[Attachment]:
    listed = getattr(message, "attachment_list", None)  # from _history's prefetch
    return [a for a in (listed if listed is not None else message.attachments.all())
            if not a.generated]


def user_content(
    message: Message,
    relay: Relay,
    *,
    model: ChatModel | None = None,
    include_media: bool = True,
    strict: bool = True,
) -> str | list[dict[str, Any]]:
    """One user turn's `content`: a plain string, or text and media parts.

    `strict` (the turn being answered): a file this model or relay cannot take
    is refused with a message. Earlier turns instead say in a text part that
    a file was left out, so the conversation goes on after a model change.
    """
    attachments = _attachments(message)
    if not attachments:
        return message.text
    parts: list[dict[str, Any]] = []
    if message.text:
        parts.append({"type": "text", "text": message.text})
    for attachment in attachments:
        if not include_media:
            parts.append(_note(attachment, "is not sent again, to save tokens"))
            continue
        refusal = kind_refusal(kind=attachment.kind, model=model, relay=relay)
        if refusal and strict:
            raise ServiceError(f"“{attachment.original_name}” cannot be sent: {refusal}.")
        if refusal:
            parts.append(_note(attachment, "is left out: this model or relay cannot take it"))
            continue
        parts.append(media_part(attachment, relay.dialect))
    return parts


def _note(attachment: Attachment, what: str) -> dict[str, Any]:
    return {"type": "text",
            "text": f"[{attachment.kind} “{attachment.original_name}” from an earlier turn "
                    f"{what}]"}


def media_part(attachment: Attachment, dialect: str) -> dict[str, Any]:
    """The content part for one stored file, spelled for `dialect`."""
    kind = attachment.kind
    if dialect in (Dialect.OPENAI, Dialect.OPENROUTER):
        if kind == "audio":
            return {"type": "input_audio", "input_audio": {
                "data": _inline(attachment, bare=True),
                "format": AUDIO_FORMATS.get(attachment.mime, "mp3"),
            }}
        if kind == "pdf":
            return {"type": "file", "file": {
                "filename": _pdf_filename(attachment.original_name),
                "file_data": _inline(attachment),
            }}
    if dialect == Dialect.MEDIA_URL_PARTS and kind in ("audio", "video"):
        key = f"{kind}_url"
        return {"type": key, key: {"url": _url(attachment)}}
    if dialect == Dialect.OPENROUTER and kind == "video":
        return {"type": "video_url", "video_url": {"url": _url(attachment)}}
    return {"type": "image_url", "image_url": {"url": _url(attachment)}}


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
        from .media_views import signed_url

        return signed_url(attachment)
    return _inline(attachment)


# -- noticing media the relay dropped -------------------------------------------


@dataclass
class SentMedia:
    attachment: Attachment
    expected_tokens: int


def expected_tokens(attachment: Attachment) -> int:
    """What Gemini charges for one file (PROTOCOL.md §2), at least one second or page."""
    seconds = max(1.0, attachment.duration_seconds or 0)
    if attachment.kind == "image":
        return TOKENS_PER_IMAGE
    if attachment.kind == "audio":
        return round(seconds * TOKENS_PER_AUDIO_SECOND)
    if attachment.kind == "video":
        return round(seconds * TOKENS_PER_VIDEO_SECOND)
    return TOKENS_PER_PDF_PAGE * max(1, attachment.pages or 1)


def media_sent_for(*, reply: Message, relay: Relay) -> tuple[list[SentMedia], int]:
    """The files a reply's request carried, and an estimate of its text tokens."""
    conversation = reply.conversation
    history = _history(conversation, reply)
    model = reply.model or conversation.model
    media_sent = _turns_with_media_sent(history)
    sent: list[SentMedia] = []
    text_tokens = estimate_text_tokens(conversation.system_prompt)
    for message in history:
        text_tokens += estimate_text_tokens(message.text)
        if message.role != Message.Role.USER or message.pk not in media_sent:
            continue
        for attachment in _attachments(message):
            if not kind_refusal(kind=attachment.kind, model=model, relay=relay):
                sent.append(SentMedia(attachment, expected_tokens(attachment)))
    return sent, text_tokens


def _suggested_dialect(dialect: str, kind: str) -> str:
    if dialect != Dialect.IMAGE_URL_FOR_ALL:
        return Dialect.IMAGE_URL_FOR_ALL
    return Dialect.MEDIA_URL_PARTS if kind == "video" else Dialect.OPENAI


def _likely_cause(dialect: str, kind: str) -> str:
    if dialect == Dialect.MEDIA_URL_PARTS and kind == "audio":
        return "new-api ignores `audio_url` parts without an error"
    if dialect == Dialect.MEDIA_URL_PARTS and kind == "video":
        return "new-api reads `video_url` only as a bare string and ignores `video_url` objects"
    return "the relay probably does not pass this kind of part on to the model"


def silent_drop_warnings(*, message: Message, usage: Usage) -> list[str]:
    """Warnings for media the relay seems to have dropped without saying so."""
    if usage.estimated or not isinstance(usage.raw, dict) or message.model is None:
        return []
    relay = message.model.relay
    sent, text_tokens = media_sent_for(reply=message, relay=relay)
    if not sent:
        return []
    by_kind: dict[str, list[SentMedia]] = {}
    for item in sent:
        by_kind.setdefault(item.attachment.kind, []).append(item)
    expected = {kind: sum(i.expected_tokens for i in items) for kind, items in by_kind.items()}
    dropped: list[str] = []

    details = usage.raw.get("prompt_tokens_details")
    reports_audio = isinstance(details, dict) and "audio_tokens" in details
    non_audio_expected = sum(v for k, v in expected.items() if k != "audio")
    if "audio" in expected and reports_audio and usage.prompt_audio_tokens == 0:
        # Some relays fold audio into prompt_tokens; only a prompt too small to
        # hold the audio as well is evidence of a drop.
        if usage.prompt_tokens < text_tokens + non_audio_expected + expected["audio"] / 2:
            dropped.append("audio")

    # The rates are Gemini's; other vendors count images differently (Claude's
    # tiny image costs a few tokens), so the count test is for Gemini models.
    visual = [k for k in ("image", "video", "pdf") if k in expected]
    if visual and "gemini" in message.model.model_id.lower():
        counted = usage.prompt_tokens - text_tokens - usage.prompt_audio_tokens
        total = sum(expected[k] for k in visual)
        shortfall = total - counted
        if shortfall >= max(100, total / 4):
            subsets = itertools.chain.from_iterable(
                itertools.combinations(visual, n) for n in range(len(visual) + 1)
            )
            best = min(subsets, key=lambda s: abs(sum(expected[k] for k in s) - counted))
            dropped.extend(k for k in visual if k not in best)

    warnings = []
    for kind in dropped:
        names = ", ".join(f"“{i.attachment.original_name}”" for i in by_kind[kind])
        warnings.append(
            f"The relay seems to have dropped {KIND_WORDS[kind]} ({names}) without an error: "
            f"the usage it reported has no tokens for it, so the model probably never saw it. "
            f"Likely cause: {_likely_cause(relay.dialect, kind)}. Try setting the relay's "
            f"dialect to {dialect_name(_suggested_dialect(relay.dialect, kind))} and retry."
        )
    return warnings
