"""Taking conversations away: Markdown (files as links) or a zip of JSON plus the files.

Both are generators of bytes, read from the database a conversation at a
time and from storage a megabyte at a time, so a conversation with 1 GB of
attachments streams out without sitting in memory. The zip is written
without seeking (data descriptors); files are stored as they are (already
compressed), the text deflated.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterable, Iterator

from django.db.models import Prefetch
from django.utils import translation
from django.utils.text import slugify
from django.utils.translation import gettext, ngettext

from conversations.history.tree import Tree
from conversations.models import Attachment, Conversation, Message

CHUNK = 1024 * 1024
ZIP64_ABOVE = 2**31  # bytes: larger files need zip64 sizes


def markdown(conversation: Conversation, *, file_url: Callable[[Attachment], str]) -> str:
    """The branch on screen as Markdown; files as links (`file_url`: an absolute URL)."""
    lines = [f"# {_one_line(str(conversation))}", ""]
    if conversation.system_prompt.strip():
        prompt = [f"> {line}" for line in conversation.system_prompt.splitlines()]
        lines += ["> " + gettext("System prompt:"), *prompt, ""]
    for message in _branch(conversation):
        who = gettext("You") if message.role == Message.Role.USER else (
            str(message.model) if message.model else gettext("Assistant"))
        lines += [f"## {who} · {message.created_at:%Y-%m-%d %H:%M}", ""]
        if message.text:
            lines += [message.text, ""]
        if message.error:
            lines += ["*" + gettext("Failed: %(error)s") % {"error": message.error} + "*", ""]
        for attachment in message.attachment_list:
            label = _link_text(attachment.original_name)
            about = ngettext("%(kind)s, %(size)s byte", "%(kind)s, %(size)s bytes",
                             attachment.size) % {"kind": attachment.kind,
                                                 "size": f"{attachment.size:,}"}
            lines.append(f"- [{label}]({file_url(attachment)}) ({about})")
        if message.attachment_list:
            lines.append("")
    return "\n".join(lines)


def zip_stream(conversations: Iterable[Conversation], *,
               file_url: Callable[[Attachment], str]) -> Iterator[bytes]:
    """A zip with, per conversation, conversation.json (every message and version),
    conversation.md and its files under files/. In the language active when it is
    called: the response reads it later, maybe in another thread."""
    return _zip_chunks(conversations, file_url=file_url, language=translation.get_language())


def _zip_chunks(conversations: Iterable[Conversation], *,
                file_url: Callable[[Attachment], str], language: str) -> Iterator[bytes]:
    with translation.override(language):
        yield from _zip_in_language(conversations, file_url=file_url)


def _zip_in_language(conversations: Iterable[Conversation], *,
                     file_url: Callable[[Attachment], str]) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, mode="w") as archive:
        for conversation in conversations:
            folder = f"{conversation.pk}-{slugify(str(conversation))[:40] or 'conversation'}"
            messages = _all_messages(conversation)
            data = _as_json(conversation, messages, folder)
            archive.writestr(f"{folder}/conversation.json",
                             json.dumps(data, ensure_ascii=False, indent=1),
                             compress_type=zipfile.ZIP_DEFLATED)
            archive.writestr(f"{folder}/conversation.md",
                             markdown(conversation, file_url=file_url),
                             compress_type=zipfile.ZIP_DEFLATED)
            yield sink.take()
            for message in messages:
                for attachment in message.attachment_list:
                    yield from _write_file(archive, sink, attachment,
                                           f"{folder}/{_file_path(attachment)}")
    yield sink.take()  # the central directory


def _write_file(archive: zipfile.ZipFile, sink: _Sink, attachment: Attachment,
                name: str) -> Iterator[bytes]:
    try:
        source = attachment.file.storage.open(attachment.file.name, "rb")
    except OSError:
        archive.writestr(f"{name}.missing.txt", gettext("This file was missing from storage."))
        yield sink.take()
        return
    info = zipfile.ZipInfo(name, date_time=attachment.created_at.timetuple()[:6])
    info.compress_type = zipfile.ZIP_STORED
    with source, archive.open(info, "w", force_zip64=attachment.size > ZIP64_ABOVE) as target:
        while chunk := source.read(CHUNK):
            target.write(chunk)
            yield sink.take()


def _branch(conversation: Conversation) -> list[Message]:
    ids = Tree.of(conversation).branch()
    by_id = {m.pk: m for m in _messages(conversation).filter(pk__in=ids)}
    return [by_id[pk] for pk in ids if pk in by_id]


def _all_messages(conversation: Conversation) -> list[Message]:
    return list(_messages(conversation).order_by("created_at", "pk"))


def _messages(conversation: Conversation):
    return (Message.objects.filter(conversation_id=conversation.pk)
            .select_related("model", "usage")
            .prefetch_related(Prefetch("attachments", to_attr="attachment_list")))


def _as_json(conversation: Conversation, messages: list[Message], folder: str) -> dict:
    on_screen = set(Tree.of(conversation).branch())
    return {
        "id": conversation.pk, "title": conversation.title,
        "model": conversation.model.model_id if conversation.model else None,
        "system_prompt": conversation.system_prompt,
        "temperature": conversation.temperature, "top_p": conversation.top_p,
        "max_tokens": conversation.max_tokens,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
        "total_cost": str(conversation.total_cost),
        "messages": [{
            "id": m.pk, "parent_id": m.parent_id, "on_screen": m.pk in on_screen,
            "role": m.role, "text": m.text, "reasoning": m.reasoning, "status": m.status,
            "finish_reason": m.finish_reason, "error": m.error,
            "model": m.model.model_id if m.model else None,
            "created_at": m.created_at.isoformat(),
            "usage": _usage(m),
            "attachments": [{
                "name": a.original_name, "kind": a.kind, "mime": a.mime, "size": a.size,
                "sha256": a.sha256, "generated": a.generated, "path": _file_path(a),
            } for a in m.attachment_list],
        } for m in messages],
    }


def _usage(message: Message) -> dict | None:
    usage = getattr(message, "usage", None)
    if usage is None:
        return None
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "cost": None if usage.cost is None else str(usage.cost),
            "currency": usage.currency, "estimated": usage.estimated}


def _file_path(attachment: Attachment) -> str:
    name = attachment.original_name.replace("/", "_").replace("\\", "_").lstrip(".") or "file"
    return f"files/{attachment.uuid.hex[:8]}-{name}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _link_text(name: str) -> str:
    return name.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def export_filename(conversation: Conversation | None, extension: str) -> str:
    stem = slugify(str(conversation))[:60] if conversation else "conversations"
    return f"{stem or 'conversation'}.{extension}"


class _Sink:
    """A write-only file for ZipFile: what it writes is taken out as it goes."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data
