"""Money for people to read: an amount in its currency, never rounded to zero."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.utils.formats import number_format
from django.utils.translation import gettext

ZERO = Decimal(0)


def to_decimal(value: Any) -> Decimal | None:
    """A finite Decimal from a form value, a float or a string; None for anything else."""
    if value is None or value == "":
        return None
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() else None


CURRENCY_SYMBOLS = {"USD": "$", "CNY": "¥", "RMB": "¥", "EUR": "€", "GBP": "£", "JPY": "JP¥"}


def format_money(amount: Decimal | float | None, currency: str = "USD") -> str:
    """Small amounts keep their significant digits: $0.000658, not $0.00. The digits
    are grouped and separated the active language's way ($1,234.50; 中文 $1234.50)."""
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
    text = format(value.quantize(places, rounding=ROUND_HALF_UP), "f")
    if places != Decimal("0.01") and "." in text:
        text = text.rstrip("0")
        whole, _, frac = text.partition(".")
        text = f"{whole}.{frac.ljust(2, '0')}"
    decimals = len(text.partition(".")[2])
    text = number_format(Decimal(text), decimal_pos=decimals, use_l10n=True, force_grouping=True)
    symbol = CURRENCY_SYMBOLS.get(currency.upper())
    return f"{symbol}{text}" if symbol else f"{text} {currency}"
