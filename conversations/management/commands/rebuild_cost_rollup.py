"""Recount the costs page's daily sums (UsageDay) from every saved reply."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from conversations.billing.rollup import rebuild


class Command(BaseCommand):
    help = (
        "Rebuild the per-day cost sums the costs page reads, from the Usage rows. Needed "
        "after changing TIME_ZONE or editing Usage rows with raw SQL or QuerySet.update()."
    )

    def handle(self, *args, **options) -> None:
        started = time.perf_counter()
        rows = rebuild()
        self.stdout.write(
            f"Rebuilt {rows:,} daily rows in {time.perf_counter() - started:.1f} s."
        )
