"""Relays' own balances beside what the product computed for them (costs page, staff).

The balance comes through each relay's key (relays/balance.py); the
product's figure is the sum of the frozen costs of every reply on that relay
in the period, in relay dollars (the relay's currency ÷ its exchange rate), so
the two can be held side by side. Many relays ignore the dates and report the
key's usage over all time: the page says so.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal

from asgiref.sync import async_to_sync
from django.db.models import Sum

from conversations.billing.money import ZERO, to_decimal
from conversations.billing.reports import Period
from conversations.infra.concurrency import outside_limit
from conversations.models import Relay, Usage
from conversations.relays.balance import Balance, read_balance


@dataclass(frozen=True)
class BalanceLine:
    relay: Relay
    balance: Balance | None
    unavailable: str  # why there is no balance, in plain words
    computed_usd: Decimal  # relay dollars, from the product's own costs

    @property
    def difference_usd(self) -> Decimal | None:
        return None if self.balance is None else self.balance.used_usd - self.computed_usd


def relay_balances(*, period: Period) -> list[BalanceLine]:
    relays = list(Relay.objects.filter(is_active=True))
    with outside_limit():  # relays may take seconds to answer
        readings = async_to_sync(_read_all)(relays, period)
    spent = dict(
        Usage.objects.filter(relay__in=relays, created_at__gte=period.start_at,
                             created_at__lt=period.end_before)
        .values("relay_id").annotate(spent=Sum("cost")).values_list("relay_id", "spent")
        .order_by()
    )
    lines = []
    for relay, reading in zip(relays, readings, strict=True):
        rate = to_decimal(relay.exchange_rate) or Decimal(1)
        computed = to_decimal(spent.get(relay.pk)) / rate if spent.get(relay.pk) else ZERO
        balance = reading if isinstance(reading, Balance) else None
        lines.append(BalanceLine(relay, balance, "" if balance else str(reading), computed))
    return lines


async def _read_all(relays: list[Relay], period: Period) -> list[Balance | str]:
    return await asyncio.gather(*(read_balance(relay=r, start=period.start, end=period.end)
                                  for r in relays))
