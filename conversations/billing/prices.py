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
from decimal import ROUND_HALF_UP, Decimal
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

from django.db import transaction
from django.db.models import F, QuerySet
from django.utils.translation import gettext_lazy as _
from genai_prices import Usage as PricedUsage
from genai_prices import calc_price

from conversations.billing.money import ZERO, to_decimal
from conversations.billing.usage import usage_fields
from conversations.models import BillingMode, ChatModel, Conversation, Relay, Usage

logger = logging.getLogger(__name__)


MILLION = Decimal(1_000_000)
QUOTA_PER_RELAY_DOLLAR = Decimal(500_000)  # new-api: 500,000 quota = 1 relay dollar
COST_PLACES = Decimal("1e-10")  # Usage.cost has 10 decimal places
ONE = Decimal(1)


SOURCE_OVERRIDE = "override"
SOURCE_NEW_API = "new_api"
SOURCE_LIST = "list"
SOURCE_UNKNOWN = ""
# How a cost's source is named to people (translated where shown).
SOURCE_LABELS = {
    SOURCE_OVERRIDE: _("your price"),
    SOURCE_NEW_API: _("relay charge"),
    SOURCE_LIST: _("list price"),
    SOURCE_UNKNOWN: _("price unknown"),
}


NO_IMAGE_PRICE = "no image-output price for this model: set one"

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




def _s(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _money(value: Decimal) -> Decimal:
    return value.quantize(COST_PLACES, rounding=ROUND_HALF_UP)


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
        return to_decimal(price)
    applicable = base
    for tier in reversed(price.tiers):
        if prompt_tokens > tier.start:
            applicable = tier.price
            break
    return to_decimal(applicable)


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
    per_request = to_decimal(model.price_per_request)
    # A part without its own price is billed as its parent, as genai-prices does.
    for child, parent in (("cached_input", "input"), ("audio_input", "input"),
                          ("image_output", "output")):
        if child == "image_output" and counts.image_out and table[child] is None:
            # A picture at the text rate is a hundredth of its price: unknown, not cheap.
            raise UnknownPrice(NO_IMAGE_PRICE)
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
            audio_price_per_m=to_decimal(model.audio_price_per_m),
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
    if counts.image_out and listed.per_million.get("image_output") is None:
        # genai-prices maps e.g. gemini-2.0-flash-exp-image-generation to plain
        # gemini-2.0-flash, which prices a picture as text (PROTOCOL.md §6).
        return Quote(None, currency, SOURCE_UNKNOWN,
                     {**base, **list_info, "error": NO_IMAGE_PRICE})
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


def list_usd(model_id: str, raw: dict | None) -> Decimal | None:
    """What a relay's raw usage for `model_id` costs at list price, or None
    when unknown (the relay probe's pricer)."""
    fields = usage_fields(raw)
    if fields is None:
        return None
    try:
        return list_price(TokenCounts.from_usage(Usage(**fields)),
                          base_model_ref(model_id)).total_usd
    except UnknownPrice:
        return None
