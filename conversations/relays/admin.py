"""The admin's relay and model pages, before billing adds its fields (billing/admin.py).

Registered by conversations/admin.py. The key is write-only: no page renders it.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from conversations.infra.concurrency import outside_limit
from conversations.models import ChatModel, Relay
from conversations.relays import setup
from conversations.relays.addresses import RelayAddressError, check_relay_url, host_of
from conversations.relays.catalogue import fill_added_by_hand
from conversations.relays.client import RelayClient
from conversations.relays.errors import RelayError
from conversations.relays.probe_admin import ModelProbeAdminMixin, ProbeAdminMixin

# The admin's labels of the relay's and model's fields. The models carry no
# verbose_name (adding one would be a migration), so the admin labels its forms
# and columns itself, in the staff member's language. The English is Django's
# own label for each field (pages and tests find the fields by it), but for
# the case of "Base URL" and "API key".
FIELD_LABELS = {
    "name": _("Name"),
    "base_url": _("Base URL"),
    "api_key": _("API key"),
    "dialect": _("Dialect"),
    "is_simulated": _("Is simulated"),
    "is_active": _("Is active"),
    "currency": _("Currency"),
    "exchange_rate": _("Exchange rate"),
    "billing_mode": _("Billing mode"),
    "price_multiplier": _("Price multiplier"),
    "group_ratio": _("Group ratio"),
    "relay": _("Relay"),
    "model_id": _("Model id"),
    "display_name": _("Display name"),
    "accepts_text": _("Accepts text"),
    "accepts_image": _("Accepts image"),
    "accepts_audio": _("Accepts audio"),
    "accepts_video": _("Accepts video"),
    "accepts_pdf": _("Accepts pdf"),
    "outputs_images": _("Outputs images"),
    "context_window": _("Context window"),
    "capabilities_source": _("Capabilities source"),
    "price_input": _("Price input"),
    "price_cached_input": _("Price cached input"),
    "price_audio_input": _("Price audio input"),
    "price_output": _("Price output"),
    "price_image_output": _("Price image output"),
    "price_per_request": _("Price per request"),
    "model_ratio": _("Model ratio"),
    "completion_ratio": _("Completion ratio"),
    "cache_ratio": _("Cache ratio"),
    "audio_price_per_m": _("Audio price per m"),
    "price_model_ref": _("Price model ref"),
    # usage, budgets, conversations and messages (billing/admin.py, conversations/admin.py)
    "owner": _("Owner"),
    "user": _("User"),
    "model": _("Model"),
    "model_name": _("Model name"),
    "conversation": _("Conversation"),
    "prompt_tokens": _("Prompt tokens"),
    "completion_tokens": _("Completion tokens"),
    "estimated": _("Estimated"),
    "monthly_limit": _("Monthly limit"),
    "total_cost": _("Total cost"),
    "role": _("Role"),
    "status": _("Status"),
    "created_at": _("Created at"),
    "updated_at": _("Updated at"),
}


class FieldLabelsMixin:
    """Labels every form field named in FIELD_LABELS (admins and inlines)."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if field is not None and db_field.name in FIELD_LABELS:
            field.label = FIELD_LABELS[db_field.name]
        return field


def column(name: str, *, boolean: bool = False):
    """A list column for the field `name`, headed by its label (FIELD_LABELS)."""

    def show(obj):
        display = getattr(obj, f"get_{name}_display", None)
        return display() if display is not None else getattr(obj, name)

    show.__name__ = name
    return admin.display(description=FIELD_LABELS[name], ordering=name, boolean=boolean)(show)


class RelayForm(forms.ModelForm):
    # The key is write-only: the admin never renders the stored value.
    base_url = forms.URLField(
        max_length=500, assume_scheme="https",
        label=_("Base URL"), help_text=_("Without /v1, e.g. https://api.example.com"),
    )
    api_key = forms.CharField(
        required=False, label=_("API key"),
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("The relay's Bearer key. On a saved relay, leave empty to keep the stored "
                    "key."),
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
            self.add_error("api_key", gettext("Give the relay's key (its Bearer token, sk-…)."))
        elif not cleaned.get("api_key"):
            if url and host_of(url) != host_of(self.instance.base_url):
                # The stored key belongs to the old host; it is never sent to a new one.
                self.add_error("api_key",
                               gettext("The address's host changed: enter the key again."))
            else:
                cleaned["api_key"] = self.instance.api_key
        return cleaned


class ChatModelInline(FieldLabelsMixin, admin.TabularInline):
    model = ChatModel
    extra = 0
    fields = ["model_id", "display_name", "accepts_image", "accepts_audio", "accepts_video",
              "accepts_pdf", "outputs_images", "context_window", "is_active"]


class RelayAdmin(FieldLabelsMixin, ProbeAdminMixin, admin.ModelAdmin):
    form = RelayForm
    list_display = [column("name"), column("base_url"), column("dialect"),
                    column("is_simulated", boolean=True), column("is_active", boolean=True)]
    list_display_links = list_display[:1]
    inlines = [ChatModelInline]
    actions = ["import_models", "probe_relays", "apply_last_probe"]
    readonly_fields = ["last_probe"]

    @admin.action(description=_("Import models from the relay's /v1/models"))
    def import_models(self, request, queryset) -> None:
        for relay in queryset:
            try:
                with outside_limit():  # the relay may take seconds to answer
                    entries = async_to_sync(_list_models)(relay)
            except RelayError as exc:
                self.message_user(request, gettext("%(relay)s: %(error)s")
                                  % {"relay": relay.name, "error": exc.message}, messages.ERROR)
                continue
            model_ids = [str(entry["id"]) for entry in entries]
            created = setup.import_models(
                relay=relay, model_ids=model_ids,
                listed={str(entry["id"]): entry for entry in entries},
            )
            self.message_user(request, ngettext(
                "%(relay)s: %(count)s model listed, %(new)s new.",
                "%(relay)s: %(count)s models listed, %(new)s new.", len(model_ids),
            ) % {"relay": relay.name, "count": len(model_ids), "new": len(created)})


    def save_formset(self, request, form, formset, change) -> None:
        for inline_form in formset.forms:
            if isinstance(inline_form.instance, ChatModel) and not inline_form.instance.pk:
                fill_added_by_hand(inline_form.instance, changed=inline_form.changed_data)
        super().save_formset(request, form, formset, change)


async def _list_models(relay: Relay) -> list[dict]:
    async with RelayClient(setup.relay_target(relay), max_retries=1) as client:
        return await client.list_model_entries()


class ChatModelAdmin(FieldLabelsMixin, ModelProbeAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", column("model_id"), column("relay"),
                    *(column(name, boolean=True) for name in (
                        "accepts_image", "accepts_audio", "accepts_video", "accepts_pdf",
                        "outputs_images", "is_active"))]
    list_filter = ["relay", "is_active"]
    search_fields = ["model_id", "display_name"]
    actions = ["probe_models"]

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            fill_added_by_hand(obj, changed=form.changed_data)
        super().save_model(request, obj, form, change)
