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
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from conversations.models import Relay
from conversations.relays import probe


def _no_price(model_id: str, usage: dict | None) -> None:
    return None


class ModelProbeAdminMixin:
    """The model list's Probe: only the models chosen (billing sets the pricer)."""

    probe_pricer = staticmethod(_no_price)

    @admin.action(description=_("Probe these models: a tiny file of each kind they claim, "
                                "through each dialect"))
    def probe_models(self, request, queryset) -> None:
        """On the model list: only the models chosen, one probe per relay."""
        chosen: dict[int, list[int]] = {}
        for relay_id, model_id in queryset.values_list("relay_id", "pk"):
            chosen.setdefault(relay_id, []).append(model_id)
        names = dict(Relay.objects.filter(pk__in=chosen).values_list("pk", "name"))
        for relay_id, model_ids in chosen.items():
            probe.start_in_background(relay_id=relay_id, model_ids=model_ids,
                                      price=type(self).probe_pricer)
            self.message_user(request, ngettext(
                "%(relay)s: probe of %(count)s model started. Its report appears on the "
                "relay's page in a minute or so; nothing changes until you apply it.",
                "%(relay)s: probe of %(count)s models started. Its report appears on the "
                "relay's page in a minute or so; nothing changes until you apply it.",
                len(model_ids)) % {"relay": names.get(relay_id, relay_id),
                                   "count": len(model_ids)})


class ProbeAdminMixin:
    probe_pricer = staticmethod(_no_price)

    @admin.action(description=_("Probe: send a tiny file of each kind through each dialect"))
    def probe_relays(self, request, queryset) -> None:
        for relay in queryset:
            probe.start_in_background(relay_id=relay.pk, model_ids=None,
                                      price=type(self).probe_pricer)
            self.message_user(request, gettext(
                "%(relay)s: probe started. Its report appears on the relay's page in a minute "
                "or so; nothing changes until you apply it.") % {"relay": relay.name})

    @admin.action(description=_("Apply the last probe's proposed dialect and flags"))
    def apply_last_probe(self, request, queryset) -> None:
        for relay in queryset:
            last = relay.probes.first()
            if last is None:
                self.message_user(request, gettext("%(relay)s: not probed yet.")
                                  % {"relay": relay.name}, messages.WARNING)
                continue
            changes = probe.apply_probe(probe=last)
            if changes:
                text = gettext("%(relay)s: %(changes)s") % {
                    "relay": relay.name, "changes": "; ".join(changes)}
            else:
                text = gettext("%(relay)s: already as the probe proposed.") % {
                    "relay": relay.name}
            self.message_user(request, text)

    @admin.display(description=_("Set up"))
    def last_probe(self, relay: Relay) -> str:
        if not relay.pk:
            return gettext("Save the relay first; then import its models and probe it from "
                           "here.")
        # Buttons of the change form posting (with its CSRF token) to the views below.
        urls = [reverse(f"admin:conversations_relay_{name}", args=[relay.pk])
                for name in ("import", "probe", "apply")]
        buttons = format_html(
            '<p class="relay-setup">'
            '<button type="submit" formaction="{}" id="relay-import">{}</button> '
            '<button type="submit" formaction="{}" id="relay-probe">{}</button> '
            '<button type="submit" formaction="{}" id="relay-apply">{}</button></p>',
            urls[0], gettext("Import models"), urls[1], gettext("Probe"),
            urls[2], gettext("Apply the last probe's proposal"))
        last = relay.probes.first()
        if last is None:
            return format_html("{}<p>{}</p>", buttons, gettext("Not probed yet."))
        report = probe.ProbeReport.from_json(last.report)
        if last.applied_at:
            status = gettext("applied %(when)s") % {
                "when": formats.date_format(timezone.localtime(last.applied_at),
                                            "DATETIME_FORMAT")}
        else:
            status = gettext("not applied")
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
