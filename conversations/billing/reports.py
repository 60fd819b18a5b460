"""Reads for the costs page and its CSV: aggregated in the database, scoped to the viewer.

Every figure is grouped by currency as well: a CNY relay's spending is never
added to a USD relay's. Unknown prices are counted, not summed as zero.

The page reads UsageDay — replies already summed per day, conversation,
relay, model and currency (billing/rollup.py keeps it in step) — so a month
of a busy history is a few thousand rows, not every reply. Each section is
one GROUP BY in the database; the per-day, per-model and per-relay
sections share one query.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db.models import Count, DateField, Func, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext

from conversations.models import ChatModel, Conversation, Message, Relay, UsageDay

ZERO = Decimal(0)
COST_PLACES = Decimal("1e-10")  # as stored on Usage.cost
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
        """The period in the active language's date format (Dec. 1, 2026 / 2026年12月1日)."""
        if self.start == self.end:
            return date_format(self.start)
        return gettext("%(start)s – %(end)s") % {"start": date_format(self.start),
                                                 "end": date_format(self.end)}


def days_for(*, viewer, scope: str | int | None, period: Period) -> QuerySet[UsageDay]:
    """The daily sums a viewer may see: their own; staff pick one user or everyone ("all")."""
    days = UsageDay.objects.filter(day__gte=period.start, day__lte=period.end)
    owner_id = _owner_in_scope(viewer=viewer, scope=scope)
    return days if owner_id is None else days.filter(owner_id=owner_id)


def _owner_in_scope(*, viewer, scope: str | int | None) -> int | None:
    """Whose figures a viewer sees: their own; staff one user's, or everyone's (None)."""
    if not viewer.is_staff or scope in (None, "", "me"):
        return viewer.pk
    return None if scope == "all" else int(scope)


def substitutions_by_relay(*, viewer, scope: str | int | None, period: Period) -> dict:
    """Replies whose relay answered with another model than the one asked, per relay id."""
    replies = Message.objects.filter(
        model_substituted=True, completed_at__gte=period.start_at,
        completed_at__lt=period.end_before,
    )
    owner_id = _owner_in_scope(viewer=viewer, scope=scope)
    if owner_id is not None:
        replies = replies.filter(conversation__owner_id=owner_id)
    return dict(replies.values("model__relay_id").annotate(n=Count("pk"))
                .values_list("model__relay_id", "n").order_by())


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
        self.cost += to_decimal(row["spent"])
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


def to_decimal(value) -> Decimal:
    if value is None:
        return ZERO
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _measures() -> dict:
    return {
        "spent": Sum("cost"),
        "replies": Sum("replies"),
        "priced": Sum("priced"),
        "estimated": Sum("estimated"),
        "prompt": Sum("prompt_tokens"),
        "completion": Sum("completion_tokens"),
    }


def _with_unknown(row: dict) -> dict:
    row["unknown"] = row["replies"] - row["priced"]
    return row


