"""Template helpers for costs: money formatting, sidebar labels, the budget banner."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django import template
from django.utils.formats import number_format
from django.utils.translation import gettext

from conversations.billing import reports as cost_reports
from conversations.billing.budgets import budget_status
from conversations.billing.money import CURRENCY_SYMBOLS, ZERO, to_decimal
from conversations.billing.prices import SOURCE_LABELS

register = template.Library()


@register.filter
def money(amount: Decimal | None, currency: str = "USD") -> str:
    """An amount as format_money shows it (small amounts keep their significant
    digits: $0.000658, not $0.00), with the active language's separators."""
    currency = currency or "USD"
    if amount is None:
        return gettext("price unknown")
    value = to_decimal(amount) or ZERO
    magnitude = abs(value)
    if magnitude >= 100 or magnitude == 0:
        places = Decimal("0.01")
    elif magnitude >= Decimal("0.01"):
        places = Decimal("0.0001")
    else:
        places = Decimal("0.000001")
    value = value.quantize(places, rounding=ROUND_HALF_UP)
    decimals = -places.as_tuple().exponent
    if places != Decimal("0.01"):
        fraction = format(value, "f").partition(".")[2].rstrip("0")
        decimals = max(len(fraction), 2)
    text = number_format(value, decimal_pos=decimals, use_l10n=True, force_grouping=True)
    symbol = CURRENCY_SYMBOLS.get(currency.upper())
    return f"{symbol}{text}" if symbol else f"{text} {currency}"


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
