"""Template helpers for costs: money formatting, sidebar labels, the budget banner."""

from __future__ import annotations

from decimal import Decimal

from django import template

from conversations.billing import reports as cost_reports
from conversations.billing.budgets import budget_status
from conversations.billing.money import format_money
from conversations.billing.prices import SOURCE_LABELS

register = template.Library()


@register.filter
def money(amount: Decimal | None, currency: str = "USD") -> str:
    """An amount as format_money shows it (billing/money.py: the one rule)."""
    return format_money(amount, currency or "USD")


@register.filter
def price_source_label(source: str) -> str:
    return SOURCE_LABELS.get(source or "", source)


@register.simple_tag(takes_context=True)
def sidebar_cost(context, item):
    """The cost label of one sidebar conversation.

    The layout's whole list is costed with one grouped query, cached on the
    request, rather than a query per item.
    """
    given = context.get("sidebar_cost_map")
    if given is not None and item.pk in given:
        return given[item.pk]
    request = context.get("request")
    cache = getattr(request, "_sidebar_cost_map", None) if request is not None else None
    if cache is None or item.pk not in cache:
        listed = context.get("conversations")
        batch = list(listed) if listed is not None else []
        if not any(getattr(c, "pk", None) == item.pk for c in batch):
            batch = [item]
        cache = {**(cache or {}), **cost_reports.sidebar_costs(batch)}
        if request is not None:
            request._sidebar_cost_map = cache
    return cache[item.pk]


@register.simple_tag
def conversation_cost_for(conversation):
    return cost_reports.conversation_cost(conversation)


@register.simple_tag(takes_context=True)
def budget_for_user(context):
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return budget_status(user=user)


@register.inclusion_tag("conversations/_sidebar_controls.html", takes_context=True)
def sidebar_cost_controls(context):
    request = context.get("request")
    default = {"sort": "recent", "show": "all"}
    view = cost_reports.sidebar_view(request) if request is not None else default
    current = context.get("conversation")
    return {"view": view, "current_pk": getattr(current, "pk", ""),
            "customised": view != {"sort": "recent", "show": "all"}}


@register.filter
def per_picture(usage, pictures: list) -> Decimal | None:
    """The reply's cost shared by the pictures it made; None while the price is unknown."""
    if usage is None or usage.cost is None or not pictures:
        return None
    return divide_by(usage.cost, len(pictures))


@register.filter
def divide_by(amount: Decimal | None, parts: int | None) -> Decimal | None:
    if amount is None or not parts:
        return amount
    return amount / parts
