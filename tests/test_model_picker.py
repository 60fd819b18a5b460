# ruff: noqa: F811 - the fixtures of tests/test_views.py, imported by name
"""Picking a model: in the chat header, in one step; each model with what it
takes; the simulator's failing models only for staff, and never a default."""

from __future__ import annotations

import pytest
from django.urls import reverse

from conversations.models import ChatModel, Conversation, Message, Relay
from tests.test_views import (  # noqa: F401 - fixtures
    _no_generation,
    alice,
    as_alice,
    conversation,
    model,
    other_model,
    relay,
    signed_in,
)

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def failing(db) -> ChatModel:
    simulator = Relay.objects.create(name="Relay simulator", base_url="http://127.0.0.1:9",
                                     is_simulated=True)
    return ChatModel.objects.create(relay=simulator, model_id="gemini-2.5-flash@fail=401",
                                    display_name="Out-of-quota key (simulated failure)")


def test_the_header_switches_the_model_for_the_next_replies(as_alice, conversation,
                                                            other_model):
    page = as_alice.get(reverse("conversation", args=[conversation.pk])).content.decode()
    assert 'id="header-model"' in page and "GPT mini" in page

    response = as_alice.post(reverse("conversation_model", args=[conversation.pk]),
                             {"model": other_model.pk}, **HTMX)

    assert response.status_code == 200
    conversation.refresh_from_db()
    assert conversation.model == other_model
    html = response.content.decode()
    # The picker, the settings form, the picture controls and the meter follow.
    for part in ('id="model-label"', 'id="settings-form"', 'id="picture-controls"',
                 'id="context-meter"'):
        assert part in html
    assert html.count('hx-swap-oob="true"') >= 3
    # The settings form's inside alone: the form in the page stays wired up.
    assert '<div id="settings-form" hx-swap-oob="innerHTML">' in html


def test_another_persons_chat_and_an_unknown_model_are_refused(as_alice, conversation, alice,
                                                               model):
    from django.contrib.auth import get_user_model

    bob = get_user_model().objects.create_user("bob", password="x")
    theirs = Conversation.objects.create(owner=bob, model=model)
    url = reverse("conversation_model", args=[theirs.pk])
    assert as_alice.post(url, {"model": model.pk}, **HTMX).status_code == 404
    mine = reverse("conversation_model", args=[conversation.pk])
    assert as_alice.post(mine, {"model": 999_999}, **HTMX).status_code == 422


def test_each_model_says_what_it_takes(as_alice, relay):
    ChatModel.objects.create(relay=relay, model_id="gemini-2.5-flash-image",
                             display_name="Flash Image", accepts_image=True,
                             outputs_images=True)
    page = as_alice.get(reverse("conversation_new")).content.decode()
    assert "Flash Image · pictures, makes pictures" in page


def test_the_header_options_carry_what_the_searchable_picker_shows(as_alice, relay,
                                                                     conversation):
    import json
    import re

    ChatModel.objects.create(relay=relay, model_id="gemini-2.5-flash-image",
                             display_name="Flash Image", accepts_image=True,
                             outputs_images=True)
    page = as_alice.get(reverse("conversation", args=[conversation.pk])).content.decode()
    header = page[page.index('<form id="model-label"'):]
    header = header[:header.index("</form>")]
    option = re.search(r'<option [^>]*data-model-id="gemini-2.5-flash-image"[^>]*>', header)[0]
    assert 'data-name="Flash Image"' in option
    capabilities = re.search(r'data-capabilities="([^"]*)"', option)[1]
    # The menu's own words, kind by kind (the same rule as "Flash Image · pictures, …").
    assert json.loads(capabilities.replace("&quot;", '"')) == {
        "image": "pictures", "makes_images": "makes pictures"}
    assert "Flash Image · pictures, makes pictures" in header
    assert "js/model_picker.js" in page


def test_failing_simulator_models_are_for_staff_and_never_the_next_default(
        alice, as_alice, model, failing):
    assert failing.display_name not in as_alice.get(reverse("conversation_new")).content.decode()
    mine = Conversation.objects.create(owner=alice, model=failing)
    Message.objects.create(conversation=mine, role="user", text="Will it fail?")
    assert as_alice.post(reverse("conversation_model", args=[mine.pk]),
                         {"model": failing.pk}, **HTMX).status_code == 422

    alice.is_staff = True
    alice.save()
    page = as_alice.get(reverse("conversation_new")).content.decode()
    assert failing.display_name in page  # staff try out error handling with it
    import re

    default = re.search(r'<select name="model" id="id_model".*?<option value="(\d+)" selected',
                        page, re.S)
    assert default and default[1] == str(model.pk)  # not the failing model used last


def test_continue_in_a_new_chat_from_the_meter(as_alice, conversation, settings):
    settings.CONTEXT_WINDOW_TOKENS = 300
    settings.CONTEXT_REPLY_RESERVE_TOKENS = 50
    parent = None
    for n in range(6):
        question = Message.objects.create(conversation=conversation, role="user",
                                          text=f"Question {n} " + "words " * 40, parent=parent)
        parent = Message.objects.create(conversation=conversation, role="assistant",
                                        model=conversation.model, parent=question,
                                        text=f"Answer {n} " + "words " * 40)
    page = as_alice.get(reverse("conversation", args=[conversation.pk])).content.decode()
    assert "no longer fit the model&#x27;s window" in page or "no longer fit the model's" in page
    assert 'data-view-start="message-' in page

    response = as_alice.post(reverse("conversation_carry_over", args=[conversation.pk]), **HTMX)

    fresh = Conversation.objects.exclude(pk=conversation.pk).get()
    assert response["HX-Redirect"] == reverse("conversation", args=[fresh.pk])
    assert fresh.title == "Alice's chat (continued)"
    assert fresh.messages.get(role="user").text.startswith("This continues an earlier")
