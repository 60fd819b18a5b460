"""Turn pictures left as base64 in replies' text (saved before pictures were files)
into stored attachments, so their pages, frames and follow-ups carry none."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from conversations.media.generated import extract_from_text
from conversations.models import Message


class Command(BaseCommand):
    help = ("Move pictures an image model left as base64 in replies' text into files of "
            "the reply; the text keeps a short reference. Safe to run again.")

    def handle(self, *args, **options) -> None:
        ids = list(Message.objects.filter(role=Message.Role.ASSISTANT,
                                          text__contains="data:image/")
                   .values_list("pk", flat=True))
        stored = 0
        for pk in ids:
            with transaction.atomic():
                message = (Message.objects.select_for_update(of=("self",))
                           .select_related("conversation").get(pk=pk))
                stored += extract_from_text(message=message)
        self.stdout.write(f"Stored {stored} pictures from {len(ids)} replies.")
