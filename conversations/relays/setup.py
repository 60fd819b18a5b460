"""Relays and models created for the app: from the environment on first start,
the built-in simulator's, and those imported from a relay's /v1/models.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.crypto import salted_hmac

from conversations.models import ChatModel, Dialect, Relay
from conversations.relays.addresses import RelayAddressError, check_relay_url
from conversations.relays.catalogue import capabilities_for
from conversations.relays.client import RelayTarget

SIMULATED_RELAY_NAME = "Relay simulator"


def ensure_default_relay(*, simulator_url: str | None = None) -> Relay | None:
    """Create the relay configured by the environment on first start.

    With RELAY_BASE_URL set, that relay (and RELAY_MODELS) is created once.
    Without it, the built-in simulator relay is created (first at `simulator_url`;
    each process then reaches its own mount, see `relay_target`), holding this
    install's simulator key.
    """
    if settings.RELAY_BASE_URL:
        try:
            check_relay_url(settings.RELAY_BASE_URL)
        except RelayAddressError as exc:
            raise ImproperlyConfigured(f"RELAY_BASE_URL: {exc}") from exc
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
                    defaults={"display_name": model_id,
                              **capabilities_for(model_id).as_fields()},
                )
        return relay
    if not simulator_url:
        return Relay.objects.filter(is_simulated=True).first()
    simulated = Relay.objects.filter(is_simulated=True, name=SIMULATED_RELAY_NAME)
    # image_url-for-all carries every medium the simulated models accept
    # (openai has no video part), as new-api's Gemini channel reads them.
    try:
        relay, created = Relay.objects.get_or_create(
            is_simulated=True, name=SIMULATED_RELAY_NAME,
            defaults={"base_url": simulator_url, "api_key": simulator_key(),
                      "dialect": Dialect.IMAGE_URL_FOR_ALL},
        )
    except ValueError:  # its key was encrypted with another SECRET_KEY: it gets this one's
        simulated.update(api_key=simulator_key())
        relay, created = simulated.get(), False
    if created:
        create_simulated_models(relay=relay)
    elif relay.api_key != simulator_key():  # an install from before the key
        relay.api_key = simulator_key()
        relay.save(update_fields=["api_key"])
    return relay


def simulator_key() -> str:
    """The Bearer key of this install's mounted simulator: derived from SECRET_KEY, so
    every process of the install agrees on it and no one outside can guess it."""
    return salted_hmac("conversations.relays.simulator-key", "mounted simulator",
                       algorithm="sha256").hexdigest()


def create_simulated_models(*, relay: Relay) -> None:
    all_media = {"accepts_image": True, "accepts_audio": True, "accepts_video": True,
                 "accepts_pdf": True}
    specs = [
        ("gemini-2.5-flash", "Gemini 2.5 Flash (simulated)", all_media),
        ("gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite (simulated)", all_media),
        ("gemini-3.1-flash-lite-preview", "Gemini 3.1 Flash-Lite (simulated)", all_media),
        ("gpt-4o-mini", "GPT-4o mini (simulated)", {"accepts_image": True}),
        ("gemini-2.5-flash-image", "Gemini 2.5 Flash Image (simulated)",
         {"accepts_image": True, "outputs_images": True}),
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
    """Where and how to reach `relay`. A simulated relay is reached at this process's
    own mount (SIMULATOR_URL, set by `serve`), so several processes each stream from
    themselves instead of all from whichever started last, with this install's key
    (also for simulated relays an admin adds)."""
    if relay.is_simulated and settings.SIMULATOR_URL:
        # A family of the simulator (…/simulator/newapi, /substitutes) keeps its path.
        _, mount, family = relay.base_url.partition("/simulator")
        return RelayTarget(base_url=settings.SIMULATOR_URL + (family if mount else ""),
                           api_key=simulator_key(), name=relay.name)
    return RelayTarget(base_url=relay.base_url, api_key=relay.api_key or "", name=relay.name)


def import_models(
    *, relay: Relay, model_ids: list[str], listed: dict[str, dict] | None = None
) -> list[ChatModel]:
    """New models for `model_ids`, their capabilities from the catalogue and
    from `listed` (the relay's own /v1/models entries, by id)."""
    created = []
    listed = listed or {}
    for model_id in model_ids:
        model, was_created = ChatModel.objects.get_or_create(
            relay=relay, model_id=model_id,
            defaults={"display_name": model_id,
                      **capabilities_for(model_id, listed=listed.get(model_id)).as_fields()},
        )
        if was_created:
            created.append(model)
    return created
