"""The relay admin's probe: start one (in the background), read its report on
the relay's page, apply its proposal when staff confirm.

Prices belong to billing, so the cost of each request is worked out by
`probe_pricer`, which billing's relay admin sets; without it costs are unknown.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html

from conversations.models import Relay
from conversations.relays import probe


def _no_price(model_id: str, usage: dict | None) -> None:
    return None


class ProbeAdminMixin:
    probe_pricer = staticmethod(_no_price)

    @admin.action(description="Probe: send a tiny file of each kind through each dialect")
    def probe_relays(self, request, queryset) -> None:
        for relay in queryset:
            probe.start_in_background(relay_id=relay.pk, model_ids=None,
                                      price=type(self).probe_pricer)
            self.message_user(
                request, f"{relay.name}: probe started. Its report appears on the relay's "
                "page in a minute or so; nothing changes until you apply it.")

    @admin.action(description="Apply the last probe's proposed dialect and flags")
    def apply_last_probe(self, request, queryset) -> None:
        for relay in queryset:
            last = relay.probes.first()
            if last is None:
                self.message_user(request, f"{relay.name}: not probed yet.", messages.WARNING)
                continue
            changes = probe.apply_probe(probe=last)
            self.message_user(request, f"{relay.name}: " + (
                "; ".join(changes) if changes else "already as the probe proposed."))

    @admin.display(description="Last probe")
    def last_probe(self, relay: Relay) -> str:
        last = relay.probes.first() if relay.pk else None
        if last is None:
            return "Not probed yet: select the relay in the list and choose “Probe”."
        report = probe.ProbeReport.from_json(last.report)
        status = (f"applied {last.applied_at:%Y-%m-%d %H:%M}" if last.applied_at
                  else "not applied")
        return format_html('<p>{} ({})</p><pre class="probe-report">{}</pre>',
                           last, status, "\n".join(report.lines()))