class LocalDate(Func):
    """The local calendar day of a timestamp, computed by the database itself.

    PostgreSQL: TruncDate (AT TIME ZONE). SQLite: Django's TruncDate calls a
    Python function per row, far too slow over a year of replies, so the
    period is cut where the zone's UTC offset changes (DST) and each piece
    is shifted with SQLite's own date(): exact, and native speed.
    """

    output_field = DateField()

    def __init__(self, expression, *, period: Period) -> None:
        super().__init__(expression)
        self.period = period

    def as_sql(self, compiler, connection, **extra):
        return compiler.compile(TruncDate(*self.source_expressions))

    def as_sqlite(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        segments = utc_offset_segments(self.period.start_at, self.period.end_before)
        last = (f"date({column}, %s)", [*params, f"{segments[-1][1]:+d} minutes"])
        if len(segments) == 1:
            return last
        sql, all_params = "CASE", []
        for until, minutes in segments[:-1]:
            sql += f" WHEN {column} < %s THEN date({column}, %s)"
            all_params += [*params, connection.ops.adapt_datetimefield_value(until), *params,
                           f"{minutes:+d} minutes"]
        return f"{sql} ELSE {last[0]} END", [*all_params, *last[1]]


def utc_offset_segments(start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """[(until, offset minutes)] covering start..end in the current time zone."""
    zone = timezone.get_current_timezone()

    def offset(moment: datetime) -> int:
        return int(moment.astimezone(zone).utcoffset().total_seconds() // 60)

    segments: list[tuple[datetime, int]] = []
    step = timedelta(days=1)
    cursor, current = start, offset(start)
    while cursor < end:
        following = min(cursor + step, end)
        if offset(following) != current:
            # Offsets change on a whole minute: find it by halving, in minutes.
            low, high = 0, int((following - cursor).total_seconds() // 60)
            while high - low > 1:
                middle = (low + high) // 2
                if offset(cursor + timedelta(minutes=middle)) == current:
                    low = middle
                else:
                    high = middle
            change = cursor + timedelta(minutes=high)
            segments.append((change, current))
            current = offset(change)
            cursor = change
            continue
        cursor = following
    segments.append((end, current))
    return segments


def daily_rows(days: QuerySet[UsageDay], *extra_keys: str) -> QuerySet:
    """(day, relay, model, currency) groups: the base of the chart, models, relays and CSV.

    Grouped in the order of the usage_day_period index, so the database
    streams the groups out of the index instead of sorting.
    """
    return (
        days.values("day", "relay_id", "model_name", "currency", *extra_keys)
        .annotate(**_measures())
        .order_by()
    )


def cost_report(
    *, days: QuerySet[UsageDay], period: Period, per_user: bool,
    substituted: dict | None = None,
) -> CostReport:
    """`substituted`: replies answered by another model, per relay id
    (substitutions_by_relay), shown on each relay's line."""
    rows = [_with_unknown(row) for row in daily_rows(days)]
    relay_ids = {r["relay_id"] for r in rows if r["relay_id"]}
    relay_names = dict(Relay.objects.filter(pk__in=relay_ids).values_list("pk", "name"))
    # Models as the chat names them (display names), not by the id the relay knows.
    display_names = {
        (relay_id, model_id): name
        for relay_id, model_id, name in ChatModel.objects.filter(relay_id__in=relay_ids)
        .exclude(display_name="").values_list("relay_id", "model_id", "display_name")
    }

    totals: dict[str, Line] = {}
    by_day: dict[str, dict[date, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    by_model: dict[tuple, Line] = {}
    by_relay: dict[tuple, Line] = {}
    for row in rows:
        currency = row["currency"]
        totals.setdefault(currency, Line(currency, currency, currency)).add(row)
        by_day[currency][_as_date(row["day"])] += to_decimal(row["spent"])
        relay_name = relay_names.get(row["relay_id"], gettext("(deleted relay)"))
        key = (row["relay_id"], row["model_name"], currency)
        model_name = (display_names.get((row["relay_id"], row["model_name"]))
                      or row["model_name"] or gettext("(unknown model)"))
        by_model.setdefault(key, Line(key, model_name, currency,
                                      extra={"relay": relay_name})).add(row)
        key = (row["relay_id"], currency)
        by_relay.setdefault(key, Line(key, relay_name, currency, extra={
            "substituted": (substituted or {}).get(row["relay_id"], 0)})).add(row)

    return CostReport(
        period=period,
        totals=sorted(totals.values(), key=lambda line: line.currency),
        by_day={c: dict(days) for c, days in by_day.items()},
        charts=[_chart(currency, by_day[currency], period) for currency in sorted(by_day)],
        by_model=_ranked(by_model.values()),
        by_relay=_ranked(by_relay.values()),
        by_conversation=_by_conversation(days),
        by_user=_by_user(days) if per_user else None,
    )


def _as_date(value) -> date:
    return value.date() if isinstance(value, datetime) else value


def _ranked(lines) -> list[Line]:
    return sorted(lines, key=lambda line: (line.currency, -line.cost, -line.replies, line.label))


def _by_conversation(scoped: QuerySet[UsageDay]) -> list[Line]:
    rows = [
        _with_unknown(row) for row in
        scoped.values("conversation_id", "currency")
        .annotate(**_measures())
        .order_by("-spent", "conversation_id")[:TOP_CONVERSATIONS]
    ]
    titles = dict(
        Conversation.objects.filter(pk__in={r["conversation_id"] for r in rows})
        .values_list("pk", "title")
    )
    lines = []
    for row in rows:
        line = Line(row["conversation_id"], titles.get(row["conversation_id"]) or
                    gettext("New conversation"), row["currency"])
        line.add(row)
        lines.append(line)
    return lines


def _by_user(scoped: QuerySet[UsageDay]) -> list[Line]:
    rows = [_with_unknown(row) for row in
            scoped.values("owner_id", "currency").annotate(**_measures()).order_by()]
    User = get_user_model()
    names = {
        user.pk: user.get_username()
        for user in User.objects.filter(pk__in={r["owner_id"] for r in rows})
    }
    lines = []
    for row in rows:
        line = Line(row["owner_id"], names.get(row["owner_id"], gettext("(deleted user)")),
                    row["currency"])
        line.add(row)
        lines.append(line)
    return _ranked(lines)


CHART_WIDTH = 720.0
CHART_MAX_BAR = 48.0
CHART_HEIGHT = 160.0


def _chart(currency: str, days: dict[date, Decimal], period: Period) -> Chart:
    all_days = period.days
    peak = max(days.values(), default=ZERO)
    slot = CHART_WIDTH / max(1, len(all_days))
    # A few days are bars of a bar's width, centred in their slot, not slabs
    # across the whole chart (one day was a single bar 576 units wide).
    bar_width = max(1.0, min(slot * 0.8, CHART_MAX_BAR))
    bars = []
    for index, day in enumerate(all_days):
        cost = days.get(day, ZERO)
        height = float(cost / peak) * CHART_HEIGHT if peak > 0 else 0.0
        if cost > 0:
            height = max(height, 1.0)  # a day with spending is never invisible
        x = index * slot + (slot - bar_width) / 2 if bar_width < slot * 0.8 else index * slot
        bars.append(ChartBar(day, cost, _svg(x), _svg(CHART_HEIGHT - height), _svg(height)))
    return Chart(currency, bars, peak, _svg(CHART_WIDTH), _svg(bar_width), _svg(CHART_HEIGHT),
                 _svg(CHART_HEIGHT + 24))


def _svg(number: float) -> str:
    return f"{number:.2f}".rstrip("0").rstrip(".")


# -- CSV ----------------------------------------------------------------------------

CSV_HEADER = ["date", "user", "relay", "model", "currency", "replies", "estimated_replies",
              "unknown_price_replies", "prompt_tokens", "completion_tokens", "cost"]


def csv_rows(*, days: QuerySet[UsageDay]) -> Iterator[list]:
    """One line per day, user, relay, model and currency, straight from the database."""
    relay_names = dict(Relay.objects.values_list("pk", "name"))
    User = get_user_model()
    names = {
        user.pk: user.get_username()
        for user in User.objects.filter(pk__in=days.values("owner_id").distinct())
    }
    rows = daily_rows(days, "owner_id").order_by(
        "day", "relay_id", "model_name", "currency", "owner_id"
    )
    for row in rows.iterator(chunk_size=2000):
        row = _with_unknown(row)
        yield [
            _as_date(row["day"]).isoformat(), names.get(row["owner_id"], "(deleted user)"),
            relay_names.get(row["relay_id"], "(deleted relay)"), row["model_name"],
            row["currency"], row["replies"], row["estimated"], row["unknown"],
            row["prompt"] or 0, row["completion"] or 0,
            format(to_decimal(row["spent"]).quantize(COST_PLACES), "f")
            if row["replies"] > row["unknown"] else "",
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
        UsageDay.objects.filter(conversation_id=conversation.pk)
        .values("currency")
        .annotate(**_measures())
        .order_by("currency")
    )
    by_currency, unknown, estimated, replies = [], 0, 0, 0
    for row in map(_with_unknown, rows):
        if row["replies"] > row["unknown"]:
            by_currency.append((row["currency"], to_decimal(row["spent"])))
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
        UsageDay.objects.filter(conversation_id__in=ids)
        .values("conversation_id", "currency")
        .annotate(spent=Sum("cost"), replies=Sum("replies"), priced=Sum("priced"))
        .order_by()
    )
    for row in map(_with_unknown, rows):
        found[row["conversation_id"]].append(row)
    result = {}
    for conversation in items:
        groups = found.get(conversation.pk, [])
        priced = [g for g in groups if g["priced"]]
        main = max(priced, key=lambda g: to_decimal(g["spent"]), default=None)
        result[conversation.pk] = SidebarCost(
            total=to_decimal(main["spent"]) if main else ZERO,
            currency=main["currency"] if main else "",
            mixed=len(priced) > 1,
            unknown=sum(g["unknown"] for g in groups),
        )
    return result


# -- the sidebar's view, kept in the session ---------------------------------

SIDEBAR_SESSION_KEY = "sidebar_cost_view"


def sidebar_view(request) -> dict[str, str]:
    saved = request.session.get(SIDEBAR_SESSION_KEY) or {}
    return {"sort": saved.get("sort", "recent"), "show": saved.get("show", "all")}
