"""The relay admin's probe: start one (in the background), read its report on
the relay's page, apply its proposal when staff confirm; and the relay's page's
own buttons for Import models, Probe and Apply (the list actions, for one relay).

Prices belong to billing, so the cost of each request is worked out by
`probe_pricer`, which billing's relay admin sets; without it costs are unknown.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
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

    @admin.display(description="Set up")
    def last_probe(self, relay: Relay) -> str:
        if not relay.pk:
            return "Save the relay first; then import its models and probe it from here."
        # Buttons of the change form posting (with its CSRF token) to the views below.
        buttons = format_html(
            '<p class="relay-setup">'
            '<button type="submit" formaction="{}" id="relay-import">Import models</button> '
            '<button type="submit" formaction="{}" id="relay-probe">Probe</button> '
            '<button type="submit" formaction="{}" id="relay-apply">Apply the last '
            "probe's proposal</button></p>",
            *(reverse(f"admin:conversations_relay_{name}", args=[relay.pk])
              for name in ("import", "probe", "apply")))
        last = relay.probes.first()
        if last is None:
            return format_html("{}<p>Not probed yet.</p>", buttons)
        report = probe.ProbeReport.from_json(last.report)
        status = (f"applied {last.applied_at:%Y-%m-%d %H:%M}" if last.applied_at
                  else "not applied")
        return format_html('{}<p>{} ({})</p><pre class="probe-report">{}</pre>',
                           buttons, last, status, "\n".join(report.lines()))

    def get_urls(self):
        def one_relay(action):
            def view(request, object_id):
                if request.method != "POST":
                    return HttpResponseNotAllowed(["POST"])
                relay = get_object_or_404(Relay, pk=object_id)
                if not self.has_change_permission(request, relay):
                    raise PermissionDenied
                action(self, request, Relay.objects.filter(pk=relay.pk))
                return HttpResponseRedirect(
                    reverse("admin:conversations_relay_change", args=[relay.pk]))
            return self.admin_site.admin_view(view)

        return [
            path("<int:object_id>/import/", one_relay(type(self).import_models),
                 name="conversations_relay_import"),
            path("<int:object_id>/probe/", one_relay(type(self).probe_relays),
                 name="conversations_relay_probe"),
            path("<int:object_id>/apply-probe/", one_relay(type(self).apply_last_probe),
                 name="conversations_relay_apply"),
            *super().get_urls(),
        ]
