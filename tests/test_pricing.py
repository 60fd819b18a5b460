"""What a reply costs: list prices, relay ratios, overrides, currencies, and freezing."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from genai_prices import Usage as PricedUsage
from genai_prices import calc_price

from conversations import replies
from conversations.billing import money
from conversations.billing import prices as pricing
from conversations.models import (
    Attachment,
    BillingMode,
    Conversation,
    Dialect,
    Message,
    Usage,
)
from tests.factories import make_conversation, make_model, make_relay, make_user

pytestmark = pytest.mark.django_db

# Seed 001 (toiotech, gemini-3.1-flash-lite-preview): image + audio + video.
SEED_001_USAGE = {
    "prompt_tokens": 2064, "completion_tokens": 230, "total_tokens": 2294,
    "prompt_tokens_details": {"cached_tokens": 0, "text_tokens": 9, "audio_tokens": 399,
                              "image_tokens": 0},
    "completion_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "reasoning_tokens": 0},
    "output_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "reasoning_tokens": 0},
    "input_tokens": 0, "output_tokens": 0, "input_tokens_details": None,
    "claude_cache_creation_5_m_tokens": 0, "claude_cache_creation_1_h_tokens": 0,
}


def _reply(model, *, text="这段视频主要展示了以下内容", owner=None) -> Message:
    owner = owner or make_user(f"user-{uuid.uuid4().hex[:6]}")
    conversation = make_conversation(owner, model)
    question = Message.objects.create(conversation=conversation, role="user",
                                      text="What is in this video?")
    return Message.objects.create(conversation=conversation, role="assistant", text=text,
                                  status="complete", model=model, parent=question)


def _record(model, raw=SEED_001_USAGE, **kwargs) -> Usage:
    message = _reply(model, **kwargs)
    return replies.record_usage(message=message, raw=raw)


def _admin_action(model_name: str, action: str, pk: int):
    """A superuser runs an admin action on one row of a changelist."""
    client = Client()
    client.force_login(make_user("admin", is_staff=True, is_superuser=True))
    return client.post(
        reverse(f"admin:conversations_{model_name}_changelist"),
        {"action": action, "_selected_action": [pk]}, follow=True,
    )


def test_seed_001_usage_at_list_price_costs_what_genai_prices_says():
    model = make_model(make_relay("http://127.0.0.1:9"), "gemini-3.1-flash-lite-preview")

    usage = _record(model)

    expected = calc_price(
        PricedUsage(input_tokens=2064, input_audio_tokens=399, output_tokens=230),
        model_ref="gemini-3.1-flash-lite-preview", provider_id="google",
    ).total_price
    assert expected == Decimal("0.00096075")
    usage.refresh_from_db()
    assert usage.cost == expected
    assert usage.currency == "USD"
    assert usage.price_source == pricing.SOURCE_LIST
    assert usage.prices_used["list_model"] == "gemini-3.1-flash-lite"
    assert usage.prices_used["per_million"]["audio_input"] == "0.5"
    assert Conversation.objects.get(pk=usage.conversation_id).total_cost == expected


def test_new_api_ratios_reproduce_the_protocol_worked_example():
    # PROTOCOL.md §6: (1665 + 230 × 4) × 0.05 + 399 × 1.00 / 1e6 × 500000 = 328.75 → 329
    counts = pricing.TokenCounts(prompt=2064, completion=230, audio_in=399)
    ratios = pricing.NewApiRatios(model_ratio=Decimal("0.05"), completion_ratio=Decimal(4),
                                  audio_price_per_m=Decimal("1.00"))
    assert pricing.new_api_quota(counts, ratios) == 329
    assert pricing.relay_dollars(329) == Decimal("0.000658")


def test_a_new_api_relay_charges_its_ratios_in_relay_dollars_times_the_exchange_rate():
    relay = make_relay("http://127.0.0.1:9", billing_mode=BillingMode.NEW_API, currency="CNY",
                       exchange_rate=Decimal("6.5"))
    model = make_model(relay, "gemini-2.5-flash-lite", model_ratio=Decimal("0.05"),
                       completion_ratio=Decimal(4), audio_price_per_m=Decimal(1))

    usage = _record(model)

    assert usage.price_source == pricing.SOURCE_NEW_API
    assert usage.prices_used["quota"] == 329
    assert usage.prices_used["relay_usd"] == "0.000658"
    assert usage.cost == Decimal("0.000658") * Decimal("6.5")
    assert usage.currency == "CNY"


def test_group_ratio_and_cache_ratio_enter_the_quota():
    counts = pricing.TokenCounts(prompt=1000, completion=100, cached=400)
    ratios = pricing.NewApiRatios(model_ratio=Decimal("0.15"), completion_ratio=Decimal(8),
                                  cache_ratio=Decimal("0.25"), group_ratio=Decimal("1.5"))
    # (600 + 400 × 0.25 + 100 × 8) × 0.15 × 1.5 = 1500 × 0.225 = 337.5 → 338
    assert pricing.new_api_quota(counts, ratios) == 338


def test_list_price_is_multiplied_by_the_relays_markup_and_exchange_rate():
    relay = make_relay("http://127.0.0.1:9", currency="CNY", exchange_rate=Decimal("7.2"),
                       price_multiplier=Decimal("1.5"))
    model = make_model(relay, "gemini-3.1-flash-lite-preview")

    usage = _record(model)

    assert usage.cost == Decimal("0.00096075") * Decimal("1.5") * Decimal("7.2")
    assert usage.currency == "CNY"
    assert usage.prices_used["multiplier"] == "1.5"
    assert usage.prices_used["exchange_rate"] == "7.2"


def test_an_override_wins_over_the_list_price_part_by_part():
    # genai-prices maps this image model to plain gemini-2.0-flash, which has
    # no image-output price: the admin's image price must win.
    model = make_model(make_relay("http://127.0.0.1:9"), "gemini-2.0-flash-exp-image-generation",
                       price_image_output=Decimal("30"))
    raw = {"prompt_tokens": 1000, "completion_tokens": 1300,
           "completion_tokens_details": {"image_tokens": 1290}}

    usage = _record(model, raw=raw)

    # list input 0.10/M and output 0.40/M for gemini-2.0-flash; image 30/M from the override
    expected = (Decimal(1000) * Decimal("0.1") + Decimal(10) * Decimal("0.4")
                + Decimal(1290) * Decimal(30)) / Decimal(1_000_000)
    assert usage.price_source == pricing.SOURCE_OVERRIDE
    assert usage.cost == expected
    assert usage.prices_used["per_million_from"]["image_output"] == "override"
    assert usage.prices_used["per_million_from"]["input"] == "list"


def test_an_override_wins_over_new_api_ratios_and_keeps_the_group_ratio():
    relay = make_relay("http://127.0.0.1:9", billing_mode=BillingMode.NEW_API,
                       group_ratio=Decimal(2))
    model = make_model(relay, "gemini-2.5-flash", model_ratio=Decimal("0.15"),
                       price_input=Decimal(1), price_output=Decimal(10))

    usage = _record(model, raw={"prompt_tokens": 1_000_000, "completion_tokens": 100_000})

    assert usage.price_source == pricing.SOURCE_OVERRIDE
    assert usage.cost == (Decimal(1) + Decimal(1)) * 2


def test_a_price_per_request_is_charged_once_per_reply():
    model = make_model(make_relay("http://127.0.0.1:9"), "some-image-model",
                       price_per_request=Decimal("0.04"))
    usage = _record(model, raw={"prompt_tokens": 10, "completion_tokens": 1290})
    assert usage.cost == Decimal("0.04")


def test_changing_a_price_leaves_past_costs_untouched():
    model = make_model(make_relay("http://127.0.0.1:9"), "gemini-2.5-flash",
                       price_input=Decimal(1), price_output=Decimal(2))
    owner = make_user("carol")
    first = _record(model, raw={"prompt_tokens": 1_000_000, "completion_tokens": 0}, owner=owner)

    model.price_input = Decimal(5)
    model.save()
    model.relay.exchange_rate = Decimal(7)
    model.relay.save()
    second = _record(model, raw={"prompt_tokens": 1_000_000, "completion_tokens": 0},
                     owner=owner)

    first.refresh_from_db()
    assert first.cost == Decimal(1)
    assert first.prices_used["per_million"]["input"] == "1"
    assert second.cost == Decimal(35)
    page = Client()
    page.force_login(owner)
    html = page.get(reverse("conversation", args=[first.conversation_id])).content.decode()
    assert "$1.00" in html


def test_staff_can_recompute_a_period_on_purpose_and_totals_follow():
    model = make_model(make_relay("http://127.0.0.1:9"), "gemini-2.5-flash",
                       price_input=Decimal(1), price_output=Decimal(0))
    usage = _record(model, raw={"prompt_tokens": 1_000_000, "completion_tokens": 0})
    model.price_input = Decimal(3)
    model.save()

    result = pricing.recompute_costs(usages=Usage.objects.filter(pk=usage.pk))

    usage.refresh_from_db()
    assert (result.rows, result.changed) == (1, 1)
    assert usage.cost == Decimal(3)
    assert Conversation.objects.get(pk=usage.conversation_id).total_cost == Decimal(3)


def test_the_admin_recompute_action_reprices_the_selected_replies():
    model = make_model(make_relay("http://127.0.0.1:9"), "gemini-2.5-flash",
                       price_input=Decimal(1), price_output=Decimal(0))
    usage = _record(model, raw={"prompt_tokens": 1_000_000, "completion_tokens": 0})
    model.price_input = Decimal(2)
    model.save()
    response = _admin_action("usage", "recompute_selected_costs", usage.pk)

    assert "Recomputed 1 replies" in response.content.decode()
    usage.refresh_from_db()
    assert usage.cost == Decimal(2)


def test_a_model_without_any_price_shows_price_unknown_not_zero():
    model = make_model(make_relay("http://127.0.0.1:9"), "totally-private-model-x")
    usage = _record(model)

    assert usage.cost is None
    assert usage.price_source == pricing.SOURCE_UNKNOWN
    assert Conversation.objects.get(pk=usage.conversation_id).total_cost == 0
    client = Client()
    client.force_login(usage.owner)
    html = client.get(reverse("conversation", args=[usage.conversation_id])).content.decode()
    assert "price unknown" in html
    assert reverse("cost_set_price", args=[model.pk]) in html
    assert "$0.00" not in html


def test_the_set_price_link_takes_staff_to_the_models_prices():
    model = make_model(make_relay("http://127.0.0.1:9"), "totally-private-model-x")
    staff, user = make_user("boss", is_staff=True), make_user("dave")
    client = Client()
    client.force_login(staff)
    response = client.get(reverse("cost_set_price", args=[model.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:conversations_chatmodel_change",
                                           args=[model.pk])
    client.force_login(user)
    response = client.get(reverse("cost_set_price", args=[model.pk]))
    assert response.status_code == 200
    assert "Ask an administrator" in response.content.decode()


def test_the_simulators_behaviour_suffix_is_not_part_of_the_price_lookup():
    model = make_model(make_relay("http://127.0.0.1:9"), "gemini-2.5-flash@reasoning")
    usage = _record(model, raw={"prompt_tokens": 1_000_000, "completion_tokens": 0})
    assert usage.prices_used["model_ref"] == "gemini-2.5-flash"
    assert usage.cost == Decimal("0.3")


def test_usage_details_larger_than_their_whole_are_clamped_not_refused():
    model = make_model(make_relay("http://127.0.0.1:9"), "gemini-2.5-flash")
    raw = {"prompt_tokens": 100, "completion_tokens": 10,
           "prompt_tokens_details": {"cached_tokens": 500, "audio_tokens": 80}}
    usage = _record(model, raw=raw)
    # all 100 prompt tokens cached at 0.03/M, 10 output at 2.5/M (image tokens on a
    # model without an image-output price are "price unknown": test_pictures.py)
    assert usage.cost == (Decimal(100) * Decimal("0.03") + Decimal(10) * Decimal("2.5")) / 10**6


def _reply_with_every_medium(model, owner) -> Message:
    conversation = make_conversation(owner, model, system_prompt="Be brief.")
    question = Message.objects.create(conversation=conversation, role="user",
                                      text="Describe these.")
    for kind, extra in [("image", {"width": 300, "height": 200}),
                        ("audio", {"duration_seconds": 10.0}),
                        ("video", {"duration_seconds": 2.0}), ("pdf", {"pages": 3})]:
        Attachment.objects.create(uuid=uuid.uuid4(), message=question, owner=owner,
                                  file=f"attachments/{kind}", kind=kind, mime="x/y", size=1000,
                                  original_name=f"a.{kind}", **extra)
    return Message.objects.create(conversation=conversation, role="assistant", text="Seen.",
                                  status="complete", model=model, parent=question)


def test_an_estimate_counts_only_the_media_the_relays_dialect_could_send():
    relay = make_relay("http://127.0.0.1:9", dialect=Dialect.IMAGES_ONLY)
    model = make_model(relay, "gemini-2.5-flash")
    usage = replies.record_usage(message=_reply_with_every_medium(model, make_user("fay")),
                                  raw=None)
    assert usage.prompt_tokens == usage.prompt_text_tokens + 258  # the image, nothing else
    assert usage.prompt_audio_tokens == 0


def test_a_relay_that_sends_no_usage_gets_an_estimate_from_text_and_media(tmp_path):
    relay = make_relay("http://127.0.0.1:9", dialect=Dialect.IMAGE_URL_FOR_ALL)
    model = make_model(relay, "gemini-2.5-flash-image")  # it has an image-output price
    owner = make_user("erin")
    conversation = make_conversation(owner, model, system_prompt="Be brief.")
    question = Message.objects.create(conversation=conversation, role="user",
                                      text="Describe these.")
    for kind, extra in [("image", {"width": 300, "height": 200}),
                        ("audio", {"duration_seconds": 10.0}),
                        ("video", {"duration_seconds": 2.0}), ("pdf", {"pages": 3})]:
        Attachment.objects.create(uuid=uuid.uuid4(), message=question, owner=owner,
                                  file=f"attachments/{kind}", kind=kind, mime="x/y", size=1000,
                                  original_name=f"a.{kind}", **extra)
    image = "![generated](data:image/png;base64," + "A" * 40_000 + ")"
    reply = Message.objects.create(conversation=conversation, role="assistant",
                                   text="A cat and a song. " + image, status="complete",
                                   model=model, parent=question)

    usage = replies.record_usage(message=reply, raw=None)

    assert usage.estimated is True
    assert usage.prompt_audio_tokens == 320
    assert usage.prompt_image_tokens == 258
    # text + image 258 + audio 320 + video 526 + pdf 774
    assert usage.prompt_tokens == usage.prompt_text_tokens + 258 + 320 + 526 + 774
    assert usage.completion_image_tokens == 1290
    assert usage.completion_tokens < 1290 + 20  # the base64 is not counted as text
    assert usage.cost is not None and usage.cost > 0


def test_an_estimated_reply_is_marked_estimated_under_the_reply():
    model = make_model(make_relay("http://127.0.0.1:9"), "gemini-2.5-flash")
    message = _reply(model, text="Hello from a one-api relay")
    replies.record_usage(message=message, raw=None)
    client = Client()
    client.force_login(message.conversation.owner)
    html = client.get(reverse("conversation", args=[message.conversation_id])).content.decode()
    assert 'class="badge estimated"' in html


def test_tokens_and_their_parts_are_shown_under_a_reply():
    model = make_model(make_relay("http://127.0.0.1:9"), "gemini-2.5-flash")
    raw = {"prompt_tokens": 2064, "completion_tokens": 230,
           "prompt_tokens_details": {"cached_tokens": 100, "audio_tokens": 399,
                                     "image_tokens": 258},
           "completion_tokens_details": {"reasoning_tokens": 42}}
    usage = _record(model, raw=raw)
    client = Client()
    client.force_login(usage.owner)
    html = client.get(reverse("conversation", args=[usage.conversation_id])).content.decode()
    for text in ["2,064 prompt", "100 cached", "399 audio", "258 image", "230 completion",
                 "42 reasoning", money.format_money(usage.cost, "USD"), "list price"]:
        assert text in html, text


def test_importing_ratios_from_the_relays_api_pricing_switches_it_to_new_api(simulator):
    relay = make_relay(simulator.url)
    flash = make_model(relay, "gemini-2.5-flash@reasoning")
    lite = make_model(relay, "gemini-2.5-flash-lite")
    unpriced = make_model(relay, "not-on-the-relay")
    response = _admin_action("relay", "import_pricing_ratios", relay.pk)

    assert "ratios imported for 2 models" in response.content.decode()
    flash.refresh_from_db()
    lite.refresh_from_db()
    unpriced.refresh_from_db()
    relay.refresh_from_db()
    assert (flash.model_ratio, flash.completion_ratio, flash.cache_ratio) == (
        Decimal("0.15"), Decimal("8.333"), Decimal("0.25"))
    assert (lite.model_ratio, lite.completion_ratio) == (Decimal("0.05"), Decimal(4))
    assert unpriced.model_ratio is None
    assert relay.billing_mode == BillingMode.NEW_API
    assert relay.group_ratio == Decimal(1)

    usage = _record(lite, raw={"prompt_tokens": 1000, "completion_tokens": 100})
    assert usage.price_source == pricing.SOURCE_NEW_API
    assert usage.prices_used["quota"] == 70  # (1000 + 100 × 4) × 0.05


def test_an_unreachable_relay_explains_why_ratios_were_not_imported():
    relay = make_relay("http://127.0.0.1:9")
    response = _admin_action("relay", "import_pricing_ratios", relay.pk)
    html = response.content.decode()
    assert re.search(rf'<li class="error">{relay.name}: Could not [^<]*127\.0\.0\.1:9', html, re.I)
    relay.refresh_from_db()
    assert relay.billing_mode == BillingMode.LIST_PRICE


@pytest.mark.parametrize(("amount", "currency", "shown"), [
    (Decimal("0.000658"), "USD", "$0.000658"),
    (Decimal("0.00096075"), "USD", "$0.000961"),
    (Decimal("0.0123456"), "CNY", "¥0.0123"),
    (Decimal("1234.5"), "USD", "$1,234.50"),
    (Decimal("3"), "XYZ", "3.00 XYZ"),
    (None, "USD", "price unknown"),
])
def test_money_keeps_its_significant_digits(amount, currency, shown):
    assert money.format_money(amount, currency) == shown
