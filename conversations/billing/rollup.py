"""Keeps UsageDay (usage summed per day) in step with Usage.

Every write to a Usage row adds its contribution to its day's row, in the
same transaction (post_save / post_delete), so the costs page can read a
year of history as a few thousand pre-summed rows. A changed row (a staff
recompute) takes its old contribution out first. QuerySet.update() and raw
SQL bypass this: run `manage.py rebuild_cost_rollup` after such surgery.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Max, Min, Q, QuerySet, Sum
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver
from django.utils import timezone

from conversations.billing.reports import LocalDate, Period
from conversations.models import Conversation, Usage, UsageDay

ZERO = Decimal(0)


@dataclass(frozen=True)
class Contribution:
    """What one Usage row adds to its UsageDay row."""

    day: object
    owner_id: int
    conversation_id: int
    relay_id: int | None
    model_name: str
    currency: str
    cost: Decimal | None
    estimated: bool
    prompt_tokens: int
    completion_tokens: int

    @classmethod
    def of(cls, usage: Usage) -> Contribution:
        return cls(
            day=timezone.localdate(usage.created_at), owner_id=usage.owner_id,
            conversation_id=usage.conversation_id, relay_id=usage.relay_id,
            model_name=usage.model_name or "", currency=usage.currency or "",
            cost=usage.cost, estimated=bool(usage.estimated),
            prompt_tokens=usage.prompt_tokens or 0,
            completion_tokens=usage.completion_tokens or 0,
        )


def apply(contribution: Contribution, sign: int) -> None:
    """Add (+1) or take out (−1) one reply's contribution to its day."""
    keys = {"day": contribution.day, "conversation_id": contribution.conversation_id,
            "relay_id": contribution.relay_id, "model_name": contribution.model_name,
            "currency": contribution.currency}
    priced = contribution.cost is not None
    changes = {
        "replies": F("replies") + sign,
        "priced": F("priced") + (sign if priced else 0),
        "estimated": F("estimated") + (sign if contribution.estimated else 0),
        "prompt_tokens": F("prompt_tokens") + sign * contribution.prompt_tokens,
        "completion_tokens": F("completion_tokens") + sign * contribution.completion_tokens,
        "cost": F("cost") + sign * (contribution.cost or ZERO),
    }
    if UsageDay.objects.filter(**keys).update(**changes) or sign < 0:
        return
    values = {
        "replies": 1, "priced": int(priced), "estimated": int(contribution.estimated),
        "prompt_tokens": contribution.prompt_tokens,
        "completion_tokens": contribution.completion_tokens, "cost": contribution.cost or ZERO,
    }
    try:
        with transaction.atomic():  # a savepoint: a racing insert of the same day wins
            UsageDay.objects.create(owner_id=contribution.owner_id, **keys, **values)
    except IntegrityError:
        UsageDay.objects.filter(**keys).update(**changes)


@receiver(pre_save, sender=Usage, dispatch_uid="cost_rollup_pre_save")
def _remember_old(sender, instance: Usage, raw=False, **kwargs) -> None:
    if raw or instance.pk is None or instance._state.adding:
        instance._rollup_old = None
        return
    old = Usage.objects.filter(pk=instance.pk).first()
    instance._rollup_old = Contribution.of(old) if old is not None else None


@receiver(post_save, sender=Usage, dispatch_uid="cost_rollup_post_save")
def _on_save(sender, instance: Usage, created: bool, raw=False, **kwargs) -> None:
    if raw:
        return
    new = Contribution.of(instance)
    old = getattr(instance, "_rollup_old", None)
    if old == new:
        return
    if old is not None:
        apply(old, -1)
    apply(new, +1)


@receiver(post_delete, sender=Usage, dispatch_uid="cost_rollup_post_delete")
def _on_delete(sender, instance: Usage, origin=None, **kwargs) -> None:
    # Deleting a conversation or a user deletes its UsageDay rows too (CASCADE).
    origin_model = origin.model if isinstance(origin, QuerySet) else type(origin)
    if origin_model in (Conversation, get_user_model()):
        return
    apply(Contribution.of(instance), -1)


def rebuild() -> int:
    """Recount UsageDay from every Usage row, in one INSERT … SELECT. Returns its row count."""

    with transaction.atomic():
        UsageDay.objects.all().delete()
        bounds = Usage.objects.aggregate(first=Min("created_at"), last=Max("created_at"))
        if bounds["first"] is None:
            return 0
        period = Period(timezone.localdate(bounds["first"]), timezone.localdate(bounds["last"]))
        grouped = (
            Usage.objects.annotate(day=LocalDate("created_at", period=period))
            .values("day", "owner_id", "conversation_id", "relay_id", "model_name", "currency")
            .annotate(
                n_replies=Count("*"), n_priced=Count("cost"),
                n_estimated=Count("estimated", filter=Q(estimated=True)),
                n_prompt=Sum("prompt_tokens"), n_completion=Sum("completion_tokens"),
                n_cost=Sum("cost"),
            )
            .order_by()
        )
        select_sql, params = grouped.query.sql_with_params()
        table = UsageDay._meta.db_table
        quote = connection.ops.quote_name
        columns = ["day", "owner_id", "conversation_id", "relay_id", "model_name", "currency",
                   "replies", "priced", "estimated", "prompt_tokens", "completion_tokens", "cost"]
        sources = ["day", "owner_id", "conversation_id", "relay_id", "model_name", "currency",
                   "n_replies", "n_priced", "n_estimated", "COALESCE(n_prompt, 0)",
                   "COALESCE(n_completion, 0)", "COALESCE(n_cost, 0)"]
        # Names are constants and the SELECT is the ORM's; every value is a parameter.
        insert = (
            f"INSERT INTO {quote(table)} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608
            f"SELECT {', '.join(sources)} FROM ({select_sql}) grouped"
        )
        with connection.cursor() as cursor:
            cursor.execute(insert, params)
        return UsageDay.objects.count()
