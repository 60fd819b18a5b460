"""Small builders for test data (plain functions; no factory library needed)."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from conversations.models import ChatModel, Conversation, Relay

ALL_MEDIA = {"accepts_image": True, "accepts_audio": True, "accepts_video": True,
             "accepts_pdf": True}


def make_user(username: str = "alice", **extra):
    return get_user_model().objects.create_user(username, password="pw-for-tests-123", **extra)


def make_relay(base_url: str, **extra) -> Relay:
    defaults = {"name": f"relay-{Relay.objects.count() + 1}", "api_key": "sk-test-secret-key"}
    return Relay.objects.create(base_url=base_url, **{**defaults, **extra})


def make_model(relay: Relay, model_id: str = "gemini-2.5-flash", **extra) -> ChatModel:
    return ChatModel.objects.create(
        relay=relay, model_id=model_id, display_name=extra.pop("display_name", model_id),
        **{**ALL_MEDIA, **extra},
    )


def make_conversation(owner, model: ChatModel | None, **extra) -> Conversation:
    return Conversation.objects.create(owner=owner, model=model, **extra)
