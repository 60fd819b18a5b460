"""Put a backup back: the database, the stored files and the secret key file."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from conversations.backups import BackupError, restore_backup


class Command(BaseCommand):
    help = "Replace the database and stored files with a backup's. Stop the server first."
    requires_system_checks = []

    def add_arguments(self, parser) -> None:
        parser.add_argument("archive")
        parser.add_argument("--yes", action="store_true",
                            help="do not ask before replacing the current data")

    def handle(self, *args, archive: str, yes: bool, **options) -> None:
        path = Path(archive)
        if not path.is_file():
            raise CommandError(f"No backup at {path}.")
        if not yes and input(
            "This replaces the current database and files. Is the server stopped? [y/N] "
        ).strip().lower() not in {"y", "yes"}:
            raise CommandError("Nothing was restored.")
        try:
            manifest = restore_backup(source=path)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(
            f"Restored the backup of {manifest['created']}: the database and "
            f"{manifest['files']} files."
        ))
