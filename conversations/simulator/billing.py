"""new-api's OpenAI-compatible billing routes, as a key sees them (PROTOCOL §7b):
the key's limit in dollars and what it used, in cents (the unit trap), worked
out from the usage the simulator reported and its own new-api ratios."""

from __future__ import annotations

from typing import Any

HARD_LIMIT_USD = 100.0
QUOTA_PER_DOLLAR = 500_000


def subscription() -> dict[str, Any]:
    return {"object": "billing_subscription", "has_payment_method": True,
            "soft_limit_usd": HARD_LIMIT_USD, "hard_limit_usd": HARD_LIMIT_USD,
            "system_hard_limit_usd": HARD_LIMIT_USD, "access_until": 0}


def usage(*, requests: list, pricing: dict) -> dict[str, Any]:
    """`total_usage` in cents for every chat request answered so far (the dates
    are ignored, as many relays do)."""
    ratios = {row["model_name"]: row for row in pricing["data"]}
    quota = 0
    for record in requests:
        model = str((record.body or {}).get("model", "")).partition("@")[0]
        row = ratios.get(model)
        if row is None or not record.usage:
            continue
        prompt = record.usage.get("prompt_tokens", 0)
        completion = record.usage.get("completion_tokens", 0)
        quota += round((prompt + completion * row["completion_ratio"]) * row["model_ratio"])
    return {"object": "list", "total_usage": quota / QUOTA_PER_DOLLAR * 100}
