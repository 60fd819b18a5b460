"""`manage.py probe_relay NAME [--model ID …] [--apply]`: probe a relay and print the report."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from conversations.billing.prices import list_usd
from conversations.models import Relay
from conversations.relays.probe import ProbeReport, apply_probe, run_probe


class Command(BaseCommand):
    help = "Send tiny files of each kind through each dialect and report what the relay does."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="the relay's name")
        parser.add_argument("--model", action="append", default=[],
                            help="a model id to probe (repeat; default: every active model)")
        parser.add_argument("--apply", action="store_true",
                            help="set the proposed dialect and flags afterwards")

    def handle(self, *args, name: str, model: list[str], apply: bool, **options) -> None:
        relay = Relay.objects.filter(name=name).first()
        if relay is None:
            raise CommandError(f"No relay is named “{name}”.")
        models = None
        if model:
            models = list(relay.models.filter(model_id__in=model))
            missing = set(model) - {m.model_id for m in models}
            if missing:
                raise CommandError(f"“{name}” has no model {', '.join(sorted(missing))}.")
        probe = run_probe(relay=relay, models=models, price=list_usd)
        for line in ProbeReport.from_json(probe.report).lines():
            self.stdout.write(line)
        if apply:
            changes = apply_probe(probe=probe)
            self.stdout.write("Applied: " + ("; ".join(changes) or "nothing to change"))
