"""Noticing what a relay did not say: media it dropped without an error, and
a model it answered with in place of the one asked for.

new-api drops content parts it does not know and answers as if nothing
happened (PROTOCOL.md §2). After each reply that carried files, the usage the
relay reported is held against what those files should have cost.
"""

from __future__ import annotations

import itertools

from django.utils.translation import gettext, pgettext, pgettext_lazy

from conversations.capabilities import dialect_name
from conversations.models import ChatModel, Dialect, Message, Usage
from conversations.relays.catalogue import catalogue_key, undated_key
from conversations.tokens import SentMedia, SentRequest

# A kind of file as the silent-drop warning names it ("dropped an image").
KIND_WORDS = {
    "image": pgettext_lazy("dropped kind", "an image"),
    "audio": pgettext_lazy("dropped kind", "audio"),
    "video": pgettext_lazy("dropped kind", "a video"),
    "pdf": pgettext_lazy("dropped kind", "a PDF"),
}


def _suggested_dialect(dialect: str, kind: str) -> str:
    if dialect != Dialect.IMAGE_URL_FOR_ALL:
        return Dialect.IMAGE_URL_FOR_ALL
    return Dialect.MEDIA_URL_PARTS if kind == "video" else Dialect.OPENAI


def _likely_cause(dialect: str, kind: str) -> str:
    if dialect == Dialect.MEDIA_URL_PARTS and kind == "audio":
        return gettext("new-api ignores `audio_url` parts without an error")
    if dialect == Dialect.MEDIA_URL_PARTS and kind == "video":
        return gettext("new-api reads `video_url` only as a bare string and ignores "
                       "`video_url` objects")
    return gettext("the relay probably does not pass this kind of part on to the model")


def silent_drop_warnings(*, sent: SentRequest, usage: Usage, model: ChatModel) -> list[str]:
    """Warnings for media the relay seems to have dropped without saying so.

    `sent`: what the request carried (prompt.request_sent); `model`: the reply's.
    """
    if usage.estimated or not isinstance(usage.raw, dict) or not sent.media:
        return []
    relay = model.relay
    text_tokens = sent.text_tokens + sent.image_tokens
    by_kind: dict[str, list[SentMedia]] = {}
    for item in sent.media:
        by_kind.setdefault(item.attachment.kind, []).append(item)
    expected = {kind: sum(i.expected_tokens for i in items) for kind, items in by_kind.items()}
    dropped: list[str] = []

    details = usage.raw.get("prompt_tokens_details")
    reports_audio = isinstance(details, dict) and "audio_tokens" in details
    non_audio_expected = sum(v for k, v in expected.items() if k != "audio")
    if "audio" in expected and reports_audio and usage.prompt_audio_tokens == 0:
        # Some relays fold audio into prompt_tokens; only a prompt too small to
        # hold the audio as well is evidence of a drop.
        if usage.prompt_tokens < text_tokens + non_audio_expected + expected["audio"] / 2:
            dropped.append("audio")

    # The rates are Gemini's; other vendors count images differently (Claude's
    # tiny image costs a few tokens), so the count test is for Gemini models.
    visual = [k for k in ("image", "video", "pdf") if k in expected]
    if visual and "gemini" in model.model_id.lower():
        counted = usage.prompt_tokens - text_tokens - usage.prompt_audio_tokens
        total = sum(expected[k] for k in visual)
        shortfall = total - counted
        if shortfall >= max(100, total / 4):
            subsets = itertools.chain.from_iterable(
                itertools.combinations(visual, n) for n in range(len(visual) + 1)
            )
            best = min(subsets, key=lambda s: abs(sum(expected[k] for k in s) - counted))
            dropped.extend(k for k in visual if k not in best)

    warnings = []
    for kind in dropped:
        names = pgettext("list separator", ", ").join(
            f"“{i.attachment.original_name}”" for i in by_kind[kind])
        warnings.append(gettext(
            "The relay seems to have dropped %(kind)s (%(names)s) without an error: the usage "
            "it reported has no tokens for it, so the model probably never saw it. Likely "
            "cause: %(cause)s. Try setting the relay's dialect to %(dialect)s and retry."
        ) % {"kind": KIND_WORDS[kind], "names": names, "cause": _likely_cause(relay.dialect, kind),
             "dialect": dialect_name(_suggested_dialect(relay.dialect, kind))})
    return warnings


def is_substitution(*, requested: str, served: str) -> bool:
    """Whether the answer's `model` names another model than the one asked for;
    a dated name of the same model is none (OpenAI answers `gpt-4o-mini` as
    `gpt-4o-mini-2024-07-18`)."""
    if not served or not requested:
        return False
    return undated_key(requested) != undated_key(served)


def note_served_model(*, message: Message, served: str) -> str:
    """Keep the relay's `model` beside the one asked for; the warning shown
    under the reply when they differ, or ''."""
    message.served_model = served[:200]
    requested = message.model.model_id if message.model is not None else ""
    message.model_substituted = is_substitution(requested=requested, served=served)
    if not message.model_substituted:
        return ""
    return gettext("The relay answered with “%(served)s”, not “%(requested)s” as asked: it "
                   "may have put another model in its place.") % {
        "served": served[:200], "requested": catalogue_key(requested)}
