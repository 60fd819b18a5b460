"""The admin's relay and model pages, before billing adds its fields (billing/admin.py).

Registered by conversations/admin.py. The key is write-only: no page renders it.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages

from conversations.infra.concurrency import outside_limit
from conversations.models import ChatModel, Relay
from conversations.relays import setup
from conversations.relays.addresses import RelayAddressError, check_relay_url, host_of
from conversations.relays.catalogue import fill_added_by_hand
from conversations.relays.client import RelayClient
from conversations.relays.errors import RelayError
from conversations.relays.probe_admin import ProbeAdminMixin


class RelayForm(forms.ModelForm):
    # The key is write-only: the admin never renders the stored value.
    base_url = forms.URLField(
        max_length=500, assume_scheme="https",
        help_text="Without /v1, e.g. https://api.example.com",
    )
    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="The relay's Bearer key. On a saved relay, leave empty to keep the stored key.",
    )

    class Meta:
        model = Relay
        fields = [
            "name", "base_url", "api_key", "dialect", "is_simulated", "is_active", "currency",
            "exchange_rate", "billing_mode", "price_multiplier", "group_ratio",
        ]

    def clean(self) -> dict:
        cleaned = super().clean()
        url = cleaned.get("base_url")
        if url and not cleaned.get("is_simulated"):  # the simulator is reached at its mount
            try:
                check_relay_url(url)
            except RelayAddressError as exc:
                self.add_error("base_url", str(exc))
        if not cleaned.get("api_key") and not self.instance.pk:
            self.add_error("api_key", "Give the relay's key (its Bearer token, sk-…).")
        elif not cleaned.get("api_key"):
            if url and host_of(url) != host_of(self.instance.base_url):
                # The stored key belongs to the old host; it is never sent to a new one.
                self.add_error("api_key", "The address's host changed: enter the key again.")
            else:
                cleaned["api_key"] = self.instance.api_key
        return cleaned


class ChatModelInline(admin.TabularInline):
    model = ChatModel
    extra = 0
    fields = ["model_id", "display_name", "accepts_image", "accepts_audio", "accepts_video",
              "accepts_pdf", "outputs_images", "context_window", "is_active"]


class RelayAdmin(ProbeAdminMixin, admin.ModelAdmin):
    form = RelayForm
    list_display = ["name", "base_url", "dialect", "is_simulated", "is_active"]
    inlines = [ChatModelInline]
    actions = ["import_models", "probe_relays", "apply_last_probe"]
    readonly_fields = ["last_probe"]

    @admin.action(description="Import models from the relay's /v1/models")
    def import_models(self, request, queryset) -> None:
        for relay in queryset:
            try:
                with outside_limit():  # the relay may take seconds to answer
                    entries = async_to_sync(_list_models)(relay)
            except RelayError as exc:
                self.message_user(request, f"{relay.name}: {exc.message}", messages.ERROR)
                continue
            model_ids = [str(entry["id"]) for entry in entries]
            created = setup.import_models(
                relay=relay, model_ids=model_ids,
                listed={str(entry["id"]): entry for entry in entries},
            )
            self.message_user(
                request, f"{relay.name}: {len(model_ids)} models listed, {len(created)} new."
            )


    def save_formset(self, request, form, formset, change) -> None:
        for inline_form in formset.forms:
            if isinstance(inline_form.instance, ChatModel) and not inline_form.instance.pk:
                fill_added_by_hand(inline_form.instance, changed=inline_form.changed_data)
        super().save_formset(request, form, formset, change)


async def _list_models(relay: Relay) -> list[dict]:
    async with RelayClient(setup.relay_target(relay), max_retries=1) as client:
        return await client.list_model_entries()


class ChatModelAdmin(admin.ModelAdmin):
    list_display = ["__str__", "model_id", "relay", "accepts_image", "accepts_audio",
                    "accepts_video", "accepts_pdf", "outputs_images", "is_active"]
    list_filter = ["relay", "is_active"]
    search_fields = ["model_id", "display_name"]

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            fill_added_by_hand(obj, changed=form.changed_data)
        super().save_model(request, obj, form, change)
