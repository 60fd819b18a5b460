"""What the next message will send, before it is sent: the meter under the composer.

The history on screen counted as prompt.request_sent counts a reply's request
(the same token estimate the cost of a reply falls back on), priced with the
same function that prices a reply (billing.prices.price_usage), against the
model's context window (CONTEXT_WINDOW_TOKENS until the relays' capability
catalogue gives one per model). The message being typed comes on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from conversations.billing.prices import price_usage
from conversations.billing.usage import estimate_usage
from conversations.history.tree import leaf_id
from conversations.models import Conversation, Message, Usage
from conversations.prompt import request_sent


@dataclass(frozen=True)
class ContextMeter:
    tokens: int  # the history the next message carries, system prompt included
    window: int
    cost: Decimal | None  # of those tokens at the model's input price; None: price unknown
    currency: str

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.tokens / self.window)) if self.window else 0


def context_meter(*, conversation: Conversation) -> ContextMeter | None:
    """None without a model (nothing to send to)."""
    model = conversation.model
    if model is None:
        return None
    # The next reply as it would be created: after the last message on screen.
    # Unsaved; request_sent reads only its place in the tree and its model.
    upcoming = Message(conversation=conversation, role=Message.Role.ASSISTANT, model=model,
                       parent_id=leaf_id(conversation))
    sent = request_sent(reply=upcoming, relay=model.relay, before_question=True)
    fields = estimate_usage(upcoming, sent)
    usage = Usage(model=model, relay=model.relay, model_name=model.model_id, **fields)
    price_usage(usage)
    return ContextMeter(tokens=fields["prompt_tokens"], window=settings.CONTEXT_WINDOW_TOKENS,
                        cost=usage.cost, currency=usage.currency)
