"""The generation's side of a reply, each step one transaction: begin (build the
request, mark it streaming), checkpoint the partial text, finish (text, usage
and cost saved once), and close the replies whose process died.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_lazy

from conversations.accounts import language as languages
from conversations.billing.prices import price_usage
from conversations.billing.usage import estimate_usage, usage_fields
from conversations.capabilities import image_config, requested_aspect_ratio
from conversations.errors import ServiceError
from conversations.media.generated import store_pictures
from conversations.models import ChatModel, Conversation, Message, Usage
from conversations.prompt import build_messages, request_sent
from conversations.relays.checks import note_served_model, silent_drop_warnings
from conversations.relays.client import RelayTarget
from conversations.relays.pictures import Picture
from conversations.relays.setup import relay_target
from conversations.tokens import SentRequest

logger = logging.getLogger(__name__)

PENDING_STALE_AFTER = 60  # seconds

# What a reply whose process died says, wherever it is noticed (in its owner's
# language: str() it with that language active).
DEAD_REPLY_ERROR = gettext_lazy(
    "The server stopped while this reply was being written; what arrived before that is kept."
)


def is_dead_reply_error(error: str) -> bool:
    """`error` is DEAD_REPLY_ERROR in one of the languages (a sweep wrote it in the
    owner's)."""
    return bool(error) and error in _dead_reply_errors()


def _dead_reply_errors() -> set[str]:
    said = set()
    for code, _ in settings.LANGUAGES:
        with translation.override(code):
            said.add(str(DEAD_REPLY_ERROR))
    return said


@dataclass(frozen=True)
class ReplyJob:
    """Everything a generation needs, read once from the database."""

    message_id: int
    conversation_id: int
    owner_id: int
    target: RelayTarget
    body: dict[str, Any]
    model: ChatModel  # with its relay, as the reply began: it prices the reply
    # The owner's (accounts.language), for all the generation writes and renders:
    # it runs without a request, maybe in another process.
    language: str


def begin_reply(message_id: int) -> ReplyJob | None:
    """Mark a pending reply as streaming and build its request, or None if gone.

    The owner's language is read in the same query (joined, not a query more:
    this runs for every reply); a failure here is said in it."""
    with transaction.atomic():
        message = (
            Message.objects.select_for_update(of=("self",))
            .select_related("conversation", "model__relay")
            .annotate(**languages.owner_columns("conversation__owner"))
            .filter(pk=message_id, status=Message.Status.PENDING)
            .first()
        )
        if message is None:
            return None
        language = languages.of_row(message)
        with translation.override(language):
            return _begin(message, language)


def _begin(message: Message, language: str) -> ReplyJob | None:
    """begin_reply's work, in the owner's language, inside its transaction."""
    conversation = message.conversation
    model = message.model or conversation.model
    if model is None:
        _fail(message, gettext(
            "This conversation has no model any more; pick one and retry."))
        return None
    relay = model.relay
    try:
        target = relay_target(relay)
        messages = build_messages(conversation=conversation, reply=message, relay=relay)
    except (ServiceError, ValueError) as exc:
        _fail(message, getattr(exc, "message", str(exc)))
        return None
    body: dict[str, Any] = {"model": model.model_id, "messages": messages}
    if conversation.temperature is not None:
        body["temperature"] = conversation.temperature
    if conversation.top_p is not None:
        body["top_p"] = conversation.top_p
    if conversation.max_tokens:
        body["max_tokens"] = conversation.max_tokens
    extra_body = image_config(model=model, aspect_ratio=conversation.image_aspect_ratio,
                              image_size=conversation.image_size)
    if extra_body is not None:
        body["extra_body"] = extra_body
    message.status = Message.Status.STREAMING
    message.updated_at = timezone.now()
    message.generated_by = THIS_PROCESS
    message.save(update_fields=["status", "updated_at", "generated_by"])
    return ReplyJob(
        message_id=message.pk, conversation_id=conversation.pk, owner_id=conversation.owner_id,
        target=target, body=body, model=model, language=language,
    )


def _fail(message: Message, error: str) -> None:
    message.status = Message.Status.FAILED
    message.error = error
    message.updated_at = message.completed_at = timezone.now()
    message.save(update_fields=["status", "error", "updated_at", "completed_at"])


def checkpoint_replies(batch: list[tuple[int, str, str]]) -> None:
    """Save the partial text of streaming replies, (message id, text, reasoning) each.

    One statement run for all of them (executemany) in one transaction; a
    reply that finished meanwhile is left alone. Not a queryset update per
    reply: this runs every second during streaming, and building a hundred
    ORM queries holds the GIL for tens of milliseconds, stalling every frame.
    """
    if not batch:
        return
    connection = transaction.get_connection()
    quote = connection.ops.quote_name
    # Identifiers come from the model and are quoted; every value is a parameter.
    sql = (
        f"UPDATE {quote(Message._meta.db_table)} SET {quote('text')} = %s, "  # noqa: S608
        f"{quote('reasoning')} = %s, {quote('updated_at')} = %s "
        f"WHERE {quote('id')} = %s AND {quote('status')} = %s"
    )
    now = Message._meta.get_field("updated_at").get_db_prep_value(
        timezone.now(), connection
    )
    rows = [
        (text, reasoning, now, message_id, Message.Status.STREAMING.value)
        for message_id, text, reasoning in batch
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, rows)


FINISH_WARNINGS = {
    "length": gettext_lazy(
        "The reply stopped at the Max tokens limit; raise it and retry for the rest."),
    "content_filter": gettext_lazy("The model's content filter cut this reply short."),
    "": gettext_lazy(
        "The relay ended the reply without saying it was finished, so it may be cut short."),
}


@dataclass
class ReplyOutcome:
    status: str
    text: str
    reasoning: str = ""
    finish_reason: str = ""
    usage: dict | None = None
    error: str = ""
    error_code: str = ""
    error_status: int | None = None
    images: list[Picture] | None = None  # decoded, not yet stored
    sent_media: bool = True  # False: the request carried no file, so none was dropped
    served_model: str = ""  # the answer's `model` field
    first_token_ms: int | None = None  # from the request to the first text or reasoning
    # The blocks the stream rendered, {"text": [...], "reasoning": [...]}: kept
    # with the reply so that pages need not render its markdown again.
    rendered: dict | None = None


def finish_reply(
    *, message_id: int, outcome: ReplyOutcome, job: ReplyJob | None = None
) -> Message | None:
    """Save the final text, usage and cost of a reply, once.

    `job`: what begin_reply read (the model with its relay, the owner), so
    the reply's row is read alone. The joined read costs a millisecond more
    of query building on the thread every generation shares.
    """
    with transaction.atomic():
        query = Message.objects.select_for_update(of=("self",)).filter(pk=message_id)
        if job is None:
            query = query.select_related("conversation", "model__relay")
        message = query.first()
        if message is None or not (message.is_in_flight or _closed_by_a_sweep(message)):
            for picture in outcome.images or ():
                picture.discard()
            return message  # already finished (e.g. stopped from a dead process's row)
        owner_id = job.owner_id if job is not None else message.conversation.owner_id
        warnings = []
        if outcome.images:
            _, picture_warnings = store_pictures(
                message=message, owner_id=owner_id, pictures=outcome.images,
                requested_ratio=requested_aspect_ratio(job.body) if job is not None else "",
                name_stem=_title_of(message),
            )
            warnings.extend(picture_warnings)
        if job is not None and message.model_id == job.model.pk:
            message.model = job.model
        now = timezone.now()
        message.text = outcome.text
        message.reasoning = outcome.reasoning
        message.status = outcome.status
        message.finish_reason = outcome.finish_reason
        message.error = outcome.error
        message.error_code = outcome.error_code
        message.error_status = outcome.error_status
        if outcome.status == Message.Status.COMPLETE and outcome.finish_reason not in (
            "stop", "tool_calls"
        ):
            warnings.append(str(FINISH_WARNINGS.get(outcome.finish_reason,
                                                    FINISH_WARNINGS[""])))
        message.updated_at = message.completed_at = now
        # What the request carried: for the dropped-media check, and for the
        # estimate when the relay reported no usage.
        sent = _request_sent(message) if outcome.sent_media else None
        usage = record_usage(message=message, raw=outcome.usage, owner_id=owner_id, sent=sent)
        if usage is not None and sent is not None and message.model is not None:
            warnings.extend(silent_drop_warnings(sent=sent, usage=usage, model=message.model))
        warnings.append(note_served_model(message=message, served=outcome.served_model))
        message.warning = "\n".join(str(w) for w in warnings if w)
        message.rendered = outcome.rendered
        message.first_token_ms = outcome.first_token_ms
        message.save(
            update_fields=[
                "text", "reasoning", "status", "finish_reason", "error", "error_code",
                "error_status", "warning", "updated_at", "completed_at", "served_model",
                "model_substituted", "rendered", "first_token_ms",
            ]
        )
    return message


def _title_of(message: Message) -> str:
    return (Conversation.objects.filter(pk=message.conversation_id)
            .values_list("title", flat=True).first() or "")


def _request_sent(message: Message) -> SentRequest:
    return request_sent(reply=message, relay=message.model.relay if message.model else None)


def record_usage(
    *, message: Message, raw: dict | None, owner_id: int | None = None,
    sent: SentRequest | None = None,
) -> Usage | None:
    """One Usage row per reply that reached the relay, with its cost frozen.

    Without usage from the relay, the row is an estimate from what the
    request carried (`sent`, worked out here when not given).
    """
    if raw is None and not message.text and not message.reasoning:
        return None  # nothing reached us: nothing to count or charge
    fields = usage_fields(raw)
    if fields is None:
        fields = estimate_usage(message, sent if sent is not None else _request_sent(message))
    model = message.model
    usage = Usage(
        message=message,
        owner_id=owner_id if owner_id is not None else message.conversation.owner_id,
        conversation_id=message.conversation_id, model=model,
        relay=model.relay if model else None, model_name=model.model_id if model else "",
        raw=raw, **fields,
    )
    price_usage(usage)
    usage.save()
    if usage.cost:
        Conversation.objects.filter(pk=message.conversation_id).update(
            total_cost=F("total_cost") + usage.cost
        )
    return usage


def _closed_by_a_sweep(message: Message) -> bool:
    """Closed as dead by another process while its generation was in fact alive
    (a database outage kept its heartbeat from landing): the generation, which
    has every token, saves the reply as it really ended."""
    return message.status == Message.Status.INTERRUPTED and is_dead_reply_error(message.error)


def _started_ticks(pid: int | str) -> str | None:
    """When process `pid` started (clock ticks since boot, /proc/PID/stat field 22),
    or None if there is no such process, it has died but not been reaped yet
    (a zombie), or there is no /proc: with the pid, it names one process even
    after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command, which may hold spaces
    return None if fields[0] in {"Z", "X"} else fields[19]


HOST = socket.gethostname()
# The process generating a reply, as begin_reply writes it (Message.generated_by).
THIS_PROCESS = f"{HOST}:{os.getpid()}:{_started_ticks('self') or ''}"


def _gone(generated_by: str) -> bool:
    """Whether the process named `generated_by` (on this machine) no longer runs."""
    _host, pid, started = generated_by.split(":", 2)
    return bool(started) and _started_ticks(pid) != started


def _alive_here(generated_by: str | None) -> bool:
    """Whether the process named `generated_by` runs on this machine now."""
    return bool(generated_by) and generated_by.startswith(f"{HOST}:") and not _gone(generated_by)


def close_orphaned_replies() -> list[int]:
    """Replies in flight whose generating process ran on this machine and is gone:
    closed at once (a restarted server marks what its predecessor left, without
    waiting for the heartbeat to go stale). Returns the ids closed."""
    mine = (Message.objects.in_flight().filter(status=Message.Status.STREAMING,
                                                generated_by__startswith=f"{HOST}:")
            .values_list("pk", "generated_by"))
    orphans = [pk for pk, generated_by in mine if _gone(generated_by)]
    if not orphans:
        return []
    return _close_as_interrupted(Message.objects.in_flight().filter(pk__in=orphans))


def close_dead_replies(
    *, message_id: int | None = None, older_than: timedelta | None = None
) -> list[int]:
    """Replies in flight whose process died become `interrupted`, keeping their text.

    A running reply's row is written at least every STREAM_CHECKPOINT_INTERVAL
    (the checkpoint is its heartbeat, seen by every process), so one untouched
    for STREAM_STALE_AFTER has nobody writing it. `message_id`: that reply
    alone. Returns the ids closed, for the caller to announce. Each is told
    why in its owner's language (one update per language).
    """
    if older_than is None:
        older_than = timedelta(seconds=settings.STREAM_STALE_AFTER)
    now = timezone.now()
    # A reply still waiting to begin has no heartbeat yet: under a burst it may wait
    # its turn for longer than a streaming one may be silent.
    pending_older_than = max(older_than, timedelta(seconds=PENDING_STALE_AFTER))
    stale = Message.objects.in_flight().filter(
        Q(status=Message.Status.STREAMING, updated_at__lt=now - older_than)
        | Q(status=Message.Status.PENDING, updated_at__lt=now - pending_older_than))
    if message_id is not None:
        stale = stale.filter(pk=message_id)
    return _close_as_interrupted(stale)


def _close_as_interrupted(stale) -> list[int]:
    now = timezone.now()
    with transaction.atomic():
        rows = [
            (pk, chosen, browser) for pk, generated_by, chosen, browser in
            stale.select_for_update(of=("self",))
            .annotate(**languages.owner_columns("conversation__owner"))
            .values_list("pk", "generated_by", "owner_language", "owner_browser_language")
            # A silent heartbeat (the database was away) is no proof of death when the
            # process that writes the reply is seen running on this machine.
            if not _alive_here(generated_by)
        ]
        ids = [pk for pk, _, _ in rows]
        by_language: dict[str, list[int]] = {}
        for pk, chosen, browser in rows:
            by_language.setdefault(languages.of(chosen, browser), []).append(pk)
        for language, closing in by_language.items():
            with translation.override(language):
                error = str(DEAD_REPLY_ERROR)
            stale.filter(pk__in=closing).update(
                status=Message.Status.INTERRUPTED, error=error,
                updated_at=now, completed_at=now,
            )
    if ids:
        logger.info("marked %d unfinished replies as interrupted", len(ids))
    return ids
