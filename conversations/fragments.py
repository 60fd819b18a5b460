"""HTML fragments shared by the page, the HTMX responses and the WebSocket.

Every swap is an *upsert* into a container: children whose id already exists
in the page replace it, new ones are appended (static/js/chat.js). That makes
frames idempotent: a page that reconnects can be sent the same blocks again.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from django.template.loader import render_to_string
from django.utils import translation
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe

from conversations.events import Block, ReplyFrame
from conversations.history.tree import BranchWindow, Versions, versions_of
from conversations.models import Message
from conversations.rendering import render_markdown


def block_id(message_id: int, field: str, index: int) -> str:
    return f"m{message_id}-{field[0]}{index}"


def render_blocks(message_id: int, field: str, blocks: Iterable[Block]) -> SafeString:
    """The markdown blocks of a reply, each swappable by its id.

    The page, the HTMX responses and every WebSocket frame build blocks here,
    so they are the same markup. Plain string building rather than a
    template: this runs for every frame of every streaming reply.
    """
    return mark_safe(  # noqa: S308 - block HTML is sanitised by rendering.render_block
        "".join(
            f'<div class="md-block" id="{block_id(message_id, field, index)}">{html}</div>'
            for index, html in blocks
        )
    )


def upsert(container_id: str, inner_html: str) -> SafeString:
    """Escaped like format_html (safe strings pass, others are escaped), without
    its lazy-string machinery: this wraps every frame."""
    return mark_safe(  # noqa: S308 - both parts pass conditional_escape
        f'<div hx-swap-oob="beforeend:#{conditional_escape(container_id)}" data-upsert>'
        f"{conditional_escape(inner_html)}</div>"
    )


def message_context(
    message: Message, *, text_html: list[str] | None = None,
    reasoning_html: list[str] | None = None, versions: Versions | None = None,
) -> dict:
    """`text_html`/`reasoning_html`: the blocks already rendered (by the
    generation that streamed them), instead of rendering the text again.
    `versions`: where the message stands among its versions, if known (a page
    reads them for every message at once); else read from its siblings."""
    cached = message.rendered if not message.is_in_flight else None
    if message.role != Message.Role.ASSISTANT:
        text_html = reasoning_html = []  # a person's words are shown as typed, escaped
    if text_html is None:
        text_html = cached["text"] if cached else render_markdown(message.text)
    if reasoning_html is None:
        reasoning_html = cached["reasoning"] if cached else render_markdown(message.reasoning)
    return {
        "message": message,
        "versions": versions if versions is not None else versions_of(message),
        "text_blocks": render_blocks(message.pk, "text", enumerate(text_html)),
        "reasoning_blocks": render_blocks(message.pk, "reasoning", enumerate(reasoning_html)),
    }


def render_message(
    message: Message, *, versions: Versions | None = None, **rendered: list[str] | None
) -> SafeString:
    """The message's partial. Kept on the instance for as long as the message is
    unchanged: a post renders its two new messages once, for the other tabs and
    for its own response (each render is a few milliseconds of every post)."""
    cacheable = not rendered and versions is None
    key = (message.status, message.updated_at, len(message.text), len(message.reasoning))
    cached = message.__dict__.get("_rendered")
    if cacheable and cached is not None and cached[0] == key:
        return cached[1]
    html = mark_safe(  # noqa: S308 - a Django template render, escaped as usual
        render_to_string("conversations/_message.html",
                         message_context(message, versions=versions, **rendered))
    )
    if cacheable:
        message.__dict__["_rendered"] = (key, html)
    return html


def render_window(window: BranchWindow) -> SafeString:
    """A window of the branch on screen: a marker that loads the earlier
    messages when scrolled to, then the messages.

    Finished replies without their blocks kept (saved before they were, or
    closed by another process) are rendered once here and kept, in one
    statement, so the next visit renders no markdown at all.
    """
    unkept = [m for m, _ in window.items if m.role == Message.Role.ASSISTANT
              and not m.is_in_flight and m.rendered is None]
    for message in unkept:
        message.rendered = {"text": render_markdown(message.text),
                            "reasoning": render_markdown(message.reasoning)}
    if unkept:
        Message.objects.bulk_update(unkept, ["rendered"])
    earlier = render_to_string("conversations/_earlier.html", {"window": window})
    return mark_safe(  # noqa: S308 - rendered templates, escaped as usual
        earlier + "".join(render_message(m, versions=v) for m, v in window.items)
    )


def message_list(window: BranchWindow) -> SafeString:
    """The messages on screen, replacing what the page shows: after a switch
    of version or branch, messages leave the page too."""
    return mark_safe(  # noqa: S308 - rendered messages, escaped as usual
        f'<div hx-swap-oob="innerHTML:#message-list">{render_window(window)}</div>'
    )


def messages_upsert(messages: Iterable[Message]) -> SafeString:
    return upsert("message-list", mark_safe("".join(render_message(m) for m in messages)))  # noqa: S308


def branch_upsert(items: Iterable[tuple[Message, Versions]]) -> SafeString:
    """messages_upsert for messages whose versions are known (read with their branch)."""
    return upsert("message-list", mark_safe(  # noqa: S308 - rendered messages, escaped as usual
        "".join(render_message(m, versions=v) for m, v in items)))


def catch_up_marker(stamp: str) -> str:
    """The page's note of what it caught up with (selectors.catch_up_stamp): sent
    with every catch-up; the page hands it back when it reconnects (chat.js)."""
    return format_html('<div id="catch-up-stamp" hx-swap-oob="true" data-stamp="{}" hidden>'
                       '</div>', stamp)


def render_stored_messages(message_ids: Iterable[int]) -> str:
    """The messages as stored, as one upsert ("" if none is left).

    For the channel-layer events: the publisher renders once for every page
    watching; the group only reaches the conversation's owner.
    """
    messages = list(
        Message.objects.filter(pk__in=list(message_ids))
        .select_related("model", "usage", "edit_source")
        .prefetch_related("attachments")
        .order_by("pk")
    )
    return str(messages_upsert(messages)) if messages else ""


@lru_cache(maxsize=4096)  # sent with every frame to every page: rendered once a reply
def writing_badge(message_id: int, language: str) -> SafeString:
    """The "writing…" badge, replacing "waiting for the relay…" (the same partial
    the page renders for a streaming reply), in `language`."""
    with translation.override(language):
        return mark_safe(  # noqa: S308 - a template render, escaped as usual
            render_to_string("conversations/_writing_badge.html", {"message_id": message_id}))


def frame_html(frame: ReplyFrame, language: str | None = None) -> str:
    """A frame as HTML for one page; `language`: the page's (default: the active one).
    Given explicitly by a socket: an in-process layer may call it in the sender's
    context, where the active language is the reply's owner's."""
    message_id = frame["message_id"]
    parts = []
    # On every frame, not the first alone: the post's own response, rendered while
    # the reply was pending, may land after the first frames and put the old badge back.
    parts.append(upsert(f"m{message_id}-head",
                        writing_badge(message_id, language or translation.get_language())))
    if frame["reasoning"]:
        parts.append(
            upsert(f"m{message_id}-reasoning",
                   render_blocks(message_id, "reasoning", frame["reasoning"]))
        )
    if frame["text"]:
        parts.append(
            upsert(f"m{message_id}-text", render_blocks(message_id, "text", frame["text"]))
        )
    return "".join(parts)
