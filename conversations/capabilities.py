"""What a model and its relay can take: the rule every refusal of a file uses.

A relay's dialect decides which media kinds it has any way to send
(relays/dialects.py spells them); a model's flags decide which it accepts.
Uploads are refused with this rule, and so are files of earlier turns when
the request is built. Imports only the models.
"""

from __future__ import annotations

from django.utils.translation import gettext, pgettext_lazy

from conversations.models import ChatModel, Dialect, Relay

# A kind of file as the object of a sentence ("no way to send %(kind)s").
KIND_WORDS = {
    "image": pgettext_lazy("sent", "an image"),
    "audio": pgettext_lazy("sent", "audio"),
    "video": pgettext_lazy("sent", "a video"),
    "pdf": pgettext_lazy("sent", "a PDF"),
}

# What each dialect has a way to send at all.
DIALECT_KINDS: dict[str, set[str]] = {
    Dialect.OPENAI: {"image", "audio", "pdf"},
    Dialect.IMAGE_URL_FOR_ALL: {"image", "audio", "video", "pdf"},
    Dialect.MEDIA_URL_PARTS: {"image", "audio", "video", "pdf"},
    Dialect.OPENROUTER: {"image", "audio", "video", "pdf"},
    Dialect.IMAGES_ONLY: {"image"},
}


def dialect_name(dialect: str) -> str:
    return f"“{dialect}”"


def kind_refusal(*, kind: str, model: ChatModel | None, relay: Relay) -> str:
    """Why a file of `kind` cannot be sent to this model through this relay, or ''."""
    if kind not in DIALECT_KINDS.get(relay.dialect, set()):
        others = [d for d, kinds in DIALECT_KINDS.items() if kind in kinds]
        # Said after "cannot be sent: ", so without a capital or a final stop.
        return gettext(
            "the relay “%(relay)s” is set to the %(dialect)s dialect, which has no way to "
            "send %(kind)s. If its models take %(kind)s, change the relay's dialect (e.g. "
            "%(suggested)s) in the admin, or pick a model on another relay"
        ) % {
            "relay": relay.name, "dialect": dialect_name(relay.dialect), "kind": KIND_WORDS[kind],
            "suggested": dialect_name(others[0] if relay.dialect != others[0] else others[-1]),
        }
    if model is not None and not getattr(model, f"accepts_{kind}", False):
        return gettext(
            "%(model)s does not accept %(kind)s. Pick a model that does in the "
            "conversation's settings"
        ) % {"model": model, "kind": KIND_WORDS[kind]}
    return ""


def refusals_for(*, model: ChatModel, viewer) -> dict[str, str]:
    """Each kind of file `model` cannot be sent, with the reason in words for
    `viewer`: what to change for staff, what to pick for everyone else. The
    page refuses a file with these the moment it is picked (static/js)."""
    staff = getattr(viewer, "is_staff", False)
    found = {}
    for kind in KIND_WORDS:
        refusal = kind_refusal(kind=kind, model=model, relay=model.relay)
        if refusal and not staff:
            refusal = gettext(
                "%(model)s cannot take %(kind)s here. Pick a model that does: the model "
                "menu says what each one takes"
            ) % {"model": model, "kind": KIND_WORDS[kind]}
        if refusal:
            found[kind] = refusal
    return found


# Gemini image models' options (PROTOCOL.md §7, seed 004).
ASPECT_RATIOS = ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
IMAGE_SIZES = ["1K", "2K", "4K"]
DEFAULT_ASPECT_RATIO = "1:1"
DEFAULT_IMAGE_SIZE = "1K"


def image_config(*, model: ChatModel, aspect_ratio: str, image_size: str) -> dict | None:
    """The request's `extra_body` for an image-output model (snake_case, as seed 004
    spells it: new-api refuses camelCase), or None for any other model."""
    if not model.outputs_images:
        return None
    return {"google": {"image_config": {
        "aspect_ratio": aspect_ratio if aspect_ratio in ASPECT_RATIOS else DEFAULT_ASPECT_RATIO,
        "image_size": image_size if image_size in IMAGE_SIZES else DEFAULT_IMAGE_SIZE,
    }}}


def requested_aspect_ratio(body: dict) -> str:
    """The aspect ratio a request body asked for, or ''."""
    extra = body.get("extra_body")
    config = (extra or {}).get("google", {}).get("image_config", {}) if isinstance(
        extra, dict) else {}
    return str(config.get("aspect_ratio", "")) if isinstance(config, dict) else ""
