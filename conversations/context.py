"""What the next message will send, before it is sent: the meter under the composer.

The history on screen counted as prompt.request_sent counts a reply's request
(the same token estimate the cost of a reply falls back on), priced with the
same function that prices a reply (billing.prices.price_usage), against the
model's context window (prompt.context_window). The message being typed comes
on top. When the history no longer fits, the oldest turns are left out of the
request (prompt.history_view): the meter says how many, and where the model's
view of the conversation begins.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from conversations.billing.prices import price_usage
from conversations.billing.usage import estimate_usage
from conversations.history.tree import leaf_id
from conversations.models import Conversation, Message, Usage
from conversations.prompt import context_window, request_sent


@dataclass(frozen=True)
class ContextMeter:
    tokens: int  # the history the next message carries, system prompt included
    window: int
    cost: Decimal | None  # of those tokens at the model's input price; None: price unknown
    currency: str
    left_out: int = 0  # older messages that no longer fit the window
    starts_at: int | None = None  # the first message the model sees, when some are left out

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
    return ContextMeter(tokens=fields["prompt_tokens"], window=context_window(model),
                        cost=usage.cost, currency=usage.currency, left_out=sent.left_out,
                        starts_at=sent.starts_at)
