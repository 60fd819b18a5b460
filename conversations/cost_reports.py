"""Reads for the costs page and its CSV: aggregated in the database, scoped to the viewer.

Every figure is grouped by currency as well: a CNY relay's spending is never
added to a USD relay's. Unknown prices are counted, not summed as zero.
The month view of a large history stays fast because each section is one
GROUP BY over an index that holds every column it reads (see the Usage
indexes), and the per-day, per-model and per-relay sections share one query.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from .models import Conversation, Relay, Usage

ZERO = Decimal(0)
TOP_CONVERSATIONS = 50


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    @property
    def start_at(self) -> datetime:
        return timezone.make_aware(datetime.combine(self.start, time.min))

    @property
    def end_before(self) -> datetime:
        return timezone.make_aware(datetime.combine(self.end + timedelta(days=1), time.min))

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]

    @property
    def label(self) -> str:
        if self.start == self.end:
            return self.start.isoformat()
        return f"{self.start.isoformat()} – {self.end.isoformat()}"


def usages_for(*, viewer, scope: str | int | None) -> QuerySet[Usage]:
    """The usage a viewer may see: their own; staff choose one user or everyone ("all")."""
    if not viewer.is_staff or scope in (None, "", "me"):
        return Usage.objects.filter(owner_id=viewer.pk)
    if scope == "all":
        return Usage.objects.all()
    return Usage.objects.filter(owner_id=int(scope))


def in_period(usages: QuerySet[Usage], period: Period) -> QuerySet[Usage]:
    return usages.filter(created_at__gte=period.start_at, created_at__lt=period.end_before)


@dataclass
class Line:
    """One row of a breakdown: what it cost, per currency, and how sure that is."""

    key: object
    label: str
    currency: str
    cost: Decimal = ZERO
    replies: int = 0
    unknown: int = 0
    estimated: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    link: str = ""
    extra: dict = field(default_factory=dict)

    def add(self, row: dict) -> None:
        self.cost += _dec(row["spent"])
        self.replies += row["replies"]
        self.unknown += row["unknown"]
        self.estimated += row["estimated"]
        self.prompt_tokens += row["prompt"] or 0
        self.completion_tokens += row["completion"] or 0


@dataclass
class ChartBar:
    """One day's bar; coordinates are preformatted SVG numbers."""

    day: date
    cost: Decimal
    x: str
    y: str
    height: str


@dataclass
class Chart:
    currency: str
    bars: list[ChartBar]
    peak: Decimal
    width: str
    bar_width: str
    height: str
    box_height: str


@dataclass
class CostReport:
    period: Period
    totals: list[Line]
    by_day: dict[str, dict[date, Decimal]]
    charts: list[Chart]
    by_model: list[Line]
    by_relay: list[Line]
    by_conversation: list[Line]
    by_user: list[Line] | None

    @property
    def empty(self) -> bool:
        return not any(line.replies for line in self.totals)


def _dec(value) -> Decimal:
    if value is None:
        return ZERO
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _measures() -> dict:
    return {
        "spent": Sum("cost"),
        "replies": Count("id"),
        "unknown": Count("id", filter=Q(cost__isnull=True)),
        "estimated": Count("id", filter=Q(estimated=True)),
        "prompt": Sum("prompt_tokens"),
        "completion": Sum("completion_tokens"),
    }


def daily_rows(usages: QuerySet[Usage]) -> QuerySet:
    """(day, relay, model, currency) groups: the base of the chart, models, relays and CSV."""
    return (
        usages.annotate(day=TruncDate("created_at"))
        .values("day", "relay_id", "model_name", "currency")
        .annotate(**_measures())
        .order_by()
    )


