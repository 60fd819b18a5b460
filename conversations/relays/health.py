"""How each relay behaved lately, for the staff's relays page.

Per relay: its dialect, models and what they take, the last probe, and in the
last 24 hours its replies, the share that failed, the median time to the first
token, the replies where it dropped media without a word, and the ones where
it answered with another model than the one asked for.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, OuterRef, Prefetch, Q, Subquery
from django.utils import timezone

from conversations.models import ChatModel, Message, Relay, RelayProbe

WINDOW = timedelta(hours=24)


@dataclass
class RelayHealth:
    relay: Relay
    models: list[ChatModel]
    last_probe: RelayProbe | None
    replies: int = 0
    failed: int = 0
    silent_drops: int = 0
    substituted: int = 0
    median_first_token_ms: int | None = None

    @property
    def error_rate(self) -> float | None:
        """Failed replies as a share of all (None: no replies to judge by)."""
        return self.failed / self.replies if self.replies else None


def relay_health(*, now: datetime | None = None, window: timedelta = WINDOW
                 ) -> list[RelayHealth]:
    """Every relay, in four queries whatever their number."""
    since = (now or timezone.now()) - window
    latest_probe = RelayProbe.objects.filter(relay=OuterRef("pk")).order_by(
        "-created_at", "-pk").values("pk")[:1]
    relays = list(
        Relay.objects.order_by("name")
        .annotate(last_probe_id=Subquery(latest_probe))
        .prefetch_related(Prefetch("models", ChatModel.objects.order_by("display_name",
                                                                         "model_id")))
    )
    probes = RelayProbe.objects.in_bulk([r.last_probe_id for r in relays if r.last_probe_id])
    health = {
        relay.pk: RelayHealth(relay=relay, models=list(relay.models.all()),
                              last_probe=probes.get(relay.last_probe_id))
        for relay in relays
    }
    replies = Message.objects.filter(role=Message.Role.ASSISTANT, created_at__gte=since,
                                     model__relay__isnull=False)
    counted = replies.values("model__relay").annotate(
        replies=Count("pk"),
        failed=Count("pk", filter=Q(status=Message.Status.FAILED)),
        # A warning is a silent drop unless it is only the substitution note.
        silent_drops=Count("pk", filter=~Q(warning="") & Q(model_substituted=False)),
        substituted=Count("pk", filter=Q(model_substituted=True)),
    )
    for row in counted:
        line = health.get(row["model__relay"])
        if line is not None:
            line.replies, line.failed = row["replies"], row["failed"]
            line.silent_drops, line.substituted = row["silent_drops"], row["substituted"]
    first_tokens: dict[int, list[int]] = {}
    for relay_id, first_token_ms in replies.filter(first_token_ms__isnull=False).values_list(
            "model__relay", "first_token_ms").iterator():
        first_tokens.setdefault(relay_id, []).append(first_token_ms)
    for relay_id, times in first_tokens.items():
        if relay_id in health:
            health[relay_id].median_first_token_ms = round(statistics.median(times))
    return list(health.values())
