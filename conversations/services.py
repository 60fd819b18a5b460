"""Writes: keyword-only, typed verbs that own their transaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import pricing
from .models import ChatModel, Conversation, Dialect, Message, Relay, Usage
from .relay import RelayTarget
from .usage import usage_fields

logger = logging.getLogger(__name__)

SIMULATED_RELAY_NAME = "Relay simulator"
TITLE_LENGTH = 60


class ServiceError(Exception):
    """A request the user can fix; `message` says how."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- relays --------------------------------------------------------------


def ensure_default_relay(*, simulator_url: str | None = None) -> Relay | None:
    """Create the relay configured by the environment on first start.

    With RELAY_BASE_URL set, that relay (and RELAY_MODELS) is created once.
    Without it, the built-in simulator relay is created, and its address is
    pointed at `simulator_url` (the running server's own /simulator mount).
    """
    if settings.RELAY_BASE_URL:
        relay, created = Relay.objects.get_or_create(
            base_url=settings.RELAY_BASE_URL.rstrip("/"),
            defaults={
                "name": _unique_relay_name("Relay"),
                "api_key": settings.RELAY_API_KEY,
                "dialect": settings.RELAY_DIALECT or Dialect.OPENAI,
            },
        )
        if created:
            for model_id in settings.RELAY_MODELS:
                ChatModel.objects.get_or_create(
                    relay=relay, model_id=model_id,
                    defaults={"accepts_image": True, "display_name": model_id},
                )
        return relay
    if not simulator_url:
        return Relay.objects.filter(is_simulated=True).first()
    relay, created = Relay.objects.get_or_create(
        is_simulated=True,
        name=SIMULATED_RELAY_NAME,
        defaults={"base_url": simulator_url, "api_key": "sim-local-key",
                  "dialect": Dialect.OPENAI},
    )
    if not created and relay.base_url != simulator_url:
        relay.base_url = simulator_url
        relay.save(update_fields=["base_url"])
    if created:
        create_simulated_models(relay=relay)
    return relay


def create_simulated_models(*, relay: Relay) -> None:
    all_media = {"accepts_image": True, "accepts_audio": True, "accepts_video": True,
                 "accepts_pdf": True}
    specs = [
        ("gemini-2.5-flash", "Gemini 2.5 Flash (simulated)", all_media),
        ("gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite (simulated)", all_media),
        ("gemini-3.1-flash-lite-preview", "Gemini 3.1 Flash-Lite (simulated)", all_media),
        ("gpt-4o-mini", "GPT-4o mini (simulated)", {"accepts_image": True}),
        ("gemini-2.5-flash@reasoning", "Thinking model (simulated)", all_media),
        ("gemini-2.5-flash@fail=401,message=该令牌额度已用尽",
         "Out-of-quota key (simulated failure)", {}),
    ]
    for model_id, name, flags in specs:
        ChatModel.objects.get_or_create(
            relay=relay, model_id=model_id, defaults={"display_name": name, **flags}
        )


def _unique_relay_name(base: str) -> str:
    name, n = base, 1
    while Relay.objects.filter(name=name).exists():
        n += 1
        name = f"{base} {n}"
    return name


def relay_target(relay: Relay) -> RelayTarget:
    return RelayTarget(base_url=relay.base_url, api_key=relay.api_key or "", name=relay.name)


def import_models(*, relay: Relay, model_ids: list[str]) -> list[ChatModel]:
    created = []
    for model_id in model_ids:
        model, was_created = ChatModel.objects.get_or_create(
            relay=relay, model_id=model_id, defaults={"display_name": model_id}
        )
        if was_created:
            created.append(model)
    return created


# -- conversations ---------------------------------------------------------


def create_conversation(
    *,
    owner: AbstractBaseUser,
    model: ChatModel | None,
    system_prompt: str = "",
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
) -> Conversation:
    return Conversation.objects.create(
        owner=owner, model=model, system_prompt=system_prompt, temperature=temperature,
        top_p=top_p, max_tokens=max_tokens,
    )


def update_conversation_settings(
    *,
    conversation: Conversation,
    model: ChatModel | None,
    system_prompt: str,
    temperature: float | None,
    top_p: float | None,
    max_tokens: int | None,
) -> Conversation:
    conversation.model = model
    conversation.system_prompt = system_prompt
    conversation.temperature = temperature
    conversation.top_p = top_p
    conversation.max_tokens = max_tokens
    conversation.save(
        update_fields=["model", "system_prompt", "temperature", "top_p", "max_tokens"]
    )
    return conversation


