"""Writes to conversations and their messages: keyword-only, typed verbs that
own their transaction. A posted message starts its reply after commit; the
reply's own steps are in replies.py.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from uuid import UUID

from asgiref.sync import async_to_sync
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from conversations import generation, replies
from conversations.billing.budgets import enforce_budget
from conversations.capabilities import ASPECT_RATIOS, IMAGE_SIZES, kind_refusal
from conversations.errors import ReplyInFlight, ServiceError
from conversations.events import control_group, conversation_group, publish
from conversations.fragments import messages_upsert
from conversations.history import tree
from conversations.media.uploads import clean_name, prepare_uploads, store_attachments
from conversations.models import Attachment, ChatModel, Conversation, Message
from conversations.prompt import carry_over_text

TITLE_LENGTH = 60


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


def switch_model(*, conversation: Conversation, model: ChatModel) -> Conversation:
    conversation.model = model
    conversation.save(update_fields=["model"])
    return conversation


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
    aspect_ratio: str = "",
    image_size: str = "",
    edit_picture: UUID | None = None,
) -> tuple[Message, Message]:
    """Store the user's message and a pending reply; generate after commit.

    `aspect_ratio`, `image_size`: for an image-output model, kept with the
    conversation from this message on ('' keeps its choice). `edit_picture`:
    a picture of this conversation (generated or uploaded) to send with the
    message, to be edited; without one, an image model edits the latest
    picture it made.
    """
    if conversation.owner_id != author.pk:
        raise ServiceError(gettext("This conversation is not yours."))
    text = text.strip()
    files = files or []
    if not text and not files:
        raise ServiceError(gettext("Write a message or attach a file first."))
    model = _usable_model(conversation)
    if files:
        # Checked and converted (ffprobe, ffmpeg) before the transaction takes its locks.
        prepare_uploads(files=files, model=model)
    with transaction.atomic():
        _lock_idle(conversation)
        # Inside the transaction: the budget check and the pending reply are one step.
        check_budget(owner=author)
        now = timezone.now()
        edit_source = picture_to_edit(conversation=conversation, uuid=edit_picture,
                                      model=model, with_files=bool(files))
        user_message = Message.objects.create(
            conversation=conversation, role=Message.Role.USER, text=text, created_at=now,
            updated_at=now, parent_id=tree.leaf_id(conversation), edit_source=edit_source,
        )
        stored = (store_attachments(message=user_message, owner=author, files=files)
                  if files else [])
        reply = _pending_reply(conversation, parent=user_message, model=model,
                               created_at=now + timedelta(microseconds=1))
        _known_as_new(user_message, attachments=stored)
        _known_as_new(reply, attachments=[])
        fields = ["updated_at"]
        conversation.updated_at = now
        if aspect_ratio in ASPECT_RATIOS and aspect_ratio != conversation.image_aspect_ratio:
            conversation.image_aspect_ratio = aspect_ratio
            fields.append("image_aspect_ratio")
        if image_size in IMAGE_SIZES and image_size != conversation.image_size:
            conversation.image_size = image_size
            fields.append("image_size")
        if not conversation.title:
            conversation.title = _title_from(text, files)
            conversation.title_source = Conversation.TitleSource.FIRST_WORDS
            fields += ["title", "title_source"]
        conversation.save(update_fields=fields)
        transaction.on_commit(lambda: _start(
            reply.pk, conversation_id=conversation.pk, shown=[user_message, reply]
        ))
    return user_message, reply


def picture_to_edit(
    *, conversation: Conversation, uuid: UUID | None, model: ChatModel, with_files: bool
) -> Attachment | None:
    """The picture a new message edits: the one chosen (of this conversation only), or
    for an image-output model the latest it made, unless the message brings its own."""
    pictures = Attachment.objects.filter(
        message__conversation=conversation, owner_id=conversation.owner_id,
        kind=Attachment.Kind.IMAGE,
    )
    if uuid is not None:
        chosen = pictures.filter(uuid=uuid).first()
        if chosen is None:
            raise ServiceError(gettext("The picture you chose to edit is not in this "
                                       "conversation any more; pick another one or send "
                                       "without it."))
        refusal = kind_refusal(kind=chosen.kind, model=model, relay=model.relay)
        if refusal:
            raise ServiceError(gettext("The picture you chose cannot be sent: %(why)s.")
                               % {"why": refusal})
        return chosen
    if with_files or not model.outputs_images:
        return None
    return pictures.filter(generated=True).order_by("-created_at", "-pk").first()


def regenerate_reply(*, message: Message) -> Message:
    """A new version of a reply, in its place: the same question answered again
    (Retry after a failure, Regenerate after a success). The old version is kept
    and its cost stays counted; the new one is put on screen."""
    if message.role != Message.Role.ASSISTANT or message.is_in_flight:
        raise ServiceError(gettext("Only a finished reply can be retried."))
    return _answer_again(message.conversation, parent_id=message.parent_id)


def edit_message(*, message: Message, text: str) -> tuple[Message, Message]:
    """Ask an earlier question differently: a new branch beside the old one,
    with the same files, answered afresh. The old branch stays one click away."""
    if message.role != Message.Role.USER:
        raise ServiceError(gettext("Only your own messages can be edited."))
    text = text.strip()
    originals = list(message.attachments.all())
    if not text and not originals:
        raise ServiceError(gettext("Write a message or attach a file first."))
    conversation = message.conversation
    model = _usable_model(conversation)
    with transaction.atomic():
        _lock_idle(conversation)
        check_budget(owner=conversation.owner)
        now = timezone.now()
        edited = Message.objects.create(
            conversation=conversation, role=Message.Role.USER, text=text,
            parent_id=message.parent_id, created_at=now, updated_at=now,
        )
        # The same stored files, not copies of their bytes (the storage keeps
        # a file while any row names it: media/uploads.py).
        for original in originals:
            original.pk = None
            original.uuid = uuid.uuid4()
            original.message = edited
            original.created_at = now
        Attachment.objects.bulk_create(originals)
        reply = _pending_reply(conversation, parent=edited, model=model,
                               created_at=now + timedelta(microseconds=1))
        _show(conversation, reply, now=now)
        transaction.on_commit(lambda: _start(
            reply.pk, conversation_id=conversation.pk, shown=[edited, reply]
        ))
    return edited, reply


def continue_reply(*, message: Message) -> Message:
    """The rest of a reply that stopped at the length limit, as its continuation."""
    if message.role != Message.Role.ASSISTANT or message.finish_reason != "length":
        raise ServiceError(gettext("Only a reply cut at the length limit can be continued."))
    if message.is_in_flight:
        raise ReplyInFlight(gettext("Wait for this reply to finish first."))
    return _answer_again(message.conversation, parent_id=message.pk)


def show_version(*, message: Message) -> None:
    """Put this version (of a reply, or branch of a question) on screen."""
    conversation = message.conversation
    conversation.current_children = tree.Tree.of(conversation).choices_showing(message.pk)
    conversation.save(update_fields=["current_children"])


def _answer_again(conversation: Conversation, *, parent_id: int | None) -> Message:
    model = _usable_model(conversation)
    with transaction.atomic():
        _lock_idle(conversation)
        check_budget(owner=conversation.owner)
        now = timezone.now()
        reply = _pending_reply(conversation, parent_id=parent_id, model=model, created_at=now)
        _show(conversation, reply, now=now)
        transaction.on_commit(
            lambda: _start(reply.pk, conversation_id=conversation.pk, shown=[reply])
        )
    return reply


def _usable_model(conversation: Conversation) -> ChatModel:
    model = conversation.model
    if model is None or not model.is_active:
        raise ServiceError(gettext("Pick a model for this conversation first."))
    return model


def _known_as_new(message: Message, *, attachments: list[Attachment]) -> None:
    """What rendering a message just created would ask the database, told instead:
    its files, no usage yet, and no sibling (it is its parent's only child). A post
    renders its two messages for the page and the other tabs; these were 5 of its
    19 queries (about 3 ms of its 21 ms of CPU, measured with a profile of 100 posts)."""
    files = message.attachments.all()
    files._result_cache = list(attachments)  # what prefetch_related stores
    files._prefetch_done = True
    message._prefetched_objects_cache = {"attachments": files}
    Message.usage.related.set_cached_value(message, None)
    tree.mark_only_version(message)


def _pending_reply(conversation: Conversation, *, model: ChatModel, created_at,
                   parent: Message | None = None, parent_id: int | None = None) -> Message:
    return Message.objects.create(
        conversation=conversation, role=Message.Role.ASSISTANT, status=Message.Status.PENDING,
        model=model, parent_id=parent.pk if parent is not None else parent_id,
        created_at=created_at, updated_at=created_at,
    )


def _show(conversation: Conversation, message: Message, *, now) -> None:
    conversation.current_children = tree.Tree.of(conversation).choices_showing(message.pk)
    conversation.updated_at = now
    conversation.save(update_fields=["current_children", "updated_at"])


def _lock_idle(conversation: Conversation) -> None:
    """One reply at a time per conversation, even when two posts race.

    Locks the conversation row (PostgreSQL; SQLite serialises write
    transactions anyway) before looking for a reply in flight.
    """
    list(Conversation.objects.select_for_update().filter(pk=conversation.pk).values_list("pk"))
    if conversation.messages.in_flight().exists():
        raise ReplyInFlight(
            gettext("Wait for the current reply to finish, or stop it, before sending."))


def check_budget(*, owner: AbstractBaseUser) -> None:
    """Refuse before anything is stored or sent when the monthly budget is spent.

    Call inside the transaction that creates the pending reply: the pricing
    module locks the user's budget row, so two racing posts cannot both pass.
    """
    enforce_budget(owner=owner)


def _title_from(text: str, files: list) -> str:
    line = " ".join(text.split())
    if not line and files:
        # clean_name: no folders or direction overrides in a title
        line = ", ".join(clean_name(getattr(f, "name", "")) for f in files)
    return line[: TITLE_LENGTH - 1] + "…" if len(line) > TITLE_LENGTH else line


def _start(message_id: int, *, conversation_id: int, shown: list[Message]) -> None:
    """After commit: show every page watching the new messages, then generate.

    `shown`: the messages just created, as committed (rendered as they are,
    not read back).
    """
    # Other tabs need the new messages before the reply's frames arrive: the
    # generation announces them first thing.
    html = str(messages_upsert(shown))
    # The post's own response (views.message_create) shows the same messages:
    # rendered once, not again there.
    shown[-1].shown_html = html
    generation.start_generation(message_id, announce=(
        conversation_group(conversation_id),
        {"type": "messages.created", "html": html},
    ))


def request_stop(*, message: Message) -> bool:
    """Stop a reply, keeping what arrived. Returns False if it was not running.

    A reply not started yet is cancelled here. A running one is told to stop
    through its conversation's control group, wherever its process is; it
    saves itself as cancelled. A reply whose process died is closed as interrupted.
    """
    if not message.is_in_flight:
        return False
    now = timezone.now()
    closed = Message.objects.filter(pk=message.pk, status=Message.Status.PENDING).update(
        status=Message.Status.CANCELLED, updated_at=now, completed_at=now
    )
    if not closed:
        # Closed here if its process looks dead; told to stop all the same, in case
        # it is alive after all (it then saves itself as cancelled, over the close).
        replies.close_dead_replies(message_id=message.pk)
        async_to_sync(publish)(
            control_group(message.conversation_id),
            {"type": "generation.stop", "message_id": message.pk},
        )
    return True


def rename_conversation(*, conversation: Conversation, title: str) -> Conversation:
    title = " ".join(title.split())[:TITLE_LENGTH * 2]
    if not title:
        raise ServiceError(gettext("A title cannot be empty."))
    conversation.title = title
    conversation.title_source = Conversation.TitleSource.USER  # never named again
    conversation.save(update_fields=["title", "title_source"])
    return conversation


def set_pinned(*, conversation: Conversation, pinned: bool) -> Conversation:
    conversation.pinned = pinned
    conversation.save(update_fields=["pinned"])
    return conversation


def set_archived(*, conversation: Conversation, archived: bool) -> Conversation:
    """Archived: out of the sidebar, still found by search and counted in costs."""
    conversation.archived_at = timezone.now() if archived else None
    conversation.save(update_fields=["archived_at"])
    return conversation


def delete_conversation(*, conversation: Conversation) -> None:
    """Its messages and files go (the files from storage once this commits);
    its row and usage stay, so what it cost stays in every total
    (billing's UsageDay and Usage point at the conversation, not its messages)."""
    with transaction.atomic():
        try:
            _lock_idle(conversation)
        except ServiceError as busy:
            raise ServiceError(
                gettext("Stop the reply being written before deleting this conversation.")
            ) from busy
        conversation.messages.all().delete()  # attachments cascade; media/uploads.py frees files
        conversation.deleted_at = timezone.now()
        conversation.current_children = {}
        conversation.save(update_fields=["deleted_at", "current_children"])


def continue_in_new_chat(*, conversation: Conversation, author: AbstractBaseUser
                         ) -> Conversation:
    """A new chat with the same model and settings whose first message asks for a
    summary of this one (its newest turns that fit): the answer carries the
    conversation on without the history that no longer fits."""
    fresh = create_conversation(
        owner=author, model=conversation.model, system_prompt=conversation.system_prompt,
        temperature=conversation.temperature, top_p=conversation.top_p,
        max_tokens=conversation.max_tokens,
    )
    fresh.title = (gettext("%(title)s (continued)") % {"title": conversation.title})[:200]
    fresh.title_source = Conversation.TitleSource.FIRST_WORDS
    fresh.save(update_fields=["title", "title_source"])
    post_message(conversation=fresh, author=author, text=carry_over_text(conversation))
    return fresh
