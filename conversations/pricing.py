"""Usage → Decimal cost, in one place, frozen onto the reply when it is saved.

Where a price comes from (`Usage.price_source`), highest first:

``override``  a price set on the model in the admin (USD list terms, per
              million tokens or per request). Each component wins on its own;
              the components left empty fall back to the list price, so an
              image-output price can be added to a model genai-prices knows
              without its image-output rate (PROTOCOL.md §7 trap).
``new_api``   the relay's own billing: new-api ratios (PROTOCOL.md §6),
              giving what the relay really charges, in relay dollars.
``list``      the vendor's list price from the bundled, offline genai-prices.
``""``        no known price: `cost` stays NULL ("price unknown"), never 0.

What the stored cost means — always money in the relay's `currency`:

* list mode:     list USD × relay.price_multiplier × relay.exchange_rate
* new-api mode:  quota / 500,000 (relay dollars, group ratio included)
                 × relay.exchange_rate
* an override:   override USD × (multiplier in list mode, group ratio in
                 new-api mode) × exchange_rate — the override replaces the
                 list price, the relay's mark-up still applies.

`prices_used` records every figure that went into the sum, so a cost can be
explained (and audited) long after the prices changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, F, Q, QuerySet, Sum
from django.utils import timezone

from .models import BillingMode, Budget, ChatModel, Conversation, Message, Relay, Usage

logger = logging.getLogger(__name__)

MILLION = Decimal(1_000_000)
QUOTA_PER_RELAY_DOLLAR = Decimal(500_000)  # new-api: 500,000 quota = 1 relay dollar
COST_PLACES = Decimal("1e-10")  # Usage.cost has 10 decimal places
ONE = Decimal(1)
ZERO = Decimal(0)
BUDGET_WARNING_SHARE = Decimal("0.8")

SOURCE_OVERRIDE = "override"
SOURCE_NEW_API = "new_api"
SOURCE_LIST = "list"
SOURCE_UNKNOWN = ""
SOURCE_LABELS = {
    SOURCE_OVERRIDE: "your price",
    SOURCE_NEW_API: "relay charge",
    SOURCE_LIST: "list price",
    SOURCE_UNKNOWN: "price unknown",
}

OVERRIDE_FIELDS = {
    "input": "price_input",
    "cached_input": "price_cached_input",
    "audio_input": "price_audio_input",
    "output": "price_output",
    "image_output": "price_image_output",
}
# genai-prices' names for the same per-million prices.
LIST_PRICE_KEYS = {
    "input": "input_mtok",
    "cached_input": "cache_read_mtok",
    "audio_input": "input_audio_mtok",
    "output": "output_mtok",
    "image_output": "output_image_mtok",
}


def _genai_prices_version() -> str:
    try:
        return package_version("genai-prices")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


GENAI_PRICES_VERSION = _genai_prices_version()


# -- counting ------------------------------------------------------------------


@dataclass(frozen=True)
class TokenCounts:
    """The usage buckets that are priced, clamped so no part exceeds its whole.

    Relays report details that do not always add up (a cached count above
    the prompt, image tokens above the completion); genai-prices refuses such
    usage with ValueError, and a bill should not either way.
    """

    prompt: int
    completion: int
    cached: int = 0
    audio_in: int = 0
    image_out: int = 0

    @classmethod
    def from_usage(cls, usage: Usage) -> TokenCounts:
        prompt = max(0, usage.prompt_tokens or 0)
        completion = max(0, usage.completion_tokens or 0)
        cached = min(max(0, usage.cached_tokens or 0), prompt)
        audio_in = min(max(0, usage.prompt_audio_tokens or 0), prompt - cached)
        image_out = min(max(0, usage.completion_image_tokens or 0), completion)
        return cls(prompt, completion, cached, audio_in, image_out)

    @property
    def plain_input(self) -> int:
        return self.prompt - self.cached - self.audio_in

    @property
    def plain_output(self) -> int:
        return self.completion - self.image_out

    def as_dict(self) -> dict[str, int]:
        return {"prompt": self.prompt, "completion": self.completion, "cached": self.cached,
                "audio_in": self.audio_in, "image_out": self.image_out}


@dataclass
class Quote:
    cost: Decimal | None
    currency: str
    source: str
    prices: dict[str, Any] = field(default_factory=dict)


class UnknownPrice(Exception):
    """No list price, no ratio and no override for a model."""


def base_model_ref(model_id: str) -> str:
    """The id to look a price up by: the simulator's `@behaviour` suffix is not a model."""
    return (model_id or "").split("@", 1)[0].strip()


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() else None


