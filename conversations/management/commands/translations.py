"""Re-extract the interface's strings into the catalogues, compile them, and
list what is left to translate. `--check`: do it in a copy of the project and
fail if any string lacks a Chinese translation (the tests run this)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from conversations.infra import translations

LANGUAGES = ["zh_Hans"]
# Neither the relay simulator (it plays the relay, whose words are not ours) nor
# tests, benches, installed packages or collected static files are extracted.
# Uploaded files (MEDIA_ROOT) are skipped by makemessages itself: a "media"
# pattern here would match any folder of that name, conversations/media too.
IGNORED = [".venv", "staticfiles", "tests", "bench", "conversations/simulator", "build"]
COPIED = ["manage.py", "chatsite", "conversations", "templates", "static"]


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument("--check", action="store_true",
                            help="extract in a copy; fail if anything is untranslated")

    def handle(self, *args, check: bool, **options) -> None:
        root = Path(settings.BASE_DIR)
        if not check:
            self._extract(root)
            translations.compile_catalogues()
            self._report(translations.catalogue_files())
            return
        with tempfile.TemporaryDirectory() as scratch:
            copy = Path(scratch) / "project"
            copy.mkdir()  # manage.py, the first copied, is a file: its folder must exist
            for name in COPIED:
                source = root / name
                if source.is_dir():
                    shutil.copytree(source, copy / name,
                                    ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
                else:
                    shutil.copy2(source, copy / name)
            self._extract(copy)
            missing = self._report(translations.catalogue_files(
                copy / "conversations" / "locale"))
        if missing:
            raise CommandError(f"{missing} string(s) without a translation; run "
                               "`manage.py translations` and fill them in.")

    def _extract(self, root: Path) -> None:
        for domain in ("django", "djangojs"):
            command = [sys.executable, "manage.py", "makemessages", "--domain", domain,
                       "--no-obsolete", "--add-location", "file", "--verbosity", "0"]
            command += [f"--locale={code}" for code in LANGUAGES]
            command += [f"--ignore={pattern}/*" for pattern in IGNORED]
            subprocess.run(command, cwd=root, check=True)

    def _report(self, catalogues: list[Path]) -> int:
        total = 0
        for po in catalogues:
            missing = translations.untranslated(po)
            total += len(missing)
            for line in missing:
                self.stdout.write(f"{po.parent.parent.name}/{po.name}: {line}")
        self.stdout.write(f"{total} untranslated")
        return total
