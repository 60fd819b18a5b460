"""Monthly budgets per user: how much is spent, and refusing a reply past the limit.

Costs are never added across currencies: a budget counts the replies in its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from conversations.billing.money import ZERO, format_money, to_decimal
from conversations.errors import ServiceError
from conversations.models import Budget, Message, Usage

BUDGET_WARNING_SHARE = Decimal("0.8")


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
            spent, priced, unknown = to_decimal(row["spent"]) or ZERO, row["priced"], row["unknown"]
        elif row["spent"]:
            others[row["currency"]] = to_decimal(row["spent"]) or ZERO
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


class BudgetSpent(ServiceError):
    """Refused for the budget: the page shows the budget banner with these words,
    and the composer a short line pointing to it (not the same text twice)."""

    @property
    def short(self) -> str:
        return gettext("Not sent: your monthly budget is used up (see above). Your message "
                       "is still in the box.")


def enforce_budget(*, owner: AbstractBaseUser) -> None:
    """Refuse a new message or retry once this month's budget is used up.

    Guarantee: call this inside the transaction that creates the pending
    reply (services.post_message / regenerate_reply do). The user's Budget row is
    locked with SELECT … FOR UPDATE (PostgreSQL; SQLite's IMMEDIATE
    transactions serialise writers outright), so the check and the insert
    of the pending reply are one step: a second request racing the first
    waits, then sees the first reply in flight. Replies in flight hold back
    this month's average reply cost each, since their real cost is only
    known when they finish. So the limit is overrun by at most what the last
    admitted replies cost beyond that average — never by an unbounded number
    of parallel requests.
    """
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
        raise BudgetSpent(budget_refusal(status))



def budget_refusal(status: BudgetStatus) -> str:
    values = {"limit": format_money(status.limit, status.currency),
              "spent": format_money(status.committed, status.currency),
              "count": status.in_flight}
    if status.in_flight:
        return ngettext(
            "Your monthly budget of %(limit)s is used up: %(spent)s spent this month "
            "(including %(count)s reply still being written). New messages are refused "
            "until an administrator raises your budget.",
            "Your monthly budget of %(limit)s is used up: %(spent)s spent this month "
            "(including %(count)s replies still being written). New messages are refused "
            "until an administrator raises your budget.", status.in_flight) % values
    return gettext(
        "Your monthly budget of %(limit)s is used up: %(spent)s spent this month. New "
        "messages are refused until an administrator raises your budget.") % values
