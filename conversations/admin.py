from __future__ import annotations

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages

from . import services
from .concurrency import outside_limit
from .models import Attachment, Budget, ChatModel, Conversation, Message, Relay, Usage
from .relay import RelayClient, RelayError


class RelayForm(forms.ModelForm):
    # The key is write-only: the admin never renders the stored value.
    base_url = forms.URLField(
        max_length=500, assume_scheme="https",
        help_text="Without /v1, e.g. https://api.example.com",
    )
    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to keep the stored key.",
    )

    class Meta:
        model = Relay
        fields = [
            "name", "base_url", "api_key", "dialect", "is_simulated", "is_active", "currency",
            "exchange_rate", "billing_mode", "price_multiplier", "group_ratio",
        ]

    def clean_api_key(self) -> str:
        key = self.cleaned_data.get("api_key", "")
        if not key and self.instance.pk:
            return self.instance.api_key
        return key


class ChatModelInline(admin.TabularInline):
    model = ChatModel
    extra = 0
    fields = ["model_id", "display_name", "accepts_image", "accepts_audio", "accepts_video",
              "accepts_pdf", "outputs_images", "is_active"]


@admin.register(Relay)
class RelayAdmin(admin.ModelAdmin):
    form = RelayForm
    list_display = ["name", "base_url", "dialect", "is_simulated", "is_active"]
    inlines = [ChatModelInline]
    actions = ["import_models"]

    @admin.action(description="Import models from the relay's /v1/models")
    def import_models(self, request, queryset) -> None:
        for relay in queryset:
            try:
                with outside_limit():  # the relay may take seconds to answer
                    model_ids = async_to_sync(_list_models)(relay)
            except RelayError as exc:
                self.message_user(request, f"{relay.name}: {exc.message}", messages.ERROR)
                continue
            created = services.import_models(relay=relay, model_ids=model_ids)
            self.message_user(
                request, f"{relay.name}: {len(model_ids)} models listed, {len(created)} new."
            )


async def _list_models(relay: Relay) -> list[str]:
    async with RelayClient(services.relay_target(relay), max_retries=1) as client:
        return await client.list_models()


@admin.register(ChatModel)
class ChatModelAdmin(admin.ModelAdmin):
    list_display = ["__str__", "model_id", "relay", "accepts_image", "accepts_audio",
                    "accepts_video", "accepts_pdf", "outputs_images", "is_active"]
    list_filter = ["relay", "is_active"]
    search_fields = ["model_id", "display_name"]


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "model", "total_cost", "updated_at"]
    list_filter = ["owner"]
    raw_id_fields = ["owner"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["pk", "conversation", "role", "status", "created_at"]
    list_filter = ["status", "role"]
    raw_id_fields = ["conversation"]


admin.site.register(Attachment)
admin.site.register(Usage)
admin.site.register(Budget)

from . import pricing_admin  # noqa: E402,F401 - prices, ratios, budgets, recompute
