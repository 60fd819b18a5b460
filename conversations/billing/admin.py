"""Admin for prices, ratios, budgets and usage (registered by conversations/admin.py).

Extends the shared Relay and ChatModel admins rather than replacing them,
so what other parts of the app put there stays.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.core.validators import MinValueValidator
from django.db.models import QuerySet
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from conversations.billing.budgets import budget_status
from conversations.billing.money import format_money
from conversations.billing.prices import (
    SOURCE_LABELS,
    TokenCounts,
    UnknownPrice,
    base_model_ref,
    has_override,
    list_price,
    list_usd,
    recompute_costs,
)
from conversations.billing.ratios import import_new_api_ratios
from conversations.infra.concurrency import outside_limit
from conversations.models import Budget, ChatModel, Relay, Usage
from conversations.relays import setup
from conversations.relays.admin import ChatModelAdmin, FieldLabelsMixin, RelayAdmin, column
from conversations.relays.client import RelayClient
from conversations.relays.errors import RelayError

PRICE_HELP = {
    "currency": _("The money you pay the relay in (e.g. USD, CNY). Costs are stored in it."),
    "exchange_rate": _("What one relay dollar costs you in that currency (e.g. 6.5 when the "
    "relay sells $1 of credit for ¥6.5; 1 when you pay list dollars)."),
    "billing_mode": _("List price: the vendor's list price × the multiplier. new-api ratios: "
    "what a new-api relay really charges (import them with the action on the relay list)."),
    "price_multiplier": _("List mode only: the relay's mark-up on list prices (1 = list price)."),
    "group_ratio": _("new-api mode only: your account group's ratio on the relay."),
    "price_input": _("USD per million input tokens. Any price set here wins over the list "
    "price; empty parts keep the list price. The relay's multiplier or group ratio and "
    "exchange rate still apply."),
    "price_cached_input": _("USD per million cached input tokens (empty: the input price)."),
    "price_audio_input": _("USD per million audio input tokens (empty: the input price)."),
    "price_output": _("USD per million output tokens, reasoning included."),
    "price_image_output": _("USD per million generated-image tokens (empty: the output price)."),
    "price_per_request": _("USD per request, for models billed by the call."),
    "model_ratio": _("new-api: USD per million input tokens ÷ 2."),
    "completion_ratio": _("new-api: output price ÷ input price (empty: 1)."),
    "cache_ratio": _("new-api: cached input price ÷ input price (empty: 1)."),
    "audio_price_per_m": _("new-api: USD per million audio input tokens, for models the relay "
    "bills audio apart (Gemini). Empty: audio counts as ordinary input."),
}


# How the list price's parts are named (genai-prices' field names).
PRICE_PART_WORDS = {
    "input": _("input"), "cached_input": _("cached input"), "audio_input": _("audio input"),
    "output": _("output"), "image_output": _("image output"),
}


# Every number staff type for money: a negative one is a typo, never a price.
NON_NEGATIVE = {name for name in PRICE_HELP if name not in ("currency", "billing_mode")}


class PriceHelpMixin:
    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if field is not None and db_field.name in PRICE_HELP:
            field.help_text = PRICE_HELP[db_field.name]
        if field is not None and db_field.name in NON_NEGATIVE:
            field.validators.append(MinValueValidator(
                0, message=_("A price, rate or ratio cannot be negative.")))
            field.widget.attrs["min"] = "0"
        return field


# -- relays -----------------------------------------------------------------------


class PricedRelayAdmin(PriceHelpMixin, RelayAdmin):
    list_display = [*RelayAdmin.list_display, column("billing_mode"), column("currency"),
                    column("exchange_rate")]
    actions = [*RelayAdmin.actions, "import_pricing_ratios"]
    probe_pricer = staticmethod(list_usd)  # what each probe request cost

    @admin.action(description=_("Import new-api ratios from the relay's /api/pricing"))
    def import_pricing_ratios(self, request, queryset: QuerySet[Relay]) -> None:
        for relay in queryset:
            try:
                with outside_limit():  # the relay may take seconds to answer
                    payload = async_to_sync(_fetch_pricing)(relay)
                result = import_new_api_ratios(relay=relay, payload=payload)
            except RelayError as exc:
                self.message_user(request, gettext("%(relay)s: %(error)s")
                                  % {"relay": relay.name, "error": exc.message}, messages.ERROR)
                continue
            except ValueError as exc:
                self.message_user(request, gettext("%(relay)s: %(error)s")
                                  % {"relay": relay.name, "error": exc}, messages.ERROR)
                continue
            count = len(result.updated)
            values = {"relay": relay.name, "count": count, "ratio": result.group_ratio}
            if result.group_ratio:
                text = ngettext(
                    "%(relay)s: ratios imported for %(count)s model, group ratio %(ratio)s; "
                    "billing switched to new-api ratios.",
                    "%(relay)s: ratios imported for %(count)s models, group ratio %(ratio)s; "
                    "billing switched to new-api ratios.", count) % values
            else:
                text = ngettext(
                    "%(relay)s: ratios imported for %(count)s model; billing switched to "
                    "new-api ratios.",
                    "%(relay)s: ratios imported for %(count)s models; billing switched to "
                    "new-api ratios.", count) % values
            if result.not_listed:
                text = gettext("%(done)s Not priced by the relay: %(models)s.") % {
                    "done": text, "models": ", ".join(result.not_listed)}
            self.message_user(
                request, text, messages.WARNING if result.not_listed else messages.SUCCESS)


async def _fetch_pricing(relay: Relay):
    async with RelayClient(setup.relay_target(relay), max_retries=1) as client:
        return await client.fetch_pricing()


# -- models ---------------------------------------------------------------------------


class PricedChatModelAdmin(PriceHelpMixin, ChatModelAdmin):
    list_display = [*ChatModelAdmin.list_display, "price_summary"]
    probe_pricer = staticmethod(list_usd)  # what each probe request cost
    list_select_related = ["relay"]
    readonly_fields = [*getattr(ChatModelAdmin, "readonly_fields", []),
                       "list_price_info"]

    @admin.display(description=_("Price"))
    def price_summary(self, model: ChatModel) -> str:
        if has_override(model):
            return gettext("your price")
        if model.relay.billing_mode == "new_api" and model.model_ratio is not None:
            return gettext("relay ratios")
        ref = base_model_ref(model.price_model_ref or model.model_id)
        try:
            list_price(TokenCounts(1, 1), ref)
        except UnknownPrice:
            return gettext("unknown — set one")
        return gettext("list price")

    @admin.display(description=_("List price (genai-prices)"))
    def list_price_info(self, model: ChatModel) -> str:
        if model.pk is None:
            return "—"
        ref = base_model_ref(model.price_model_ref or model.model_id)
        try:
            found = list_price(TokenCounts(1, 1), ref)
        except UnknownPrice as exc:
            return gettext("No list price for %(model)s (%(reason)s). Set a price or a name to "
                           "look up.") % {"model": repr(ref), "reason": exc}
        parts = ", ".join(
            f"{PRICE_PART_WORDS.get(name, name.replace('_', ' '))!s} ${value}"
            for name, value in found.per_million.items() if value is not None
        )
        return gettext("%(provider)s/%(model)s: %(prices)s per million tokens") % {
            "provider": found.provider, "model": found.model, "prices": parts}


# -- usage and budgets ----------------------------------------------------------------------


class UsageAdmin(admin.ModelAdmin):
    list_display = [column("created_at"), column("owner"), column("model_name"), column("relay"),
                    column("prompt_tokens"), column("completion_tokens"), "cost_display",
                    "price_source_label", column("estimated", boolean=True)]
    list_filter = ["price_source", "estimated", "currency", "relay"]
    date_hierarchy = "created_at"
    search_fields = ["model_name", "owner__username"]
    raw_id_fields = ["message", "owner", "conversation", "model", "relay"]
    list_select_related = ["owner", "relay"]
    actions = ["recompute_selected_costs"]
    show_full_result_count = False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a cost is frozen; recompute it on purpose with the action

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description=_("Cost"), ordering="cost")
    def cost_display(self, usage: Usage) -> str:
        label = SOURCE_LABELS.get(usage.price_source, usage.price_source)
        if usage.cost is None:
            return format_html('<span title="{}">{}</span>', label, gettext("price unknown"))
        return format_html('<span title="{}">{}</span>', label,
                           format_money(usage.cost, usage.currency))

    @admin.display(description=_("Price source"), ordering="price_source")
    def price_source_label(self, usage: Usage) -> str:
        return SOURCE_LABELS.get(usage.price_source, usage.price_source)

    def has_recompute_permission(self, request) -> bool:
        return request.user.has_perm("conversations.change_usage")

    @admin.action(description=_("Recompute the cost of the selected replies at today's prices"),
                  permissions=["recompute"])
    def recompute_selected_costs(self, request, queryset: QuerySet[Usage]) -> None:
        result = recompute_costs(usages=queryset)
        self.message_user(
            request,
            # One wording for any count (the tests read "Recomputed 1 replies").
            gettext("Recomputed %(rows)s replies at today's prices; %(changed)s changed. "
                    "Conversation totals were adjusted to match.")
            % {"rows": result.rows, "changed": result.changed},
        )


class BudgetAdmin(FieldLabelsMixin, admin.ModelAdmin):
    list_display = [column("user"), column("monthly_limit"), column("currency"),
                    "spent_this_month"]
    autocomplete_fields = ["user"]  # picked by name, not by raw id
    search_fields = ["user__username"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "currency":
            field.help_text = _("Only spending in this currency counts against the budget; "
                                "use the currency of the relays this user works with.")
        if db_field.name == "monthly_limit":
            field.help_text = _("Warned at 80%; at 100% new messages are refused until this "
                                "is raised.")
        return field

    @admin.display(description=_("Spent this month"))
    def spent_this_month(self, budget: Budget) -> str:
        status = budget_status(user=budget.user, budget=budget)
        if status is None:
            return "—"
        return gettext("%(amount)s (%(percent)s%%)") % {
            "amount": format_money(status.committed, status.currency), "percent": status.percent}
