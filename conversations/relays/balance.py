"""A relay's balance, read with its own key through the OpenAI billing routes
new-api and one-api serve (PROTOCOL §7b): the limit in dollars, the usage in
cents (the unit trap). A relay that serves neither is "not available", never 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.translation import gettext

from conversations.models import Relay
from conversations.relays.client import RelayClient
from conversations.relays.errors import RelayError
from conversations.relays.setup import relay_target

# new-api reports an unlimited key with a limit of 100,000,000 dollars; some
# relays a negative one.
UNLIMITED_ABOVE = Decimal(10_000_000)
READ_TIMEOUT = 5.0


@dataclass(frozen=True)
class Balance:
    limit_usd: Decimal | None  # None: an unlimited key
    used_usd: Decimal

    @property
    def remaining_usd(self) -> Decimal | None:
        return None if self.limit_usd is None else self.limit_usd - self.used_usd


def balance_from(subscription: Any, usage: Any) -> Balance:
    """Raises ValueError when the answers are not the billing routes' shape."""
    limit = _decimal(subscription, "hard_limit_usd")
    used_cents = _decimal(usage, "total_usage")
    return Balance(limit_usd=None if limit < 0 or limit >= UNLIMITED_ABOVE else limit,
                   used_usd=used_cents / 100)


def _decimal(data: Any, key: str) -> Decimal:
    value = data.get(key) if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"no {key}")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{key} is not a number") from None


async def read_balance(*, relay: Relay, start: date, end: date) -> Balance | str:
    """The relay's balance, or why it is not available (in plain words)."""
    try:
        async with RelayClient(relay_target(relay), max_retries=0,
                               connect_timeout=READ_TIMEOUT, read_timeout=READ_TIMEOUT) as client:
            subscription, usage = await client.fetch_billing(start=start.isoformat(),
                                                             end=end.isoformat())
        return balance_from(subscription, usage)
    except RelayError as exc:
        if exc.status == 404 or exc.code in ("html_response", "bad_response"):
            return gettext("balance not available: the relay does not serve the billing "
                           "routes")
        return gettext("balance not available: %(reason)s") % {"reason": exc.message}
    except ValueError:
        return gettext("balance not available: the relay's billing answer is not in the usual "
                       "shape")
