"""Pictures an image model made → checked, stored attachments of the reply.

A picture arrives decoded in a temporary file (relays/pictures.py). It is
checked from its bytes as an upload is (the type sniffed, a full decode), stored
through the storage API as a `generated` attachment of the reply, and compared
with the aspect ratio that was asked for: new-api's Gemini route is known to
return 1:1 whatever was asked (new-api #2470), and only the picture tells.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from fractions import Fraction

from django.core.files import File
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext

from conversations.media import probe
from conversations.media.formats import EXTENSIONS
from conversations.media.uploads import MAX_PIXELS
from conversations.models import Attachment, Message
from conversations.relays.pictures import Picture, Pictures, TextCutter

# Within this relative difference, a picture has the ratio asked for (Gemini's
# sizes are rounded to multiples of 8 or 16 pixels).
ASPECT_TOLERANCE = 0.03
PICTURE_MIMES = {"image/png", "image/jpeg", "image/webp"}


def store_pictures(
    *, message: Message, owner_id: int, pictures: list[Picture], requested_ratio: str = "",
    name_stem: str = "",
) -> tuple[list[Attachment], list[str]]:
    """Store each good picture as a generated attachment; (attachments, warnings).

    The temporary files are closed whatever happens.
    """
    stored: list[Attachment] = []
    warnings: list[str] = []
    stem = slugify(name_stem)[:40] or "picture"
    try:
        for picture in pictures:
            problem = _problem(picture)
            if problem:
                warnings.append(gettext("The relay sent picture %(number)s, but %(problem)s; "
                                        "it was left out.")
                                % {"number": picture.number, "problem": problem})
                continue
            attachment = _store(picture, message=message, owner_id=owner_id, stem=stem)
            if attachment is None:
                warnings.append(gettext("The relay sent picture %(number)s, but it is damaged "
                                        "or not a picture; it was left out.")
                                % {"number": picture.number})
                continue
            stored.append(attachment)
            warning = aspect_warning(requested_ratio, attachment.width, attachment.height)
            if warning:
                warnings.append(warning)
    finally:
        for picture in pictures:
            picture.discard()
    return stored, warnings


def _problem(picture: Picture) -> str:
    if picture.too_large:
        return gettext("it is larger than the app takes")
    if picture.broken or picture.size == 0:
        return gettext("its data is damaged")
    return ""


def _store(picture: Picture, *, message: Message, owner_id: int, stem: str) -> Attachment | None:
    picture.file.seek(0)
    mime = probe.sniff(picture.file.read(probe.HEAD_BYTES))
    if mime not in PICTURE_MIMES:
        return None
    details = probe.image_details(picture.file, mime, max_pixels=MAX_PIXELS)
    if details.problem:
        return None
    picture.file.seek(0)
    digest = hashlib.sha256()
    for chunk in iter(lambda: picture.file.read(1024 * 1024), b""):
        digest.update(chunk)
    attachment = Attachment(
        uuid=uuid.uuid4(), message=message, owner_id=owner_id, kind=Attachment.Kind.IMAGE,
        mime=mime, size=picture.size, sha256=digest.hexdigest(),
        original_name=f"{stem}-{message.pk}-{picture.number}.{EXTENSIONS[mime]}",
        width=details.width, height=details.height, generated=True,
    )
    picture.file.seek(0)
    attachment.file.save(attachment.original_name, File(picture.file), save=False)
    attachment.save()
    return attachment


def ratio_words(width: int, height: int) -> str:
    ratio = Fraction(width, height).limit_denominator(32)
    return f"{ratio.numerator}:{ratio.denominator}"


def aspect_warning(requested: str, width: int | None, height: int | None) -> str:
    """A warning when the picture's real shape is not the aspect ratio asked for."""
    if not requested or not width or not height or ":" not in requested:
        return ""
    wide, _, high = requested.partition(":")
    try:
        wanted = int(wide) / int(high)
    except (ValueError, ZeroDivisionError):
        return ""
    if abs(width / height - wanted) / wanted <= ASPECT_TOLERANCE:
        return ""
    return gettext(
        "You asked for %(requested)s, but the relay returned a %(width)s×%(height)s picture "
        "(%(ratio)s): it ignored the aspect ratio. Some relays' Gemini routes do; try another "
        "relay or model.") % {"requested": requested, "width": width, "height": height,
                              "ratio": ratio_words(width, height)}


def extract_from_text(*, message: Message) -> int:
    """Move the pictures an earlier version left as base64 in a reply's text into
    files (the text keeps `picture:N`); how many were stored. For replies saved
    before pictures were files; `manage.py extract_pictures` runs it."""
    if "data:image/" not in message.text:
        return 0
    pictures = Pictures()
    cutter = TextCutter(pictures)
    text = cutter.feed(message.text) + cutter.flush()
    found = pictures.close_all()
    offset = len(message.generated_pictures)
    for picture in found:
        picture.number += offset
    text = _renumber(text, offset)
    stored, _ = store_pictures(
        message=message, owner_id=message.conversation.owner_id, pictures=found,
        name_stem=message.conversation.title,
    )
    message.text = text
    message.updated_at = timezone.now()  # pages reconnecting see it changed (catch_up_stamp)
    message.save(update_fields=["text", "updated_at"])
    return len(stored)


def _renumber(text: str, offset: int) -> str:
    if not offset:
        return text
    return re.sub(r"\(picture:(\d+)\)", lambda m: f"(picture:{int(m[1]) + offset})", text)