def post_message(
    *,
    conversation: Conversation,
    author: AbstractBaseUser,
    text: str,
    files: list | None = None,
) -> tuple[Message, Message]:
    """Store the user's message and a pending reply; generate after commit."""
    if conversation.owner_id != author.pk:
        raise ServiceError("This conversation is not yours.")
    text = text.strip()
    files = files or []
    if not text and not files:
        raise ServiceError("Write a message or attach a file first.")
    model = conversation.model
    if model is None or not model.is_active:
        raise ServiceError("Pick a model for this conversation first.")
    if files:
        from .attachments import prepare_uploads

        # Checked and converted (ffprobe, ffmpeg) before the transaction takes its locks.
        prepare_uploads(files=files, model=model)
    with transaction.atomic():
        _lock_idle(conversation)
        # Inside the transaction: the budget check and the pending reply are one step.
        check_budget(owner=author)
        now = timezone.now()
        user_message = Message.objects.create(
            conversation=conversation, role=Message.Role.USER, text=text, created_at=now,
            updated_at=now,
        )
        if files:
            from .attachments import store_attachments

            store_attachments(message=user_message, owner=author, files=files)
        reply = Message.objects.create(
            conversation=conversation, role=Message.Role.ASSISTANT,
            status=Message.Status.PENDING, model=model,
            created_at=now + timedelta(microseconds=1), updated_at=now,
        )
        fields = ["updated_at"]
        conversation.updated_at = now
        if not conversation.title:
            conversation.title = _title_from(text, files)
            fields.append("title")
        conversation.save(update_fields=fields)
        transaction.on_commit(lambda: _start(
            reply.pk, conversation_id=conversation.pk, shown=[user_message, reply]
        ))
    return user_message, reply


def retry_reply(*, message: Message) -> Message:
    """Answer the same question again after a failed, stopped or cut reply."""
    if message.role != Message.Role.ASSISTANT or message.is_in_flight:
        raise ServiceError("Only a finished reply can be retried.")
    conversation = message.conversation
    model = conversation.model
    if model is None:
        raise ServiceError("Pick a model for this conversation first.")
    with transaction.atomic():
        _lock_idle(conversation)
        check_budget(owner=conversation.owner)
        now = timezone.now()
        reply = Message.objects.create(
            conversation=conversation, role=Message.Role.ASSISTANT,
            status=Message.Status.PENDING, model=model, created_at=now, updated_at=now,
        )
        conversation.updated_at = now
        conversation.save(update_fields=["updated_at"])
        transaction.on_commit(
            lambda: _start(reply.pk, conversation_id=conversation.pk, shown=[reply])
        )
    return reply


def _lock_idle(conversation: Conversation) -> None:
    """One reply at a time per conversation, even when two posts race.

    Locks the conversation row (PostgreSQL; SQLite serialises write
    transactions anyway) before looking for a reply in flight.
    """
    list(Conversation.objects.select_for_update().filter(pk=conversation.pk).values_list("pk"))
    if conversation.messages.in_flight().exists():
        raise ServiceError("Wait for the current reply to finish, or stop it, before sending.")


def check_budget(*, owner: AbstractBaseUser) -> None:
    """Refuse before anything is stored or sent when the monthly budget is spent.

    Call inside the transaction that creates the pending reply: the pricing
    module locks the user's budget row, so two racing posts cannot both pass.
    """
    pricing.enforce_budget(owner=owner)


def _title_from(text: str, files: list) -> str:
    line = " ".join(text.split())
    if not line and files:
        from .attachments import clean_name  # no folders or direction overrides in a title

        line = ", ".join(clean_name(getattr(f, "name", "")) for f in files)
    return line[: TITLE_LENGTH - 1] + "…" if len(line) > TITLE_LENGTH else line


def _start(message_id: int, *, conversation_id: int, shown: list[Message]) -> None:
    """After commit: show every page watching the new messages, then generate.

    `shown`: the messages just created, as committed (rendered as they are,
    not read back).
    """
    from .events import conversation_group
    from .fragments import messages_upsert
    from .generation import start_generation

    # Other tabs need the new messages before the reply's frames arrive: the
    # generation announces them first thing.
    start_generation(message_id, announce=(
        conversation_group(conversation_id),
        {"type": "messages.created", "html": str(messages_upsert(shown))},
    ))


# -- the generation's side ---------------------------------------------------


@dataclass(frozen=True)
class ReplyJob:
    """Everything a generation needs, read once from the database."""

    message_id: int
    conversation_id: int
    owner_id: int
    target: RelayTarget
    body: dict[str, Any]
    model: ChatModel  # with its relay, as the reply began: it prices the reply


