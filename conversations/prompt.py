"""A conversation's history → the `messages` of a chat-completions request.

The history is the branch the reply is on, up to the reply (history/tree.py):
each user turn with its files (spelled for the relay's dialect by
relays/dialects.py), each answer the user saw as an assistant turn. A
picture a model made goes back only as an image part of the user turn that
edits it (`Message.edit_source`), under the same HISTORY_MAX_MEDIA_TURNS cap
as uploads; an answer's text carries a short "[picture N]" in its place,
never base64 (PROTOCOL.md §7). `request_sent` walks the same history to say
what a request carried, for the usage estimate and the dropped-media check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Prefetch
from django.utils.translation import gettext, gettext_lazy

from conversations.capabilities import kind_refusal
from conversations.errors import ServiceError
from conversations.history.tree import branch_ids, history_ids
from conversations.models import Attachment, ChatModel, Conversation, Message, Relay
from conversations.relays.dialects import media_part
from conversations.tokens import (
    SentMedia,
    SentRequest,
    estimate_text_tokens,
    expected_tokens,
)

# Assistant turns that the model should see again: what the user saw as an answer.
REPLAYED_STATUSES = {Message.Status.COMPLETE, Message.Status.CANCELLED}

_PICTURE_MARKDOWN = re.compile(r"!\[[^\]\n]*\]\((?:picture:(\d+)|data:[^)\s]*)\)")
_DATA_URI = re.compile(r"data:[\w.+-]+/[\w.+-]+;base64,[A-Za-z0-9+/=\s]*")


def replayed_text(text: str) -> str:
    """An answer's text as the model sees it again: each picture a few words."""
    text = _PICTURE_MARKDOWN.sub(
        lambda m: f"[picture {m[1]}]" if m[1] else "[a picture]", text)
    return _DATA_URI.sub("[a picture]", text)


# Sent after a reply cut at the length limit when the user asks for the rest.
# A user turn rather than a trailing assistant one: only some models take an
# assistant "prefill", every OpenAI-compatible relay takes this.
CONTINUE_INSTRUCTION = (
    "Continue exactly where your previous message stopped, without repeating any of it."
)


def context_window(model: ChatModel | None) -> int:
    """The model's window in tokens: from the capability catalogue, else the setting."""
    return (model.context_window if model is not None else None) or settings.CONTEXT_WINDOW_TOKENS


@dataclass
class HistoryView:
    """The part of the history a request carries: all of it, or the newest turns
    that fit the model's window (`left_out` older messages are not sent)."""

    messages: list[Message]
    media_sent: set[int]  # user turns whose files go out again
    left_out: int = 0

    @property
    def starts_at(self) -> Message | None:
        """The first message the model sees, when older ones were left out."""
        return self.messages[0] if self.left_out and self.messages else None


