"""The message catalogues (conversations/locale): kept as .po files in the
repository, compiled to .mo by the app's own start (`serve`, `generate`) and by
the tests, with Babel, so that running the app needs no GNU gettext.

`manage.py translations` re-extracts the strings (Django's makemessages, which
does need GNU gettext) and lists what is left untranslated.
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from django.conf import settings


def catalogue_files(locale_dir: Path | None = None) -> list[Path]:
    root = Path(locale_dir or settings.LOCALE_PATHS[0])
    return sorted(root.glob("*/LC_MESSAGES/*.po"))


def compile_catalogues(locale_dir: Path | None = None) -> int:
    """Compile every .po whose .mo is missing or older; the number compiled."""
    compiled = 0
    for po in catalogue_files(locale_dir):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as source:
            catalogue = read_po(source)
        partial = mo.with_suffix(".mo.tmp")
        with partial.open("wb") as target:
            write_mo(target, catalogue, use_fuzzy=False)
        partial.replace(mo)  # a server starting meanwhile never reads half a file
        compiled += 1
    return compiled


def untranslated(po: Path) -> list[str]:
    """Messages of `po` without a translation, or with one marked fuzzy."""
    with po.open("rb") as source:
        catalogue = read_po(source)
    missing = []
    for message in catalogue:
        if not message.id:
            continue  # the header
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy or not all(strings):
            first = message.id[0] if isinstance(message.id, tuple) else message.id
            places = ", ".join(f"{name}" for name, _ in message.locations[:2])
            missing.append(f"{first!r} ({places or 'no location'})"
                           + (" [fuzzy]" if message.fuzzy else ""))
    return missing