def _s(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _money(value: Decimal) -> Decimal:
    return value.quantize(COST_PLACES, rounding=ROUND_HALF_UP)


# -- list prices (genai-prices) ---------------------------------------------------


@dataclass(frozen=True)
class ListPrice:
    model: str
    provider: str
    total_usd: Decimal
    per_million: dict[str, Decimal | None]


def list_price(counts: TokenCounts, model_ref: str, *, at: datetime | None = None) -> ListPrice:
    """What the vendor's list price says this usage costs, in USD.

    Raises UnknownPrice when genai-prices does not know the model. A
    `vendor/model` id (OpenRouter style) is retried without its vendor.
    """
    from genai_prices import Usage as PricedUsage
    from genai_prices import calc_price

    values: dict[str, int] = {"input_tokens": counts.prompt, "output_tokens": counts.completion}
    if counts.cached:
        values["cache_read_tokens"] = counts.cached
    if counts.audio_in:
        values["input_audio_tokens"] = counts.audio_in
    if counts.cached and counts.audio_in:
        # Relays do not report cached audio; genai-prices wants it said explicitly.
        values["cache_audio_read_tokens"] = 0
    if counts.image_out:
        values["output_image_tokens"] = counts.image_out
    refs = [model_ref]
    if "/" in model_ref:
        refs.append(model_ref.rsplit("/", 1)[1])
    # The message only: the exception itself, kept in a local of the frame its
    # traceback holds, would be a reference cycle left to the garbage collector.
    last_error = ""
    for ref in refs:
        try:
            result = calc_price(PricedUsage(**values), model_ref=ref,
                                genai_request_timestamp=at)
        except LookupError as exc:
            last_error = str(exc)
            continue
        except ValueError as exc:  # usage genai-prices will not price: say so, not 0
            raise UnknownPrice(f"genai-prices refused the usage: {exc}") from exc
        per_million = {
            name: _resolve_tier(getattr(result.model_price, key, None), counts.prompt)
            for name, key in LIST_PRICE_KEYS.items()
        }
        return ListPrice(result.model.id, result.provider.id, result.total_price, per_million)
    raise UnknownPrice(last_error or f"no list price for {model_ref!r}")


def _resolve_tier(price: Any, prompt_tokens: int) -> Decimal | None:
    """A tiered price at the tier this request falls in (genai-prices' cliff rule)."""
    if price is None:
        return None
    base = getattr(price, "base", None)
    if base is None:
        return _dec(price)
    applicable = base
    for tier in reversed(price.tiers):
        if prompt_tokens > tier.start:
            applicable = tier.price
            break
    return _dec(applicable)


# -- per-million overrides ------------------------------------------------------


def has_override(model: ChatModel | None) -> bool:
    if model is None:
        return False
    return any(
        getattr(model, name) is not None for name in [*OVERRIDE_FIELDS.values(),
                                                      "price_per_request"]
    )


def override_price_usd(
    counts: TokenCounts, model: ChatModel, listed: ListPrice | None
) -> tuple[Decimal, dict[str, Any]]:
    """USD (list terms) for a model with admin overrides, component by component."""
    table: dict[str, Decimal | None] = {}
    origin: dict[str, str] = {}
    for name, attr in OVERRIDE_FIELDS.items():
        own = getattr(model, attr)
        if own is not None:
            table[name], origin[name] = Decimal(own), SOURCE_OVERRIDE
        elif listed is not None and listed.per_million.get(name) is not None:
            table[name], origin[name] = listed.per_million[name], SOURCE_LIST
        else:
            table[name] = None
    per_request = _dec(model.price_per_request)
    # A part without its own price is billed as its parent, as genai-prices does.
    for child, parent in (("cached_input", "input"), ("audio_input", "input"),
                          ("image_output", "output")):
        if table[child] is None and table[parent] is not None:
            table[child], origin[child] = table[parent], origin[parent] + " (as " + parent + ")"
    token_priced = counts.prompt or counts.completion
    if token_priced and (table["input"] is None or table["output"] is None) and (
        per_request is None
    ):
        raise UnknownPrice("an override is set but there is no input or output price")
    usd = ZERO
    if table["input"] is not None:
        usd += (Decimal(counts.plain_input) * table["input"]
                + Decimal(counts.cached) * table["cached_input"]
                + Decimal(counts.audio_in) * table["audio_input"]) / MILLION
    if table["output"] is not None:
        usd += (Decimal(counts.plain_output) * table["output"]
                + Decimal(counts.image_out) * table["image_output"]) / MILLION
    if per_request is not None:
        usd += per_request
    return usd, {
        "per_million": {name: _s(value) for name, value in table.items()},
        "per_million_from": origin,
        "per_request": _s(per_request),
        "usd": _s(usd),
    }


# -- new-api ratios ---------------------------------------------------------------


@dataclass(frozen=True)
class NewApiRatios:
    model_ratio: Decimal
    completion_ratio: Decimal = ONE
    cache_ratio: Decimal = ONE
    group_ratio: Decimal = ONE
    audio_price_per_m: Decimal | None = None

    @classmethod
    def for_model(cls, model: ChatModel | None, relay: Relay) -> NewApiRatios | None:
        if model is None or model.model_ratio is None:
            return None
        return cls(
            model_ratio=Decimal(model.model_ratio),
            completion_ratio=(
                ONE if model.completion_ratio is None else Decimal(model.completion_ratio)),
            cache_ratio=ONE if model.cache_ratio is None else Decimal(model.cache_ratio),
            group_ratio=Decimal(relay.group_ratio),
            audio_price_per_m=_dec(model.audio_price_per_m),
        )


def new_api_quota(counts: TokenCounts, ratios: NewApiRatios) -> int:
    """new-api's quota for one request (PROTOCOL.md §6).

        quota = ((prompt − cached − audio_in) + cached × cache_ratio
                 + completion × completion_ratio) × model_ratio × group_ratio
                + audio_in × audio_usd_per_M / 1e6 × group_ratio × 500000

    Audio is only billed apart when the model has its own audio price (new-api
    does so for Gemini); otherwise it is an ordinary prompt token. Computed in
    full precision and rounded once, half up, like Go's math.Round; a request
    that used tokens on a priced model costs at least 1 quota, as in new-api.
    """
    audio_apart = counts.audio_in if ratios.audio_price_per_m is not None else 0
    text = Decimal(counts.prompt - counts.cached - audio_apart)
    tokens = (text + Decimal(counts.cached) * ratios.cache_ratio
              + Decimal(counts.completion) * ratios.completion_ratio)
    quota = tokens * ratios.model_ratio * ratios.group_ratio
    if audio_apart:
        quota += (Decimal(audio_apart) * ratios.audio_price_per_m / MILLION
                  * ratios.group_ratio * QUOTA_PER_RELAY_DOLLAR)
    rounded = int(quota.to_integral_value(rounding=ROUND_HALF_UP))
    if rounded <= 0 and ratios.model_ratio > 0 and (counts.prompt or counts.completion):
        rounded = 1
    return rounded


def relay_dollars(quota: int) -> Decimal:
    return Decimal(quota) / QUOTA_PER_RELAY_DOLLAR


# -- the one entry point ---------------------------------------------------------------


def quote(
    *, counts: TokenCounts, model: ChatModel | None, relay: Relay | None, model_name: str = "",
    at: datetime | None = None,
) -> Quote:
    """The cost of one reply in the relay's currency, and how it was reached."""
    currency = (relay.currency if relay else "USD") or "USD"
    rate = Decimal(relay.exchange_rate) if relay else ONE
    mode = relay.billing_mode if relay else BillingMode.LIST_PRICE
    multiplier = Decimal(relay.price_multiplier) if relay else ONE
    group_ratio = Decimal(relay.group_ratio) if relay else ONE
    ref = base_model_ref((model.price_model_ref if model else "") or
                         (model.model_id if model else model_name))
    base = {"model_ref": ref, "tokens": counts.as_dict(), "billing_mode": str(mode),
            "exchange_rate": _s(rate), "currency": currency}

    listed: ListPrice | None = None
    list_error = ""
    try:
        listed = list_price(counts, ref, at=at) if ref else None
    except UnknownPrice as exc:
        list_error = str(exc)
    list_info = (
        {"list_model": listed.model, "list_provider": listed.provider,
         "list_usd": _s(listed.total_usd), "genai_prices": GENAI_PRICES_VERSION}
        if listed else {"list_error": list_error or "no model"}
    )
    markup_name, markup = (
        ("group_ratio", group_ratio) if mode == BillingMode.NEW_API
        else ("multiplier", multiplier)
    )

    if has_override(model):
        try:
            usd, detail = override_price_usd(counts, model, listed)
        except UnknownPrice as exc:
            return Quote(None, currency, SOURCE_UNKNOWN, {**base, "error": str(exc)})
        return Quote(
            _money(usd * markup * rate), currency, SOURCE_OVERRIDE,
            {**base, **detail, markup_name: _s(markup), **list_info},
        )

    if mode == BillingMode.NEW_API:
        ratios = NewApiRatios.for_model(model, relay) if relay else None
        if ratios is not None:
            quota = new_api_quota(counts, ratios)
            dollars = relay_dollars(quota)
            return Quote(
                _money(dollars * rate), currency, SOURCE_NEW_API,
                {**base, "model_ratio": _s(ratios.model_ratio),
                 "completion_ratio": _s(ratios.completion_ratio),
                 "cache_ratio": _s(ratios.cache_ratio), "group_ratio": _s(ratios.group_ratio),
                 "audio_price_per_m": _s(ratios.audio_price_per_m), "quota": quota,
                 "relay_usd": _s(dollars), **list_info},
            )
        # No ratios for this model: the relay bills list price × group ratio
        # for models it prices at vendor rates; say it is the list figure.
        base["note"] = "no new-api ratios for this model; list price × group ratio"

    if listed is None:
        return Quote(None, currency, SOURCE_UNKNOWN, {**base, **list_info})
    return Quote(
        _money(listed.total_usd * markup * rate), currency, SOURCE_LIST,
        {**base, markup_name: _s(markup), **list_info,
         "per_million": {k: _s(v) for k, v in listed.per_million.items()}},
    )


def price_usage(usage: Usage) -> Usage:
    """Freeze the cost of a reply onto its Usage row (called before it is saved)."""
    relay = usage.relay if usage.relay_id else None
    model = usage.model if usage.model_id else None
    result = quote(
        counts=TokenCounts.from_usage(usage), model=model, relay=relay,
        model_name=usage.model_name, at=usage.created_at,
    )
    usage.cost = result.cost
    usage.currency = result.currency
    usage.price_source = result.source
    usage.prices_used = result.prices
    if result.cost is None:
        logger.info("no price for %r: cost left unknown", usage.model_name)
    return usage


# -- recomputing on purpose ---------------------------------------------------------


@dataclass
class Recomputed:
    rows: int = 0
    changed: int = 0


def recompute_costs(*, usages: QuerySet[Usage]) -> Recomputed:
    """Re-price past replies at today's prices: only ever on a staff member's request.

    Conversation totals move by the difference, so they stay the sum of
    their replies.
    """
    result = Recomputed()
    with transaction.atomic():
        deltas: dict[int, Decimal] = {}
        rows = usages.select_related("model__relay", "relay").select_for_update(of=("self",))
        for usage in rows.iterator(chunk_size=500):
            result.rows += 1
            old, old_currency = usage.cost, usage.currency
            price_usage(usage)
            usage.save(update_fields=["cost", "currency", "price_source", "prices_used"])
            if (old, old_currency) != (usage.cost, usage.currency):
                result.changed += 1
            delta = (usage.cost or ZERO) - (old or ZERO)
            if delta:
                deltas[usage.conversation_id] = deltas.get(usage.conversation_id, ZERO) + delta
        for conversation_id, delta in deltas.items():
            Conversation.objects.filter(pk=conversation_id).update(
                total_cost=F("total_cost") + delta
            )
    return result


# -- importing new-api ratios ------------------------------------------------------------


@dataclass
class RatioImport:
    updated: list[str] = field(default_factory=list)
    not_listed: list[str] = field(default_factory=list)
    group_ratio: Decimal | None = None


def _ratio(value: Any) -> Decimal | None:
    number = _dec(value)
    if number is None or number < 0:
        return None
    return number.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


def import_new_api_ratios(*, relay: Relay, payload: Any, group: str = "default") -> RatioImport:
    """Apply a relay's `GET /api/pricing` answer to its models and switch it to new-api billing.

    Raises ValueError with a plain message when the answer is not new-api's shape.
    """
    rows = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(rows, list):
        raise ValueError("The relay's /api/pricing answer has no list of model prices "
                         "(is it a new-api relay?).")
    by_name = {str(row.get("model_name")): row for row in rows
               if isinstance(row, dict) and row.get("model_name")}
    result = RatioImport()
    with transaction.atomic():
        for model in ChatModel.objects.filter(relay=relay).select_for_update():
            row = by_name.get(model.model_id) or by_name.get(base_model_ref(model.model_id))
            if row is None:
                result.not_listed.append(model.model_id)
                continue
            fields = []
            if row.get("quota_type") == 1 and _ratio(row.get("model_price")) is not None:
                # Billed per request, in relay dollars: a per-request price.
                model.price_per_request = _ratio(row.get("model_price"))
                fields.append("price_per_request")
            for name in ("model_ratio", "completion_ratio", "cache_ratio"):
                value = _ratio(row.get(name))
                if value is not None:
                    setattr(model, name, value)
                    fields.append(name)
            if fields:
                model.save(update_fields=fields)
                result.updated.append(model.model_id)
            else:
                result.not_listed.append(model.model_id)
        groups = payload.get("group_ratio") if isinstance(payload, dict) else None
        relay_fields = ["billing_mode"]
        relay.billing_mode = BillingMode.NEW_API
        if isinstance(groups, dict) and _ratio(groups.get(group)) is not None:
            relay.group_ratio = result.group_ratio = _ratio(groups.get(group))
            relay_fields.append("group_ratio")
        relay.save(update_fields=relay_fields)
    return result


# -- budgets ------------------------------------------------------------------------------


def month_start(now: datetime | None = None) -> datetime:
    local = timezone.localtime(now or timezone.now())
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class BudgetStatus:
    limit: Decimal
    currency: str
    spent: Decimal
    reserved: Decimal
    in_flight: int
    unknown_price_replies: int
    other_currencies: dict[str, Decimal]

    @property
    def committed(self) -> Decimal:
        return self.spent + self.reserved

    @property
    def share(self) -> Decimal:
        if self.limit <= 0:
            return Decimal(1)
        return self.committed / self.limit

    @property
    def percent(self) -> int:
        return int((self.share * 100).to_integral_value(rounding=ROUND_HALF_UP))

    @property
    def exceeded(self) -> bool:
        return self.committed >= self.limit

    @property
    def warning(self) -> bool:
        return not self.exceeded and self.share >= BUDGET_WARNING_SHARE

    @property
    def level(self) -> str:
        return "exceeded" if self.exceeded else "warning" if self.warning else "ok"


def budget_status(*, user: AbstractBaseUser, budget: Budget | None = None) -> BudgetStatus | None:
    """How much of this month's budget is spent or held by replies still being written.

    Spending in other currencies is reported apart, never added in.
    """
    if budget is None:
        budget = Budget.objects.filter(user_id=user.pk).first()
    if budget is None:
        return None
    rows = (
        Usage.objects.filter(owner_id=user.pk, created_at__gte=month_start())
        .values("currency")
        .annotate(spent=Sum("cost"), priced=Count("pk", filter=Q(cost__isnull=False)),
                  unknown=Count("pk", filter=Q(cost__isnull=True)))
    )
    spent, priced, unknown = ZERO, 0, 0
    others: dict[str, Decimal] = {}
    for row in rows:
        if row["currency"] == budget.currency:
            spent, priced, unknown = _dec(row["spent"]) or ZERO, row["priced"], row["unknown"]
        elif row["spent"]:
            others[row["currency"]] = _dec(row["spent"]) or ZERO
    in_flight = Message.objects.filter(
        conversation__owner_id=user.pk, role=Message.Role.ASSISTANT,
        status__in=[Message.Status.PENDING, Message.Status.STREAMING],
    ).count()
    average = spent / priced if priced else ZERO
    return BudgetStatus(
        limit=Decimal(budget.monthly_limit), currency=budget.currency, spent=spent,
        reserved=average * in_flight, in_flight=in_flight, unknown_price_replies=unknown,
        other_currencies=others,
    )


def enforce_budget(*, owner: AbstractBaseUser) -> None:
    """Refuse a new message or retry once this month's budget is used up.

    Guarantee: call this inside the transaction that creates the pending
    reply (services.post_message / retry_reply do). The user's Budget row is
    locked with SELECT … FOR UPDATE (PostgreSQL; SQLite's IMMEDIATE
    transactions serialise writers outright), so the check and the insert
    of the pending reply are one step: a second request racing the first
    waits, then sees the first reply in flight. Replies in flight hold back
    this month's average reply cost each, since their real cost is only
    known when they finish. So the limit is overrun by at most what the last
    admitted replies cost beyond that average — never by an unbounded number
    of parallel requests.
    """
    from .services import ServiceError

    if not transaction.get_connection().in_atomic_block:
        # Without the caller's transaction the lock would end here; still
        # check, but the guarantee above needs the caller's transaction.
        with transaction.atomic():
            return enforce_budget(owner=owner)
    budget = Budget.objects.select_for_update().filter(user_id=owner.pk).first()
    if budget is None:
        return
    status = budget_status(user=owner, budget=budget)
    if status is not None and status.exceeded:
        raise ServiceError(budget_refusal(status))


def budget_refusal(status: BudgetStatus) -> str:
    held = (
        f" (including {status.in_flight} repl{'y' if status.in_flight == 1 else 'ies'} still "
        "being written)" if status.in_flight else ""
    )
    return (
        f"Your monthly budget of {format_money(status.limit, status.currency)} is used up: "
        f"{format_money(status.committed, status.currency)} spent this month{held}. "
        "New messages are refused until an administrator raises your budget."
    )


# -- display --------------------------------------------------------------------------------

CURRENCY_SYMBOLS = {"USD": "$", "CNY": "¥", "RMB": "¥", "EUR": "€", "GBP": "£", "JPY": "JP¥"}


def format_money(amount: Decimal | float | None, currency: str = "USD") -> str:
    """Small amounts keep their significant digits: $0.000658, not $0.00."""
    if amount is None:
        return "price unknown"
    value = _dec(amount) or ZERO
    magnitude = abs(value)
    if magnitude >= 100 or magnitude == 0:
        places = Decimal("0.01")
    elif magnitude >= Decimal("0.01"):
        places = Decimal("0.0001")
    else:
        places = Decimal("0.000001")
    text = format(value.quantize(places, rounding=ROUND_HALF_UP), ",f")
    if places != Decimal("0.01") and "." in text:
        text = text.rstrip("0")
        whole, _, frac = text.partition(".")
        text = f"{whole}.{frac.ljust(2, '0')}"
    symbol = CURRENCY_SYMBOLS.get(currency.upper())
    return f"{symbol}{text}" if symbol else f"{text} {currency}"