def cost_report(*, usages: QuerySet[Usage], period: Period, per_user: bool) -> CostReport:
    scoped = in_period(usages, period)
    rows = list(daily_rows(scoped))
    relay_names = dict(
        Relay.objects.filter(pk__in={r["relay_id"] for r in rows if r["relay_id"]})
        .values_list("pk", "name")
    )

    totals: dict[str, Line] = {}
    by_day: dict[str, dict[date, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    by_model: dict[tuple, Line] = {}
    by_relay: dict[tuple, Line] = {}
    for row in rows:
        currency = row["currency"]
        totals.setdefault(currency, Line(currency, currency, currency)).add(row)
        by_day[currency][_as_date(row["day"])] += _dec(row["spent"])
        relay_name = relay_names.get(row["relay_id"], "(deleted relay)")
        key = (row["relay_id"], row["model_name"], currency)
        by_model.setdefault(key, Line(key, row["model_name"] or "(unknown model)", currency,
                                      extra={"relay": relay_name})).add(row)
        key = (row["relay_id"], currency)
        by_relay.setdefault(key, Line(key, relay_name, currency)).add(row)

    return CostReport(
        period=period,
        totals=sorted(totals.values(), key=lambda line: line.currency),
        by_day={c: dict(days) for c, days in by_day.items()},
        charts=[_chart(currency, by_day[currency], period) for currency in sorted(by_day)],
        by_model=_ranked(by_model.values()),
        by_relay=_ranked(by_relay.values()),
        by_conversation=_by_conversation(scoped),
        by_user=_by_user(scoped) if per_user else None,
    )


def _as_date(value) -> date:
    return value.date() if isinstance(value, datetime) else value


def _ranked(lines) -> list[Line]:
    return sorted(lines, key=lambda line: (line.currency, -line.cost, -line.replies, line.label))


def _by_conversation(scoped: QuerySet[Usage]) -> list[Line]:
    rows = list(
        scoped.values("conversation_id", "currency")
        .annotate(**_measures())
        .order_by("-spent", "conversation_id")[:TOP_CONVERSATIONS]
    )
    titles = dict(
        Conversation.objects.filter(pk__in={r["conversation_id"] for r in rows})
        .values_list("pk", "title")
    )
    lines = []
    for row in rows:
        line = Line(row["conversation_id"], titles.get(row["conversation_id"]) or
                    "New conversation", row["currency"])
        line.add(row)
        lines.append(line)
    return lines


def _by_user(scoped: QuerySet[Usage]) -> list[Line]:
    rows = list(scoped.values("owner_id", "currency").annotate(**_measures()).order_by())
    User = get_user_model()
    names = {
        user.pk: user.get_username()
        for user in User.objects.filter(pk__in={r["owner_id"] for r in rows})
    }
    lines = []
    for row in rows:
        line = Line(row["owner_id"], names.get(row["owner_id"], "(deleted user)"),
                    row["currency"])
        line.add(row)
        lines.append(line)
    return _ranked(lines)


CHART_WIDTH = 720.0
CHART_HEIGHT = 160.0


def _chart(currency: str, days: dict[date, Decimal], period: Period) -> Chart:
    all_days = period.days
    peak = max(days.values(), default=ZERO)
    slot = CHART_WIDTH / max(1, len(all_days))
    bar_width = max(1.0, slot * 0.8)
    bars = []
    for index, day in enumerate(all_days):
        cost = days.get(day, ZERO)
        height = float(cost / peak) * CHART_HEIGHT if peak > 0 else 0.0
        if cost > 0:
            height = max(height, 1.0)  # a day with spending is never invisible
        bars.append(ChartBar(day, cost, _svg(index * slot), _svg(CHART_HEIGHT - height),
                             _svg(height)))
    return Chart(currency, bars, peak, _svg(CHART_WIDTH), _svg(bar_width), _svg(CHART_HEIGHT),
                 _svg(CHART_HEIGHT + 24))


def _svg(number: float) -> str:
    return f"{number:.2f}".rstrip("0").rstrip(".")


# -- CSV ----------------------------------------------------------------------------

CSV_HEADER = ["date", "user", "relay", "model", "currency", "replies", "estimated_replies",
              "unknown_price_replies", "prompt_tokens", "completion_tokens", "cost"]


def csv_rows(*, usages: QuerySet[Usage], period: Period) -> Iterator[list]:
    """One line per day, user, relay, model and currency, straight from the database."""
    relay_names = dict(Relay.objects.values_list("pk", "name"))
    User = get_user_model()
    rows = (
        in_period(usages, period)
        .annotate(day=TruncDate("created_at"))
        .values("day", "owner_id", "relay_id", "model_name", "currency")
        .annotate(**_measures())
        .order_by("day", "owner_id", "relay_id", "model_name", "currency")
    )
    names: dict[int, str] = {}
    for row in rows.iterator(chunk_size=2000):
        owner = row["owner_id"]
        if owner not in names:
            user = User.objects.filter(pk=owner).first()
            names[owner] = user.get_username() if user else "(deleted user)"
        yield [
            _as_date(row["day"]).isoformat(), names[owner],
            relay_names.get(row["relay_id"], "(deleted relay)"), row["model_name"],
            row["currency"], row["replies"], row["estimated"], row["unknown"],
            row["prompt"] or 0, row["completion"] or 0,
            format(_dec(row["spent"]), "f") if row["replies"] > row["unknown"] else "",
        ]


# -- conversations ------------------------------------------------------------------------


@dataclass
class ConversationCost:
    by_currency: list[tuple[str, Decimal]]
    unknown: int
    estimated: int
    replies: int


def conversation_cost(conversation: Conversation) -> ConversationCost:
    rows = (
        Usage.objects.filter(conversation_id=conversation.pk)
        .values("currency")
        .annotate(spent=Sum("cost"), replies=Count("id"),
                  unknown=Count("id", filter=Q(cost__isnull=True)),
                  estimated=Count("id", filter=Q(estimated=True)))
        .order_by("currency")
    )
    by_currency, unknown, estimated, replies = [], 0, 0, 0
    for row in rows:
        if row["replies"] > row["unknown"]:
            by_currency.append((row["currency"], _dec(row["spent"])))
        unknown += row["unknown"]
        estimated += row["estimated"]
        replies += row["replies"]
    return ConversationCost(by_currency, unknown, estimated, replies)


@dataclass(frozen=True)
class SidebarCost:
    total: Decimal
    currency: str
    mixed: bool
    unknown: int


def sidebar_costs(conversations) -> dict[int, SidebarCost]:
    """Cost labels for a page of sidebar conversations, in one grouped query."""
    items = list(conversations)
    ids = [c.pk for c in items]
    if not ids:
        return {}
    found: dict[int, list[dict]] = defaultdict(list)
    rows = (
        Usage.objects.filter(conversation_id__in=ids)
        .values("conversation_id", "currency")
        .annotate(spent=Sum("cost"), unknown=Count("id", filter=Q(cost__isnull=True)))
        .order_by()
    )
    for row in rows:
        found[row["conversation_id"]].append(row)
    result = {}
    for conversation in items:
        groups = found.get(conversation.pk, [])
        priced = [g for g in groups if g["spent"] is not None]
        main = max(priced, key=lambda g: _dec(g["spent"]), default=None)
        result[conversation.pk] = SidebarCost(
            total=_dec(main["spent"]) if main else ZERO,
            currency=main["currency"] if main else "",
            mixed=len(priced) > 1,
            unknown=sum(g["unknown"] for g in groups),
        )
    return result
