"""Copy the database and the stored files into one archive, while the server runs."""

from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from conversations.backups import BackupError, make_backup


class Command(BaseCommand):
    help = "Write a consistent copy of the database and the stored files (a .tar.gz)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("archive", nargs="?",
                            help="where to write it (default: backup-<UTC time>.tar.gz)")

    def handle(self, *args, archive: str | None, **options) -> None:
        path = Path(archive or time.strftime("backup-%Y%m%d-%H%M%S.tar.gz", time.gmtime()))
        try:
            manifest = make_backup(destination=path)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(
            f"Backed up the {manifest['database']} database and {manifest['files']} files "
            f"to {path}. It holds the secret key and every conversation: keep it private."
        ))
