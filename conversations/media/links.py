"""Links to stored files: the owner's page link, and signed links for relays.

Signed links need no session, expire, and name one file; media/views.py
checks them.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core import signing
from django.urls import reverse

from conversations.media.formats import EXTENSIONS
from conversations.models import Attachment

SIGNING_SALT = "conversations.attachment-link"


def attachment_url(attachment: Attachment, *, download: bool = False) -> str:
    url = reverse("attachment", kwargs={"uuid": attachment.uuid})
    return f"{url}?download=1" if download else url


def signed_url(attachment: Attachment, *, ttl: int | None = None) -> str:
    """An absolute link a relay can fetch without a session, valid for `ttl` seconds."""


    expires = int(time.time()) + (settings.MEDIA_LINK_TTL if ttl is None else ttl)
    token = signing.dumps({"a": attachment.uuid.hex, "e": expires}, salt=SIGNING_SALT)
    # The name's extension helps relays that guess the type from the URL.
    name = f"file.{EXTENSIONS.get(attachment.mime, 'bin')}"
    path_ = reverse("attachment_signed", kwargs={"token": token, "name": name})
    return settings.PUBLIC_BASE_URL.rstrip("/") + path_
