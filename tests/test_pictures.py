"""Pictures from image models: cut out of the answer as it arrives, stored as files,
shown by URL, sent back as image parts, priced, and kept to their owner.

The relay is the simulator over loopback HTTP (it makes real PNGs of the
asked shape) or, for shapes it does not send, hand-built SSE bytes.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import tracemalloc
import uuid
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.core.files.base import ContentFile
from django.db import transaction
from django.test import Client
from django.urls import reverse
from PIL import Image

from conversations import generation, replies, services
from conversations.errors import ServiceError
from conversations.models import Attachment, Message
from conversations.prompt import build_messages
from conversations.relays.pictures import Pictures, TextCutter
from conversations.relays.stream import Completion, apply_event, events_from_sse
from conversations.simulator.pictures import data_uri, make_png
from tests.factories import make_conversation, make_model, make_relay, make_user
from tests.test_generation import GroupListener, _post

IMAGE_MODEL = "gemini-2.5-flash-image"


@pytest.fixture(autouse=True)
def _fast(settings, tmp_path):
    settings.STREAM_FRAME_INTERVAL = 0.05
    settings.STREAM_CHECKPOINT_INTERVAL = 0.2
    settings.RELAY_MAX_RETRIES = 0
    settings.MEDIA_ROOT = tmp_path / "media"


# -- reading pictures out of an answer ---------------------------------------------------


def _sse(*deltas: dict) -> bytes:
    body = b"".join(
        b"data: " + json.dumps({"choices": [{"index": 0, "delta": delta}]}).encode() + b"\n\n"
        for delta in deltas
    )
    return body + b"data: [DONE]\n\n"


async def _read(raw: bytes, chunk: int = 65536) -> Completion:
    async def chunks():
        for start in range(0, len(raw), chunk):
            yield raw[start:start + chunk]

    result = Completion()
    async for event in events_from_sse(chunks()):
        apply_event(result, event)
    return result


PNG = make_png(64, 32)
URI = data_uri(PNG)


@pytest.mark.parametrize("chunk", [1, 7, 65536])
async def test_a_data_uri_split_across_several_deltas_becomes_one_picture(chunk):
    raw = _sse({"content": "Here ![image](" + URI[:9]}, {"content": URI[9:40]},
               {"content": URI[40:200]}, {"content": URI[200:] + ") done"})

    result = await _read(raw, chunk)

    assert result.content == "Here ![image](picture:1) done"
    assert [p.read() for p in result.images] == [PNG]


async def test_several_pictures_in_one_reply_each_become_a_picture_in_order():
    other = make_png(16, 16)
    raw = _sse({"content": f"one ![a]({URI}) two "},
               {"content": f"![b]({data_uri(other)})"},
               {"content": "", "images": [{"type": "image_url", "image_url": {"url": URI}}]})

    result = await _read(raw, 4096)

    assert result.content == ("one ![a](picture:1) two ![b](picture:2)"
                              "\n\n![image](picture:3)\n\n")
    assert [p.read() for p in result.images] == [PNG, other, PNG]


async def test_a_10_mb_single_line_is_one_picture_and_no_base64_reaches_the_text():
    png = make_png(2048, 2048, at_least=7_700_000)
    raw = _sse({"content": f"Before ![image]({data_uri(png)}) after"})
    assert len(raw) > 10_000_000

    result = await _read(raw)

    assert result.content == "Before ![image](picture:1) after"
    assert result.images[0].read() == png


async def test_reading_a_20_mb_line_holds_a_network_chunk_not_the_line():
    png = make_png(4096, 2048, at_least=15_200_000)
    raw = _sse({"content": f"![image]({data_uri(png)})"})
    assert len(raw) > 20_000_000
    tracemalloc.start()
    try:
        result = await _read(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert result.images[0].size == len(png)
    # The decoded picture goes to a temporary file; what is held is a chunk or two.
    assert peak < 2_000_000, f"peak {peak} bytes while reading a {len(raw)} byte line"


def test_a_marker_cut_between_deltas_is_still_found():
    pictures = Pictures()
    cutter = TextCutter(pictures)
    text = cutter.feed("look ![x](da") + cutter.feed("ta:image/png;base6")
    text += cutter.feed("4," + URI.split(",", 1)[1] + ")!") + cutter.flush()

    assert text == "look ![x](picture:1)!"
    assert pictures.items[0].read() == PNG


# -- the request -------------------------------------------------------------------------


def _setup(simulator, model_id=IMAGE_MODEL, **conversation):
    user = make_user()
    model = make_model(make_relay(simulator.url), model_id, outputs_images=True)
    return make_conversation(user, model, **conversation)


async def _run(message_id):
    generation._spawn(message_id)
    task = generation.running_generations()[message_id].task
    await asyncio.wait_for(asyncio.shield(task), timeout=60)


def _reply(pk) -> Message:
    return Message.objects.select_related("usage").prefetch_related("attachments").get(pk=pk)


@pytest.mark.django_db(transaction=True)
async def test_an_image_model_is_sent_image_config_in_snake_case(simulator):
    conversation = await database_sync_to_async(_setup)(
        simulator, image_aspect_ratio="16:9", image_size="2K")
    _, reply = await database_sync_to_async(_post)(conversation, "A lighthouse")

    await _run(reply.pk)

    body = simulator.requests[-1].body
    assert body["extra_body"] == {"google": {"image_config": {"aspect_ratio": "16:9",
                                                              "image_size": "2K"}}}


@pytest.mark.django_db(transaction=True)
async def test_a_text_model_is_sent_no_image_config(simulator):
    def setup():
        user = make_user()
        model = make_model(make_relay(simulator.url), "gemini-2.5-flash")
        return make_conversation(user, model, image_aspect_ratio="16:9")

    conversation = await database_sync_to_async(setup)()
    _, reply = await database_sync_to_async(_post)(conversation, "Hello")

    await _run(reply.pk)

    assert "extra_body" not in simulator.requests[-1].body


# -- a generated picture, end to end ----------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("spec", ["", "@images", "@split=5", "@plain_json",
                                  "@images,plain_json"])
async def test_a_picture_is_stored_as_a_generated_attachment_with_a_short_reference(
    simulator, spec
):
    conversation = await database_sync_to_async(_setup)(
        simulator, model_id=IMAGE_MODEL + spec, image_aspect_ratio="16:9")
    _, reply = await database_sync_to_async(_post)(conversation, "A lighthouse at dusk")

    async with GroupListener(conversation.pk) as listener:
        await _run(reply.pk)

    saved = await database_sync_to_async(_reply)(reply.pk)
    pictures = await database_sync_to_async(lambda: list(saved.attachments.all()))()
    assert saved.status == Message.Status.COMPLETE, saved.error
    assert len(pictures) == 1
    picture = pictures[0]
    assert picture.generated and picture.kind == "image" and picture.mime == "image/png"
    assert (picture.width, picture.height) == (1360, 768)
    assert picture.original_name.endswith(".png")
    with picture.file.open("rb") as fh, Image.open(fh) as image:
        assert image.size == (1360, 768)
    assert "picture:1" in saved.text and "base64" not in saved.text
    assert len(saved.text) < 2000
    assert saved.warning == ""
    wire = json.dumps(listener.events)
    assert "base64" not in wire
    finished = listener.events[-1]["html"]
    url = reverse("attachment", kwargs={"uuid": picture.uuid})
    assert f'src="{url}"' in finished
    assert 'width="1360" height="768"' in finished
    assert f'href="{url}?download=1"' in finished


@pytest.mark.django_db(transaction=True)
async def test_a_relay_that_ignores_the_aspect_ratio_is_warned_about(simulator):
    conversation = await database_sync_to_async(_setup)(
        simulator, model_id=IMAGE_MODEL + "@ignore_image_config", image_aspect_ratio="16:9")
    _, reply = await database_sync_to_async(_post)(conversation, "A wide beach")

    await _run(reply.pk)

    saved = await database_sync_to_async(_reply)(reply.pk)
    assert "You asked for 16:9, but the relay returned a 1024×1024 picture (1:1)" in (
        saved.warning)


@pytest.mark.django_db(transaction=True)
async def test_a_broken_picture_is_left_out_with_a_warning(simulator):
    conversation = await database_sync_to_async(_setup)(simulator)
    _, reply = await database_sync_to_async(_post)(conversation, "x")
    pictures = Pictures()
    picture = pictures.start("image/png")
    picture.write_b64(base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 100))
    pictures.finish(picture)
    await database_sync_to_async(replies.begin_reply)(reply.pk)

    await database_sync_to_async(replies.finish_reply)(
        message_id=reply.pk, outcome=replies.ReplyOutcome(
            status="complete", text="![image](picture:1)", finish_reason="stop",
            images=[picture]))

    saved = await database_sync_to_async(_reply)(reply.pk)
    assert await database_sync_to_async(saved.attachments.count)() == 0
    assert "picture 1, but it is damaged or not a picture" in saved.warning


# -- editing -----------------------------------------------------------------------------


def _image_parts(body: dict) -> list[dict]:
    return [part for message in body["messages"] if isinstance(message["content"], list)
            for part in message["content"] if part.get("type") == "image_url"]


@pytest.mark.django_db(transaction=True)
async def test_the_next_turn_sends_the_latest_picture_as_an_image_part_and_no_base64_text(
    simulator
):
    conversation = await database_sync_to_async(_setup)(simulator)
    _, first = await database_sync_to_async(_post)(conversation, "A red bicycle")
    await _run(first.pk)
    stored = await database_sync_to_async(
        lambda: Attachment.objects.get(message_id=first.pk))()
    _, second = await database_sync_to_async(_post)(conversation, "Make it blue")

    await _run(second.pk)

    body = simulator.requests[-1].body
    last = body["messages"][-1]
    assert last["role"] == "user"
    image = [p for p in last["content"] if p["type"] == "image_url"]
    assert len(image) == 1
    with stored.file.open("rb") as fh:
        assert image[0]["image_url"]["url"] == data_uri(fh.read())
    for message in body["messages"][:-1]:
        text = json.dumps(message["content"])
        assert "base64" not in text
    assistant = [m for m in body["messages"] if m["role"] == "assistant"]
    assert "[picture 1]" in assistant[0]["content"]


@pytest.mark.django_db(transaction=True)
def test_a_chosen_earlier_picture_is_the_one_sent_and_caps_apply(simulator, settings):
    conversation = _setup(simulator)
    owner = conversation.owner
    pictures = []
    for n in range(3):
        Message.objects.create(conversation=conversation, role="user", text=f"v{n}")
        answer = Message.objects.create(conversation=conversation, role="assistant",
                                        text=f"![image](picture:1) v{n}", status="complete")
        png = make_png(32 + n, 32)
        attachment = Attachment(uuid=uuid.uuid4(), message=answer, owner=owner,
                                kind="image", mime="image/png", size=len(png),
                                original_name=f"p{n}.png", width=32 + n, height=32,
                                generated=True)
        attachment.file.save("x", ContentFile(png), save=True)
        pictures.append(attachment)
    settings.HISTORY_MAX_MEDIA_TURNS = 1
    original = transaction.on_commit
    transaction.on_commit = lambda fn, using=None, robust=False: None
    try:
        # Three edits of chosen pictures; the cap keeps the last earlier one's.
        edits = []
        for chosen in pictures:
            user_message, reply = services.post_message(
                conversation=conversation, author=owner, text="edit it",
                edit_picture=chosen.uuid)
            edits.append(user_message)
            if chosen is not pictures[-1]:
                Message.objects.filter(pk=reply.pk).update(status="complete", text="ok")
    finally:
        transaction.on_commit = original
    assert [m.edit_source_id for m in edits] == [p.pk for p in pictures]

    messages = build_messages(conversation=conversation, reply=reply,
                              relay=conversation.model.relay)

    sent = [part["image_url"]["url"].label for part in _image_parts({"messages": messages})]
    assert sent == ["p1.png", "p2.png"]  # p0's turn is over the cap of 1 earlier turn
    assert messages[-1]["content"][-1]["type"] == "image_url"
    assert "“p0.png” from an earlier turn is not sent again, to save tokens" in json.dumps(
        messages, ensure_ascii=False, default=repr)
    assert "base64" not in json.dumps(messages, default=repr)


@pytest.mark.django_db
def test_a_picture_of_another_users_conversation_cannot_be_chosen(simulator):
    mine = _setup(simulator)
    other_user = make_user("mallory")
    theirs = make_conversation(other_user, mine.model)
    answer = Message.objects.create(conversation=theirs, role="assistant", text="x",
                                    status="complete")
    foreign = Attachment.objects.create(
        uuid=uuid.uuid4(), message=answer, owner=other_user, kind="image",
        mime="image/png", size=1, original_name="p.png", generated=True, file="x")

    with pytest.raises(ServiceError, match="not in this conversation"):
        services.post_message(conversation=mine, author=mine.owner, text="edit",
                              edit_picture=foreign.uuid)


# -- prices ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_image_output_tokens_are_priced_at_the_image_rate():
    model = make_model(make_relay("http://127.0.0.1:9"), "gemini-2.5-flash-image",
                       outputs_images=True)
    conversation = make_conversation(make_user(), model)
    reply = Message.objects.create(conversation=conversation, role="assistant",
                                   text="![image](picture:1)", status="complete", model=model)

    usage = replies.record_usage(message=reply, raw={
        "prompt_tokens": 10, "completion_tokens": 1290, "total_tokens": 1300,
        "completion_tokens_details": {"image_tokens": 1290}})

    # $0.30 per million in, $30 per million image tokens out (genai-prices).
    assert usage.cost == pytest.approx(
        Decimal("0.000003") + Decimal("0.0387"),
        abs=Decimal("0.000001"))


@pytest.mark.django_db
def test_a_model_without_an_image_output_price_is_price_unknown_with_the_link_to_set_one():
    model = make_model(make_relay("http://127.0.0.1:9"), "gemini-2.0-flash-exp-image-generation",
                       outputs_images=True)
    conversation = make_conversation(make_user(), model)
    reply = Message.objects.create(conversation=conversation, role="assistant",
                                   text="![image](picture:1)", status="complete", model=model)
    Attachment.objects.create(uuid=uuid.uuid4(), message=reply,
                              owner=conversation.owner, kind="image", mime="image/png", size=1,
                              original_name="p.png", generated=True, file="x", width=1,
                              height=1)

    usage = replies.record_usage(message=reply, raw={
        "prompt_tokens": 10, "completion_tokens": 1290, "total_tokens": 1300,
        "completion_tokens_details": {"image_tokens": 1290}})

    assert usage.cost is None
    assert "no image-output price" in usage.prices_used["error"]
    client = Client()
    client.force_login(conversation.owner)
    html = client.get(reverse("conversation", args=[conversation.pk])).content.decode()
    assert 'class="picture-cost unknown">price unknown' in html
    assert reverse("cost_set_price", args=[model.pk]) in html


@pytest.mark.django_db
def test_an_override_without_an_image_price_does_not_bill_a_picture_as_text():
    model = make_model(make_relay("http://127.0.0.1:9"), "gemini-2.0-flash-exp-image-generation",
                       outputs_images=True, price_input=1, price_output=2)
    reply = Message.objects.create(conversation=make_conversation(make_user(), model),
                                   role="assistant", text="x", status="complete", model=model)

    usage = replies.record_usage(message=reply, raw={
        "prompt_tokens": 10, "completion_tokens": 1290,
        "completion_tokens_details": {"image_tokens": 1290}})

    assert usage.cost is None


# -- owner only --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_another_user_cannot_fetch_a_generated_picture(simulator):
    conversation = await database_sync_to_async(_setup)(simulator)
    _, reply = await database_sync_to_async(_post)(conversation, "A cat")
    await _run(reply.pk)

    def fetch():
        picture = Attachment.objects.get(message_id=reply.pk)
        url = reverse("attachment", kwargs={"uuid": picture.uuid})
        owner, stranger = Client(), Client()
        owner.force_login(conversation.owner)
        stranger.force_login(make_user("mallory"))
        return owner.get(url + "?download=1"), stranger.get(url), Client().get(url), picture

    mine, theirs, anonymous, picture = await database_sync_to_async(fetch)()
    assert mine.status_code == 200
    assert picture.original_name in mine["Content-Disposition"]
    assert b"".join(mine.streaming_content if mine.streaming else [mine.content]).startswith(
        b"\x89PNG")
    assert theirs.status_code == 404
    assert anonymous.status_code == 302


def test_the_simulator_makes_a_real_png_of_the_asked_shape():
    with Image.open(io.BytesIO(make_png(1360, 768))) as image:
        assert image.format == "PNG" and image.size == (1360, 768)


# -- the composer and the gallery --------------------------------------------------------


def _stored_picture(conversation, *, prompt: str, n: int = 0, cost=None) -> Attachment:
    Message.objects.create(conversation=conversation, role="user", text=prompt)
    reply = Message.objects.create(conversation=conversation, role="assistant",
                                   text="![image](picture:1)", status="complete",
                                   model=conversation.model)
    if cost is not None:
        from conversations.models import Usage

        Usage.objects.create(message=reply, owner=conversation.owner, conversation=conversation,
                             model=conversation.model, cost=Decimal(cost), currency="USD")
    png = make_png(32, 18)
    attachment = Attachment(uuid=uuid.uuid4(), message=reply, owner=conversation.owner,
                            kind="image", mime="image/png", size=len(png),
                            original_name=f"picture-{n}.png", width=32, height=18,
                            generated=True)
    attachment.file.save("x", ContentFile(png), save=True)
    return attachment


@pytest.mark.django_db
def test_the_composer_offers_aspect_ratio_and_size_only_for_image_models(simulator):
    conversation = _setup(simulator, image_aspect_ratio="21:9")
    text_chat = make_conversation(conversation.owner, make_model(conversation.model.relay,
                                                                 "gemini-2.5-flash"))
    client = Client()
    client.force_login(conversation.owner)

    image_page = client.get(reverse("conversation", args=[conversation.pk])).content.decode()
    text_page = client.get(reverse("conversation", args=[text_chat.pk])).content.decode()

    assert 'name="aspect_ratio"' in image_page and 'name="image_size"' in image_page
    assert '<option value="21:9" selected>' in image_page
    for ratio in ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]:
        assert f'value="{ratio}"' in image_page
    assert 'name="aspect_ratio"' not in text_page


@pytest.mark.django_db
def test_a_messages_aspect_ratio_and_size_are_kept_with_the_conversation(simulator,
                                                                           monkeypatch):
    monkeypatch.setattr(generation, "start_generation", lambda *a, **k: None)
    conversation = _setup(simulator)
    client = Client()
    client.force_login(conversation.owner)

    response = client.post(reverse("message_create", args=[conversation.pk]),
                           {"text": "A wide sunset", "aspect_ratio": "16:9", "image_size": "4K"},
                           HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    conversation.refresh_from_db()
    assert (conversation.image_aspect_ratio, conversation.image_size) == ("16:9", "4K")
    reply = Message.objects.filter(conversation=conversation, role="assistant").get()
    assert replies.begin_reply(reply.pk).body["extra_body"]["google"]["image_config"] == {
        "aspect_ratio": "16:9", "image_size": "4K"}


@pytest.mark.django_db
def test_choosing_a_picture_of_another_conversation_is_refused_in_plain_words(simulator):
    conversation = _setup(simulator)
    elsewhere = make_conversation(conversation.owner, conversation.model)
    picture = _stored_picture(elsewhere, prompt="a cat")
    client = Client()
    client.force_login(conversation.owner)

    response = client.post(reverse("message_create", args=[conversation.pk]),
                           {"text": "edit", "edit_picture": str(picture.uuid)},
                           HTTP_HX_REQUEST="true")

    assert response.status_code == 422
    assert "The picture you chose to edit is not in this conversation" in (
        response.content.decode())


@pytest.mark.django_db
def test_the_gallery_shows_only_the_owners_pictures_newest_first_with_prompt_model_cost(
    simulator
):
    conversation = _setup(simulator, title="Lighthouses")
    older = _stored_picture(conversation, prompt="An old lighthouse", n=1, cost="0.039")
    newer = _stored_picture(conversation, prompt="A new <b>lighthouse</b>", n=2)
    stranger = make_user("mallory")
    theirs = _stored_picture(make_conversation(stranger, conversation.model),
                             prompt="Mallory's secret", n=3)
    client = Client()
    client.force_login(conversation.owner)

    html = client.get(reverse("gallery")).content.decode()

    assert html.index(str(newer.uuid)) < html.index(str(older.uuid))
    assert str(theirs.uuid) not in html and "Mallory" not in html
    assert "An old lighthouse" in html and "A new &lt;b&gt;lighthouse&lt;/b&gt;" in html
    assert IMAGE_MODEL in html
    assert "$0.039" in html and "price unknown" in html
    assert reverse("conversation", args=[conversation.pk]) in html
    assert 'width="32" height="18"' in html
    other = Client()
    other.force_login(stranger)
    assert str(older.uuid) not in other.get(reverse("gallery")).content.decode()
    assert Client().get(reverse("gallery")).status_code == 302


@pytest.mark.django_db
def test_the_gallery_is_paginated(simulator):
    from conversations.media.gallery import PER_PAGE

    conversation = _setup(simulator)
    made = [_stored_picture(conversation, prompt=f"p{n}", n=n) for n in range(PER_PAGE + 1)]
    client = Client()
    client.force_login(conversation.owner)

    first = client.get(reverse("gallery")).content.decode()
    second = client.get(reverse("gallery") + "?page=2").content.decode()

    assert str(made[0].uuid) not in first and str(made[0].uuid) in second
    assert str(made[-1].uuid) in first
    assert 'rel="next"' in first and "Page 2 of 2" in second


@pytest.mark.django_db
def test_a_reply_of_an_image_model_shows_a_placeholder_while_it_is_being_made(simulator):
    from conversations.fragments import render_message

    conversation = _setup(simulator)
    reply = Message.objects.create(conversation=conversation, role="assistant",
                                   status="streaming", model=conversation.model)

    html = render_message(reply)

    assert 'class="picture-placeholder" role="status">Making the picture…' in html


@pytest.mark.django_db
def test_switching_the_conversation_to_an_image_model_brings_the_picture_controls(simulator):
    conversation = _setup(simulator)
    text_model = make_model(conversation.model.relay, "gemini-2.5-flash")
    client = Client()
    client.force_login(conversation.owner)

    def save(model):
        return client.post(reverse("conversation_settings", args=[conversation.pk]),
                           {"model": model.pk, "system_prompt": ""},
                           HTTP_HX_REQUEST="true").content.decode()

    to_text, to_image = save(text_model), save(conversation.model)

    assert 'id="picture-controls" hidden hx-swap-oob="true"' in to_text
    assert 'name="aspect_ratio"' not in to_text
    assert 'id="picture-controls" hx-swap-oob="true"' in to_image
    assert 'name="aspect_ratio"' in to_image


@pytest.mark.django_db(transaction=True)
async def test_an_uploaded_photo_is_edited_as_seed_002_shows(simulator):
    from django.core.files.uploadedfile import SimpleUploadedFile

    conversation = await database_sync_to_async(_setup)(simulator)
    photo = make_png(80, 60)

    def post():
        original = transaction.on_commit
        transaction.on_commit = lambda fn, using=None, robust=False: None
        try:
            return services.post_message(
                conversation=conversation, author=conversation.owner, text="主题风格改成红色",
                files=[SimpleUploadedFile("photo.png", photo, "image/png")])
        finally:
            transaction.on_commit = original

    user_message, reply = await database_sync_to_async(post)()
    await _run(reply.pk)

    body = simulator.requests[-1].body
    assert body["messages"][-1]["content"] == [
        {"type": "text", "text": "主题风格改成红色"},
        {"type": "image_url", "image_url": {"url": data_uri(photo)}}]
    assert user_message.edit_source_id is None  # the photo itself is what is edited
    assert body["extra_body"]["google"]["image_config"]["aspect_ratio"] == "1:1"
    saved = await database_sync_to_async(_reply)(reply.pk)
    assert len(saved.generated_pictures) == 1


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("chunk", [1, 2, 5, 4096])
async def test_sse_lines_end_with_lf_crlf_or_cr_even_cut_between_chunks(newline, chunk):
    from conversations.relays.pictures import ByteCutter
    from conversations.relays.stream import sse_data

    raw = newline.join([b": PING", b"", b"event: x", b"data: {\"a\":", b"data: 1}", b"",
                        b"data: [DONE]", b"", b""])

    async def chunks():
        for start in range(0, len(raw), chunk):
            yield raw[start:start + chunk]

    events = [data async for data in sse_data(chunks(), ByteCutter(Pictures()))]

    assert events == ['{"a":\n1}', "[DONE]"]


@pytest.mark.django_db
def test_extract_pictures_turns_base64_left_in_old_replies_into_files(simulator):
    from django.core.management import call_command

    conversation = _setup(simulator, title="Old chat")
    png = make_png(48, 27)
    old = Message.objects.create(conversation=conversation, role="assistant", status="complete",
                                 text=f"Here:\n\n![image]({data_uri(png)})\n\nDone.")
    out = io.StringIO()

    call_command("extract_pictures", stdout=out)
    call_command("extract_pictures", stdout=out)  # a second run finds nothing to do

    old.refresh_from_db()
    assert old.text == "Here:\n\n![image](picture:1)\n\nDone."
    (picture,) = old.attachments.all()
    assert picture.generated and (picture.width, picture.height) == (48, 27)
    with picture.file.open("rb") as fh:
        assert fh.read() == png
    assert "Stored 1 pictures from 1 replies." in out.getvalue()
    assert "Stored 0 pictures from 0 replies." in out.getvalue()


@pytest.mark.django_db
def test_choosing_a_picture_for_a_model_that_takes_no_images_is_refused_at_once(simulator):
    conversation = _setup(simulator)
    picture = _stored_picture(conversation, prompt="a cat")
    conversation.model = make_model(conversation.model.relay, "text-only", accepts_image=False)
    conversation.save(update_fields=["model"])

    with pytest.raises(ServiceError, match="The picture you chose cannot be sent: text-only "
                                           "does not accept an image"):
        services.post_message(conversation=conversation, author=conversation.owner,
                              text="edit", edit_picture=picture.uuid)


async def test_a_picture_inside_the_reasoning_is_a_reference_there_too():
    raw = (b'data: {"choices":[{"index":0,"delta":{"reasoning_content":"draft ![x]('
           + URI.encode() + b')"}}]}\n\ndata: [DONE]\n\n')

    events = [e async for e in events_from_sse(_chunks_of(raw))]

    assert [e.text for e in events if e.kind == "reasoning"] == ["draft ![x](picture:1)"]
    assert [e.picture.read() for e in events if e.kind == "image"] == [PNG]


async def _chunks_of(raw: bytes, size: int = 100):
    for start in range(0, len(raw), size):
        yield raw[start:start + size]