def history_view(*, conversation: Conversation, reply: Message, relay: Relay | None,
                 before_question: bool = False) -> HistoryView:
    """The branch before `reply`, without its oldest turns if the whole would not
    fit the model's window with room for the answer. Never left out: the system
    prompt and the turn being answered (with everything after it; `before_question`:
    that turn is not written yet). Counted as request_sent counts a request, so
    the meter, the request and its estimated usage agree."""
    history = _history(conversation, reply)
    model = reply.model or conversation.model
    media_sent = _turns_with_media_sent(history)
    window = context_window(model)
    reserve = min(conversation.max_tokens or settings.CONTEXT_REPLY_RESERVE_TOKENS, window // 2)
    budget = window - reserve - estimate_text_tokens(conversation.system_prompt)
    costs = [_tokens_of(m, model=model, relay=relay, media_sent=media_sent) for m in history]
    current = _current_user_message(history)
    protected = len(history) if before_question or current is None else history.index(current)
    total, start = sum(costs), 0
    while total > budget and start < protected:
        end = start + 1  # a whole turn: the question and the answers that follow it
        while end < protected and history[end].role != Message.Role.USER:
            end += 1
        total -= sum(costs[start:end])
        start = end
    return HistoryView(messages=history[start:], media_sent=media_sent, left_out=start)


def _tokens_of(message: Message, *, model: ChatModel | None, relay: Relay | None,
               media_sent: set[int]) -> int:
    if message.role != Message.Role.USER:
        replayed = message.status in REPLAYED_STATUSES and message.text.strip()
        return estimate_text_tokens(replayed_text(message.text)) if replayed else 0
    tokens = estimate_text_tokens(message.text)
    if message.pk in media_sent:
        tokens += sum(expected_tokens(a) for a in _attachments(message)
                      if relay is None or not kind_refusal(kind=a.kind, model=model, relay=relay))
    return tokens


def build_messages(
    *, conversation: Conversation, reply: Message, relay: Relay
) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if conversation.system_prompt.strip():
        messages.append({"role": "system", "content": conversation.system_prompt})
    view = history_view(conversation=conversation, reply=reply, relay=relay)
    history = view.messages
    model = reply.model or conversation.model
    media_sent = view.media_sent
    current = _current_user_message(history)
    for message in history:
        if message.role == Message.Role.USER:
            content = user_content(
                message, relay, model=model, include_media=message.pk in media_sent,
                strict=message is current,
            )
            messages.append({"role": "user", "content": content})
        elif message.status in REPLAYED_STATUSES and message.text.strip():
            if messages and messages[-1]["role"] == "assistant":
                # A continuation: the model sees the cut reply and its rest as one answer.
                messages[-1]["content"] += replayed_text(message.text)
            else:
                messages.append({"role": "assistant", "content": replayed_text(message.text)})
    if _continues(history):
        messages.append({"role": "user", "content": CONTINUE_INSTRUCTION})
    return messages


def _history(conversation: Conversation, reply: Message) -> list[Message]:
    ids = history_ids(reply)
    by_id = {m.pk: m for m in (
        conversation.messages.filter(pk__in=ids)
        # A plain list on each message, not the related manager's cache: that
        # cache is a queryset pointing back at its message, a reference cycle
        # per message that only the garbage collector frees (a pause felt by
        # every stream).
        .select_related("edit_source")
        .prefetch_related(Prefetch("attachments", to_attr="attachment_list"))
    )}
    return [by_id[pk] for pk in ids]


def _continues(history: list[Message]) -> bool:
    """The reply is the rest of a cut reply (a reply's child, not a question's)."""
    return bool(history) and history[-1].role == Message.Role.ASSISTANT


def _current_user_message(history: list[Message]) -> Message | None:
    return next((m for m in reversed(history) if m.role == Message.Role.USER), None)


def _turns_with_media_sent(history: list[Message]) -> set[int]:
    """User turns whose files go out again: all, or the last HISTORY_MAX_MEDIA_TURNS
    earlier ones (0 = no cap) plus the turn being answered."""
    with_media = [m.pk for m in history
                  if m.role == Message.Role.USER and _attachments(m)]
    current = _current_user_message(history)
    cap = settings.HISTORY_MAX_MEDIA_TURNS
    earlier = [pk for pk in with_media if current is None or pk != current.pk]
    kept = set(earlier if cap <= 0 else earlier[-cap:])
    if current is not None and current.pk in with_media:
        kept.add(current.pk)
    return kept


def _attachments(message: Message) -> list[Attachment]:
    """A user turn's files: its uploads, and the picture it edits (a reply's own
    pictures are never sent with the reply)."""
    listed = getattr(message, "attachment_list", None)  # from _history's prefetch
    files = [a for a in (listed if listed is not None else message.attachments.all())
             if not a.generated]
    if message.edit_source is not None and message.edit_source not in files:
        files.append(message.edit_source)
    return files


def user_content(
    message: Message,
    relay: Relay,
    *,
    model: ChatModel | None = None,
    include_media: bool = True,
    strict: bool = True,
) -> str | list[dict[str, Any]]:
    """One user turn's `content`: a plain string, or text and media parts.

    `strict` (the turn being answered): a file this model or relay cannot take
    is refused with a message. Earlier turns instead say in a text part that
    a file was left out, so the conversation goes on after a model change.
    """
    attachments = _attachments(message)
    if not attachments:
        return message.text
    parts: list[dict[str, Any]] = []
    if message.text:
        parts.append({"type": "text", "text": message.text})
    for attachment in attachments:
        if not include_media:
            parts.append(_note(attachment, "is not sent again, to save tokens"))
            continue
        refusal = kind_refusal(kind=attachment.kind, model=model, relay=relay)
        if refusal and strict:
            raise ServiceError(gettext("“%(name)s” cannot be sent: %(why)s.")
                               % {"name": attachment.original_name, "why": refusal})
        if refusal:
            parts.append(_note(attachment, "is left out: this model or relay cannot take it"))
            continue
        parts.append(media_part(attachment, relay.dialect))
    return parts


def _note(attachment: Attachment, what: str) -> dict[str, Any]:
    return {"type": "text",
            "text": f"[{attachment.kind} “{attachment.original_name}” from an earlier turn "
                    f"{what}]"}


def request_sent(
    *, reply: Message, relay: Relay | None, before_question: bool = False
) -> SentRequest:
    """What the reply's request carried: its text as tokens, and the files sent.

    `relay` None (the reply lost its model): every file of the turns sent counts.
    `before_question`: `reply` is the answer to a question not written yet (the
    context meter), not the rest of the reply before it.
    """
    conversation = reply.conversation
    view = history_view(conversation=conversation, reply=reply, relay=relay,
                        before_question=before_question)
    history, media_sent = view.messages, view.media_sent
    model = reply.model or conversation.model
    sent = SentRequest(text_tokens=estimate_text_tokens(conversation.system_prompt),
                       left_out=view.left_out,
                       starts_at=view.starts_at.pk if view.starts_at is not None else None)
    for message in history:
        if message.role != Message.Role.USER:
            sent.text_tokens += _tokens_of(message, model=model, relay=relay,
                                           media_sent=media_sent)
            continue
        sent.text_tokens += estimate_text_tokens(message.text)
        if message.pk not in media_sent:
            continue
        for attachment in _attachments(message):
            if relay is None or not kind_refusal(kind=attachment.kind, model=model, relay=relay):
                sent.media.append(SentMedia(attachment, expected_tokens(attachment)))
    if _continues(history) and not before_question:
        sent.text_tokens += estimate_text_tokens(CONTINUE_INSTRUCTION)
    return sent


def carries_media(body: dict[str, Any]) -> bool:
    """Whether the request sent any file (a content part other than text)."""
    return any(
        isinstance(part, dict) and part.get("type") != "text"
        for message in body.get("messages") or ()
        if isinstance(message.get("content"), list)
        for part in message["content"]
    )


# The first message of a chat that continues one grown too long for the window.
CARRY_OVER_INSTRUCTION = gettext_lazy(
    "This continues an earlier conversation that grew too long. Summarise it below in "
    "at most 200 words (the facts, decisions and open questions, in the language it is "
    "written in), then wait for my next message."
)
# The transcript takes at most half the new chat's window, and never more than
# a summary needs (a long transcript costs as much as the history it replaces).
TRANSCRIPT_MAX_TOKENS = 30_000


def carry_over_text(conversation: Conversation) -> str:
    """The instruction, then the newest turns of the branch on screen that fit
    TRANSCRIPT_MAX_TOKENS, as a plain transcript (files named, not sent)."""
    ids = branch_ids(conversation)
    by_id = conversation.messages.prefetch_related(
        Prefetch("attachments", to_attr="attachment_list")).in_bulk(ids)
    budget = min(context_window(conversation.model) // 2, TRANSCRIPT_MAX_TOKENS)
    lines: list[str] = []
    for pk in reversed(ids):
        message = by_id[pk]
        if message.role == Message.Role.USER:
            files = "".join(f" [{a.kind}: {a.original_name}]"
                            for a in getattr(message, "attachment_list", []))
            line = f"User: {message.text}{files}"
        elif message.status in REPLAYED_STATUSES and message.text.strip():
            line = f"Assistant: {replayed_text(message.text)}"
        else:
            continue
        budget -= estimate_text_tokens(line)
        if budget < 0:
            break
        lines.append(line)
    return f"{CARRY_OVER_INSTRUCTION}\n\n" + "\n\n".join(reversed(lines))
