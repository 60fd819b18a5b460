"""Every admin page, registered in one place: relays and models with their prices
(relays/admin.py, extended by billing/admin.py), conversations, messages, files,
usage and budgets."""

from __future__ import annotations

from django.contrib import admin

from conversations.billing.admin import (
    BudgetAdmin,
    PricedChatModelAdmin,
    PricedRelayAdmin,
    UsageAdmin,
)
from conversations.models import Attachment, Budget, ChatModel, Conversation, Message, Relay, Usage
from conversations.relays.admin import FieldLabelsMixin, column

admin.site.register(Relay, PricedRelayAdmin)
admin.site.register(ChatModel, PricedChatModelAdmin)
admin.site.register(Usage, UsageAdmin)
admin.site.register(Budget, BudgetAdmin)
admin.site.register(Attachment)


@admin.register(Conversation)
class ConversationAdmin(FieldLabelsMixin, admin.ModelAdmin):
    list_display = ["__str__", column("owner"), column("model"), column("total_cost"),
                    column("updated_at")]
    list_filter = ["owner"]
    raw_id_fields = ["owner"]


@admin.register(Message)
class MessageAdmin(FieldLabelsMixin, admin.ModelAdmin):
    list_display = ["pk", column("conversation"), column("role"), column("status"),
                    column("created_at")]
    list_filter = ["status", "role"]
    raw_id_fields = ["conversation"]

