"""Models get their capabilities from the models.dev catalogue when created."""

from __future__ import annotations

import pytest
from django.test import Client

from conversations.capabilities import kind_refusal
from conversations.models import ChatModel
from conversations.relays import setup
from conversations.relays.catalogue import capabilities_for
from tests.factories import make_relay, make_user

ALL_INPUTS = {"accepts_image": True, "accepts_audio": True, "accepts_video": True,
              "accepts_pdf": True}


def _flags(model_id: str, **listed) -> dict:
    fields = capabilities_for(model_id, listed=listed or None).as_fields()
    return {k: v for k, v in fields.items() if k.startswith(("accepts_", "outputs_"))}


@pytest.mark.parametrize("model_id", [
    "gemini-2.5-flash-lite",  # seed 000
    "gemini-3.1-flash-lite-preview",  # seed 001
    "gemini/gemini-2.5-flash-lite", "vertex_ai/gemini-2.5-flash-lite",
    "openrouter/google/gemini-2.5-flash-lite", "gemini-2.5-flash-lite@reasoning",
])
def test_gemini_text_models_from_the_seeds_take_every_medium(model_id):
    assert _flags(model_id) == {**ALL_INPUTS, "outputs_images": False}
    assert capabilities_for(model_id).context_window == 1_048_576


def test_gemini_image_models_output_pictures():
    # seeds 002 and 004: not in the catalogue under this id; the nearest entry
    # (gemini-2.0-flash) gives the inputs, the id says it draws
    exp = capabilities_for("gemini-2.0-flash-exp-image-generation")
    assert exp.outputs_images and exp.accepts_image
    assert "gemini-2.0-flash" in exp.source
    image = capabilities_for("gemini-2.5-flash-image")
    assert image.outputs_images and image.accepts_image and not image.accepts_audio


def test_gpt_4o_mini_takes_images_and_pdfs_but_no_audio_even_with_a_date():
    for model_id in ("gpt-4o-mini", "gpt-4o-mini-2024-07-18"):
        assert _flags(model_id) == {"accepts_image": True, "accepts_audio": False,
                                    "accepts_video": False, "accepts_pdf": True,
                                    "outputs_images": False}
        assert capabilities_for(model_id).context_window == 128_000


def test_an_unknown_model_is_text_only_and_says_so():
    caps = capabilities_for("totally-made-up-model-9000")
    assert _flags("totally-made-up-model-9000") == {
        "accepts_image": False, "accepts_audio": False, "accepts_video": False,
        "accepts_pdf": False, "outputs_images": False}
    assert caps.context_window is None and "text only" in caps.source


def test_a_relays_own_model_list_fields_win_over_the_catalogue():
    caps = capabilities_for("gpt-4o-mini", listed={
        "input_modalities": ["text", "image", "audio"], "max_input_tokens": 64_000})
    assert caps.accepts_audio and not caps.accepts_pdf and caps.context_window == 64_000
    assert "relay's model list" in caps.source
    litellm_style = capabilities_for("totally-made-up-model", listed={
        "supports_vision": True, "supports_pdf_input": True})
    assert litellm_style.accepts_image and litellm_style.accepts_pdf
    assert not litellm_style.accepts_audio


@pytest.mark.django_db
def test_models_from_relay_models_get_catalogue_capabilities(settings):
    settings.RELAY_BASE_URL = "https://relay.example.com"
    settings.RELAY_API_KEY = "sk-live-123"
    settings.RELAY_DIALECT = "image_url-for-all"
    settings.RELAY_MODELS = ["gemini-2.5-flash-lite", "gpt-4o-mini", "made-up-model"]
    relay = setup.ensure_default_relay()
    lite = relay.models.get(model_id="gemini-2.5-flash-lite")
    assert lite.accepts_video and lite.accepts_audio and lite.context_window == 1_048_576
    assert relay.models.get(model_id="gpt-4o-mini").accepts_pdf
    unknown = relay.models.get(model_id="made-up-model")
    assert unknown.accepted_kinds == {"text"}


@pytest.mark.django_db
def test_imported_models_take_capabilities_from_the_catalogue_and_the_relays_list(simulator):
    admin = make_user("root", is_staff=True, is_superuser=True)
    relay = make_relay(simulator.url, dialect="image_url-for-all")
    client = Client()
    client.force_login(admin)
    client.post("/admin/conversations/relay/", {
        "action": "import_models", "_selected_action": [relay.pk]})
    lite = relay.models.get(model_id="gemini-2.5-flash-lite")
    assert lite.accepted_kinds == {"text", "image", "audio", "video", "pdf"}
    assert lite.context_window == 1_048_576
    # The simulator lists gpt-4o-mini with text and image only: the relay's word wins.
    mini = relay.models.get(model_id="gpt-4o-mini")
    assert mini.accepts_image and not mini.accepts_pdf
    # A video to the imported model is no longer refused.
    assert kind_refusal(kind="video", model=lite, relay=relay) == ""


@pytest.mark.django_db
def test_a_model_added_by_hand_is_filled_unless_staff_set_its_flags():
    admin = make_user("root", is_staff=True, is_superuser=True)
    relay = make_relay("https://relay.example.com")
    client = Client()
    client.force_login(admin)
    form = {"relay": relay.pk, "model_id": "gemini-2.5-flash", "display_name": "",
            "accepts_text": "on", "is_active": "on"}
    response = client.post("/admin/conversations/chatmodel/add/", form)
    assert response.status_code == 302, response.content[:3000]
    filled = ChatModel.objects.get(model_id="gemini-2.5-flash")
    assert filled.accepts_video and filled.context_window == 1_048_576
    # Staff who tick a flag themselves keep exactly what they entered.
    response = client.post("/admin/conversations/chatmodel/add/", {
        **form, "model_id": "gemini-2.5-flash-lite", "accepts_image": "on"})
    assert response.status_code == 302
    chosen = ChatModel.objects.get(model_id="gemini-2.5-flash-lite")
    assert chosen.accepts_image and not chosen.accepts_video
    # And they can change every flag afterwards.
    chosen.accepts_audio = True
    chosen.save(update_fields=["accepts_audio"])
    assert ChatModel.objects.get(pk=chosen.pk).accepts_audio


@pytest.mark.django_db
def test_the_demo_relay_carries_video_to_its_simulated_models(settings):
    settings.RELAY_BASE_URL = ""
    relay = setup.ensure_default_relay(simulator_url="http://127.0.0.1:9/simulator")
    flash = relay.models.get(model_id="gemini-2.5-flash")
    for kind in ("image", "audio", "video", "pdf"):
        assert kind_refusal(kind=kind, model=flash, relay=relay) == "", kind
