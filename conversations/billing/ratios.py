"""Importing a new-api relay's own prices (its /api/pricing ratios) onto its models."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import transaction
from django.utils.translation import gettext

from conversations.billing.money import to_decimal
from conversations.billing.prices import base_model_ref
from conversations.models import BillingMode, ChatModel, Relay


@dataclass
class RatioImport:
    updated: list[str] = field(default_factory=list)
    not_listed: list[str] = field(default_factory=list)
    group_ratio: Decimal | None = None


def _ratio(value: Any) -> Decimal | None:
    number = to_decimal(value)
    if number is None or number < 0:
        return None
    return number.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


def import_new_api_ratios(*, relay: Relay, payload: Any, group: str = "default") -> RatioImport:
    """Apply a relay's `GET /api/pricing` answer to its models and switch it to new-api billing.

    Raises ValueError with a plain message when the answer is not new-api's shape.
    """
    rows = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(rows, list):
        raise ValueError(gettext("The relay's /api/pricing answer has no list of model "
                                 "prices (is it a new-api relay?)."))
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