def begin_reply(message_id: int) -> ReplyJob | None:
    """Mark a pending reply as streaming and build its request, or None if gone."""
    from .parts import build_messages

    with transaction.atomic():
        message = (
            Message.objects.select_for_update(of=("self",))
            .select_related("conversation", "model__relay")
            .filter(pk=message_id, status=Message.Status.PENDING)
            .first()
        )
        if message is None:
            return None
        conversation = message.conversation
        model = message.model or conversation.model
        if model is None:
            _fail(message, "This conversation has no model any more; pick one and retry.")
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
        message.status = Message.Status.STREAMING
        message.updated_at = timezone.now()
        message.save(update_fields=["status", "updated_at"])
    return ReplyJob(
        message_id=message.pk, conversation_id=conversation.pk, owner_id=conversation.owner_id,
        target=target, body=body, model=model,
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
    "length": "The reply stopped at the Max tokens limit; raise it and retry for the rest.",
    "content_filter": "The model's content filter cut this reply short.",
    "": "The relay ended the reply without saying it was finished, so it may be cut short.",
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
    images: list[str] | None = None
    sent_media: bool = True  # False: the request carried no file, so none was dropped


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
        if message is None or not message.is_in_flight:
            return message  # already finished (e.g. stopped from a dead process's row)
        owner_id = job.owner_id if job is not None else message.conversation.owner_id
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
        warnings = []
        if outcome.status == Message.Status.COMPLETE and outcome.finish_reason not in (
            "stop", "tool_calls"
        ):
            warnings.append(FINISH_WARNINGS.get(outcome.finish_reason, FINISH_WARNINGS[""]))
        message.updated_at = message.completed_at = now
        usage = record_usage(message=message, raw=outcome.usage, owner_id=owner_id)
        if usage is not None and outcome.sent_media:
            warnings.extend(_media_warnings(message, usage))
        message.warning = "\n".join(w for w in warnings if w)
        message.save(
            update_fields=[
                "text", "reasoning", "status", "finish_reason", "error", "error_code",
                "error_status", "warning", "updated_at", "completed_at",
            ]
        )
    return message


def _media_warnings(message: Message, usage: Usage) -> list[str]:
    from .parts import silent_drop_warnings  # parts imports ServiceError from here

    return silent_drop_warnings(message=message, usage=usage)


def record_usage(
    *, message: Message, raw: dict | None, owner_id: int | None = None
) -> Usage | None:
    """One Usage row per reply that reached the relay, with its cost frozen."""
    if raw is None and not message.text and not message.reasoning:
        return None  # nothing reached us: nothing to count or charge
    fields = usage_fields(raw, message=message)
    model = message.model
    usage = Usage(
        message=message,
        owner_id=owner_id if owner_id is not None else message.conversation.owner_id,
        conversation_id=message.conversation_id, model=model,
        relay=model.relay if model else None, model_name=model.model_id if model else "",
        raw=raw, **fields,
    )
    pricing.price_usage(usage)
    usage.save()
    if usage.cost:
        Conversation.objects.filter(pk=message.conversation_id).update(
            total_cost=F("total_cost") + usage.cost
        )
    return usage


def request_stop(*, message: Message) -> bool:
    """Stop a reply, keeping what arrived. Returns False if it was not running.

    A reply not started yet is cancelled here. A running one is told to stop
    through its conversation's control group, wherever its process is; it
    saves itself as cancelled. A reply whose process died is closed here.
    """
    from asgiref.sync import async_to_sync

    from .events import control_group, publish

    if not message.is_in_flight:
        return False
    now = timezone.now()
    closed = Message.objects.filter(pk=message.pk, status=Message.Status.PENDING).update(
        status=Message.Status.CANCELLED, updated_at=now, completed_at=now
    )
    stale_before = now - timedelta(seconds=settings.STREAM_STALE_AFTER)
    closed += Message.objects.filter(
        pk=message.pk, status=Message.Status.STREAMING, updated_at__lt=stale_before
    ).update(status=Message.Status.CANCELLED, updated_at=now, completed_at=now)
    if not closed:
        async_to_sync(publish)(
            control_group(message.conversation_id),
            {"type": "generation.stop", "message_id": message.pk},
        )
    return True


def recover_interrupted(*, older_than: timedelta | None = None) -> int:
    """Replies left streaming by a process that died become `interrupted`."""
    if older_than is None:
        older_than = timedelta(seconds=settings.STREAM_STALE_AFTER)
    cutoff = timezone.now() - older_than
    count = Message.objects.in_flight().filter(updated_at__lt=cutoff).update(
        status=Message.Status.INTERRUPTED,
        error="The server restarted while this reply was being written; what arrived "
        "before that is kept.",
        completed_at=timezone.now(),
    )
    if count:
        logger.info("marked %d unfinished replies as interrupted", count)
    return count

